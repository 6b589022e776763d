// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ITemplateRegistry} from "../interfaces/ITemplateRegistry.sol";

/// @title RefundMath
/// @notice Yufu's money arithmetic in integer fen. Every rounding falls in the consumer's favour.
library RefundMath {
    uint256 internal constant FULL_BPS = 10_000;

    /// @notice The part of a payment kept frozen in custody, rounded up.
    function frozenShare(uint256 paid, uint16 custodyBps) internal pure returns (uint256) {
        return _ceilDiv(paid * custodyBps, FULL_BPS);
    }

    /// @notice How much of the frozen share has been earned after `consumed` of `total` value,
    /// rounded down: released = frozen × consumed ÷ total.
    function earnedRelease(uint256 frozen, uint256 consumed, uint256 total) internal pure returns (uint256) {
        return frozen * consumed / total;
    }

    /// @notice The refund owed when a plan ends early.
    /// @param rule The template's refund rule.
    /// @param paid Money the consumer paid.
    /// @param bonus Bonus credit the merchant added.
    /// @param consumed Face value consumed so far (of paid + bonus).
    /// @param roundingFen Round the refund up to a multiple of this.
    /// @return refund Never more than `paid`.
    function refundOwed(
        ITemplateRegistry.RefundRule rule,
        uint256 paid,
        uint256 bonus,
        uint256 consumed,
        uint256 roundingFen
    ) internal pure returns (uint256 refund) {
        uint256 total = paid + bonus;
        // Consumed value converts at paid ÷ (paid + bonus): the consumer is charged for
        // consumed × paid ÷ total, and refunded the rest of what was paid.
        uint256 byConversion = _ceilDiv(paid * (total - consumed), total);
        uint256 byFaceValue = consumed >= paid ? 0 : paid - consumed;
        if (rule == ITemplateRegistry.RefundRule.BonusConversion) {
            refund = byConversion;
        } else if (rule == ITemplateRegistry.RefundRule.FaceValue) {
            refund = byFaceValue;
        } else {
            // No agreed formula: the reading more favourable to the consumer wins.
            refund = byConversion > byFaceValue ? byConversion : byFaceValue;
        }
        refund = _ceilDiv(refund, roundingFen) * roundingFen;
        if (refund > paid) refund = paid;
    }

    function _ceilDiv(uint256 a, uint256 b) private pure returns (uint256) {
        return a == 0 ? 0 : (a - 1) / b + 1;
    }
}
