// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IAgreementBook} from "./interfaces/IAgreementBook.sol";
import {ICustodyDesk} from "./interfaces/ICustodyDesk.sol";
import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {IMerchantRegistry} from "./interfaces/IMerchantRegistry.sol";
import {IOracleHub} from "./interfaces/IOracleHub.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";
import {Feeds} from "./libraries/Feeds.sol";

/// @title CustodyDesk
/// @notice The custody accounts and the register of payments out of them.
contract CustodyDesk is ICustodyDesk {
    IMembership private immutable _membership;
    IOracleHub private immutable _oracleHub;
    IEvidenceRegistry private immutable _evidence;
    IMerchantRegistry private immutable _merchants;
    IAgreementBook private immutable _book;

    mapping(address merchant => CustodyAccount) private _custody;
    mapping(bytes32 instructionId => Instruction) private _instructions;
    mapping(bytes32 bankReference => bool used) private _bankReferenceUsed;

    constructor(
        IMembership membership,
        IOracleHub oracleHub,
        IEvidenceRegistry evidence,
        IMerchantRegistry merchants,
        IAgreementBook book
    ) {
        _membership = membership;
        _oracleHub = oracleHub;
        _evidence = evidence;
        _merchants = merchants;
        _book = book;
    }

    /// @inheritdoc ICustodyDesk
    function deposit(address merchant, bytes32 agreementId, uint128 amount, bytes32 bankReference) external {
        if (msg.sender != address(_book)) revert CustodyDeskUnauthorized(msg.sender);
        if (_bankReferenceUsed[bankReference]) revert CustodyDeskDuplicateBankReference(bankReference);
        _bankReferenceUsed[bankReference] = true;
        _custody[merchant].held += amount;
        emit CustodyDeposited(merchant, agreementId, amount);
    }

    /// @inheritdoc ICustodyDesk
    function instructPayment(
        PaymentInstruction calldata instruction,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external {
        // Checks
        _requireOracle();
        bytes32 instructionId = instruction.instructionId;
        bytes32 agreementId = instruction.agreementId;
        if (_instructions[instructionId].state != InstructionState.None) {
            revert CustodyDeskInstructionExists(instructionId);
        }
        bytes32 digest = _consumeBankReport(report, signatures, agreementId, keccak256(abi.encode(instruction)));

        // Interactions first, by design: the book is a trusted system contract that never calls
        // back; its claim is what makes the amount this instruction's alone.
        (address merchant, uint128 amount) = _book.claimPayment(agreementId, instruction.payee, instruction.amount);

        // Effects
        _instructions[instructionId] = Instruction({
            agreementId: agreementId,
            payee: instruction.payee,
            state: InstructionState.Instructed,
            amount: amount
        });
        emit PaymentInstructed(instructionId, agreementId, instruction.payee, amount, merchant);
        _evidence.anchor(digest, EvidenceKinds.PAYMENT_INSTRUCTED, agreementId);
    }

    /// @inheritdoc ICustodyDesk
    function confirmPayout(PayoutReport calldata payout, IOracleHub.Report calldata report, bytes[] calldata signatures)
        external
    {
        // Checks
        _requireOracle();
        bytes32 agreementId = payout.agreementId;
        if (_bankReferenceUsed[payout.bankReference]) revert CustodyDeskDuplicateBankReference(payout.bankReference);
        Instruction storage instruction = _instructions[payout.instructionId];
        if (instruction.state != InstructionState.Instructed) {
            revert CustodyDeskInstructionNotOutstanding(payout.instructionId, instruction.state);
        }
        if (
            instruction.agreementId != agreementId || instruction.payee != payout.payee
                || instruction.amount != payout.amount
        ) {
            revert CustodyDeskInstructionMismatch(
                payout.instructionId, instruction.agreementId, instruction.payee, instruction.amount
            );
        }
        bytes32 digest = _consumeBankReport(report, signatures, agreementId, keccak256(abi.encode(payout)));

        // Effects
        _bankReferenceUsed[payout.bankReference] = true;
        instruction.state = InstructionState.Paid;
        // The money left the custody account, whoever it went to.
        _custody[_book.getAgreement(agreementId).merchant].held -= payout.amount;
        emit PayoutConfirmed(agreementId, payout.bankReference, payout.payee, payout.amount, payout.instructionId);

        // Interactions
        _book.recordPayout(agreementId, payout.payee, payout.amount);
        _evidence.anchor(digest, EvidenceKinds.PAYOUT_CONFIRMED, agreementId);
    }

    /// @inheritdoc ICustodyDesk
    function reportInstructionOutcome(
        InstructionOutcome calldata outcome,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external {
        // Checks
        _requireOracle();
        bytes32 instructionId = outcome.instructionId;
        Instruction storage instruction = _instructions[instructionId];
        bytes32 agreementId = instruction.agreementId;
        bool returned = outcome.outcome == InstructionState.Returned;
        if (!returned && outcome.outcome != InstructionState.Rejected) revert CustodyDeskInvalidOutcome(outcome.outcome);
        InstructionState needed = returned ? InstructionState.Paid : InstructionState.Instructed;
        if (instruction.state != needed) revert CustodyDeskInstructionNotOutstanding(instructionId, instruction.state);
        if (returned && _bankReferenceUsed[outcome.bankReference]) {
            revert CustodyDeskDuplicateBankReference(outcome.bankReference);
        }
        bytes32 digest = _consumeBankReport(report, signatures, instructionId, keccak256(abi.encode(outcome)));

        // Effects
        instruction.state = outcome.outcome;
        uint128 amount = instruction.amount;
        if (returned) {
            _bankReferenceUsed[outcome.bankReference] = true;
            _custody[_book.getAgreement(agreementId).merchant].held += amount;
            emit PaymentReturned(instructionId, agreementId, outcome.bankReference, amount, outcome.reasonCode);
        } else {
            emit PaymentRejected(instructionId, agreementId, outcome.reasonCode);
        }

        // Interactions: the amount is due again, and not instructed.
        _book.releaseClaim(agreementId, instruction.payee, amount, returned);
        _evidence.anchor(digest, EvidenceKinds.PAYMENT_OUTCOME, agreementId);
    }

    /// @inheritdoc ICustodyDesk
    function reconcileCustody(
        CustodyReconciliation calldata reconciliation,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external {
        // Checks
        _requireOracle();
        address merchant = reconciliation.merchant;
        if (_merchants.getMerchant(merchant).status == IMerchantRegistry.MerchantStatus.None) {
            revert CustodyDeskUnknownMerchant(merchant);
        }
        if (reconciliation.statementHash == bytes32(0)) revert CustodyDeskMissingStatementHash(merchant);
        CustodyAccount storage account = _custody[merchant];
        uint64 businessDay = reconciliation.businessDay;
        // In date order only: the desk's balance is today's, so an older statement would be
        // compared with postings made after it and look like an anomaly.
        if (businessDay <= account.lastReconciledDay) {
            revert CustodyDeskAlreadyReconciled(merchant, account.lastReconciledDay, businessDay);
        }
        // A bank's business day starts at most 14 hours before the UTC day does (UTC+14).
        uint64 latestDay = (report.issuedAt + 14 hours) / 1 days;
        if (businessDay > latestDay) revert CustodyDeskBusinessDayInFuture(merchant, businessDay, latestDay);
        _consumeBankReport(
            report, signatures, bytes32(uint256(uint160(merchant))), keccak256(abi.encode(reconciliation))
        );

        // Effects
        account.lastReconciledDay = businessDay;
        uint128 held = account.held;
        uint128 statementBalance = reconciliation.statementBalance;
        bytes32 statementHash = reconciliation.statementHash;
        emit CustodyReconciled(merchant, businessDay, statementBalance, held, statementHash);
        bool anomaly = held != statementBalance;
        if (anomaly) emit CustodyAnomaly(merchant, businessDay, held, statementBalance);

        // Interactions: the registry records the anomaly, raises the tier and anchors the statement.
        if (anomaly) _merchants.flagCustodyAnomaly(merchant, statementHash);
    }

    /// @inheritdoc ICustodyDesk
    function custodyHeld(address merchant) external view returns (uint128) {
        return _custody[merchant].held;
    }

    /// @inheritdoc ICustodyDesk
    function lastReconciledDay(address merchant) external view returns (uint64) {
        return _custody[merchant].lastReconciledDay;
    }

    /// @inheritdoc ICustodyDesk
    function getInstruction(bytes32 instructionId) external view returns (Instruction memory) {
        return _instructions[instructionId];
    }

    /// @inheritdoc ICustodyDesk
    function isBankReferenceUsed(bytes32 bankReference) external view returns (bool) {
        return _bankReferenceUsed[bankReference];
    }

    function _requireOracle() private view {
        if (!_membership.hasRole(msg.sender, IMembership.Role.Oracle)) revert CustodyDeskUnauthorized(msg.sender);
    }

    /// Checks the report is the bank feed's about `subject` carrying
    /// `payloadHash`, then has the hub verify and consume it; returns the report's digest.
    function _consumeBankReport(
        IOracleHub.Report calldata report,
        bytes[] calldata signatures,
        bytes32 subject,
        bytes32 payloadHash
    ) private returns (bytes32) {
        if (report.feed != Feeds.BANK || report.subject != subject || report.payloadHash != payloadHash) {
            revert CustodyDeskReportMismatch(payloadHash, report.payloadHash);
        }
        return _oracleHub.consume(report, signatures);
    }
}
