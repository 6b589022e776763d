// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IOracleHub} from "./IOracleHub.sol";

/// @title IInsurancePool
/// @notice Performance-bond policies on merchants, and the claims a default opens against them.
/// @dev An insurer writes a policy; it counts only once the regulator has registered it, and at
/// most `MAX_POLICIES_PER_MERCHANT` registered policies cover a merchant at a time. Cover is fixed
/// at the moment the merchant was declared in default: a claim draws, in registration order, on
/// every registered policy in force at that moment (start <= defaultedAt <= end) until its loss is
/// covered or the cover runs out. Claims are opened only by the AgreementBook's default settlement,
/// and marked paid only when the bank feed reports the insurer's payment. Amounts in fen.
interface IInsurancePool {
    /// @notice A claim's state.
    enum ClaimStatus {
        None,
        Open,
        Paid,
        Uncovered
    }

    /// @notice A policy an insurer wrote on a merchant. Amounts in fen.
    /// @param reserved Cover already promised to claims; never above `coverageLimit`.
    /// @param registeredAt When the regulator registered it; zero while it is pending and counts
    /// for nothing.
    struct Policy {
        address insurer;
        address merchant;
        uint128 coverageLimit;
        uint128 reserved;
        uint64 start;
        uint64 end;
        bytes32 documentHash;
        uint64 registeredAt;
    }

    /// @notice A consumer's claim after a merchant's default. Amounts in fen.
    /// @param policyId The first policy the claim drew on, zero if none; {claimParts} lists all.
    /// @param loss What custody did not cover.
    /// @param covered What the policies promised to pay in total: min(loss, cover left).
    /// @param paid What the bank feed reported paid so far.
    /// @param defaultedAt When the merchant was declared in default: the moment cover was judged.
    struct Claim {
        uint64 policyId;
        ClaimStatus status;
        bytes32 agreementId;
        address merchant;
        address consumer;
        uint128 loss;
        uint128 covered;
        uint128 paid;
        uint64 defaultedAt;
    }

    /// @notice What one policy covers of one claim.
    struct ClaimPart {
        uint64 policyId;
        uint128 amount;
    }

    /// @notice The bank's report that the insurer's payment on a claim was booked to the consumer.
    /// @param bankReference SHA-256 of the bank's reference of the booking; each counts once.
    struct ClaimPayment {
        uint64 claimId;
        uint128 amount;
        bytes32 bankReference;
    }

    /// @notice The caller may not do this.
    error InsurancePoolUnauthorized(address caller);
    /// @notice The policy terms are invalid; `term` names the bad one.
    error InsurancePoolInvalidTerm(bytes32 term, uint256 value);
    /// @notice No claim has this id.
    error InsurancePoolUnknownClaim(uint64 claimId);
    /// @notice No policy has this id.
    error InsurancePoolUnknownPolicy(uint64 policyId);
    /// @notice The payout would exceed what the claim still covers.
    error InsurancePoolPayoutExceedsCover(uint64 claimId, uint128 outstanding, uint128 amount);
    /// @notice The bank reference was already used for a payout.
    error InsurancePoolDuplicateBankReference(bytes32 bankReference);
    /// @notice A claim for this agreement exists already.
    error InsurancePoolDuplicateClaim(bytes32 agreementId, uint64 claimId);
    /// @notice The policy was registered before (at `registeredAt`).
    error InsurancePoolPolicyAlreadyRegistered(uint64 policyId, uint64 registeredAt);
    /// @notice The policy ended (at `end`) before it could be registered (at `nowTime`).
    error InsurancePoolPolicyExpired(uint64 policyId, uint64 end, uint64 nowTime);
    /// @notice The merchant was declared in default at `defaultedAt`; its cover is fixed.
    error InsurancePoolMerchantDefaulted(address merchant, uint64 defaultedAt);
    /// @notice `merchant` already has `limit` registered policies in force or to come.
    error InsurancePoolTooManyPolicies(address merchant, uint256 limit);
    /// @notice The merchant was never declared in default, so no claim can be opened on it.
    error InsurancePoolMerchantNotDefaulted(address merchant);
    /// @notice The report's feed, subject or payload hash does not match its payload.
    error InsurancePoolReportMismatch(bytes32 expectedPayloadHash, bytes32 gotPayloadHash);

    /// @notice Emitted when an insurer wrote a policy; it counts once registered.
    event PolicyWritten(
        uint64 indexed policyId, address indexed insurer, address indexed merchant, uint128 coverageLimit,
        uint64 start, uint64 end, bytes32 documentHash
    );
    /// @notice Emitted when the regulator registered a policy: it now covers the merchant.
    event PolicyRegistered(uint64 indexed policyId, address indexed merchant, uint64 registeredAt);
    /// @notice Emitted when an expired policy left the merchant's registered list to make room.
    event PolicyRetired(uint64 indexed policyId, address indexed merchant);
    /// @notice Emitted when a default opened a claim; `covered` is the total of its
    /// {ClaimCovered} parts, zero when no policy applies; `policyId` is the first part's policy.
    event ClaimOpened(
        uint64 indexed claimId, bytes32 indexed agreementId, address indexed merchant, uint64 policyId,
        address consumer, uint128 loss, uint128 covered
    );
    /// @notice Emitted for each policy a claim draws on: `policyId` covers `amount` of it.
    event ClaimCovered(uint64 indexed claimId, uint64 indexed policyId, uint128 amount);
    /// @notice Emitted when the bank feed reported the insurer's payment on a claim.
    event ClaimPaid(uint64 indexed claimId, bytes32 indexed bankReference, uint128 amount, uint128 totalPaid);

    /// @notice Writes a policy covering `merchant`'s defaults declared during [start, end]. It is
    /// pending, and counts for nothing, until the regulator registers it.
    /// @dev Emits {PolicyWritten}.
    /// Requirements:
    /// - The caller is an insurer.
    /// - `coverageLimit` is positive; `start < end`; the merchant is not zero.
    /// @param merchant The merchant whose default the policy covers.
    /// @param coverageLimit The most the policy pays over all claims, in fen.
    /// @param start The first moment a default is covered (unix seconds).
    /// @param end The last moment a default is covered (unix seconds).
    /// @param documentHash SHA-256 of the policy document, kept off chain.
    /// @return policyId The policy's id, counting from 1.
    function writePolicy(address merchant, uint128 coverageLimit, uint64 start, uint64 end, bytes32 documentHash)
        external
        returns (uint64 policyId);

    /// @notice Registers a pending policy: from now on it covers its merchant.
    /// @dev Emits {PolicyRegistered}, and {PolicyRetired} for each expired policy it drops from
    /// the merchant's registered list (an expired policy can never be in force at a later default).
    /// Requirements:
    /// - The caller is a regulator.
    /// - The policy exists and is pending; it has not ended.
    /// - The merchant has not been declared in default.
    /// - The merchant has fewer than `MAX_POLICIES_PER_MERCHANT` unexpired registered policies.
    /// @param policyId The pending policy.
    function registerPolicy(uint64 policyId) external;

    /// @notice Opens a consumer's claim for the loss custody did not cover after `merchant`'s default.
    /// @dev Emits {ClaimOpened} and a {ClaimCovered} per policy drawn on. Draws, in registration
    /// order, on each registered policy in force when the merchant was declared in default, until
    /// the loss is covered or the cover runs out; a claim with no cover is recorded as Uncovered.
    /// Requirements:
    /// - The caller is the AgreementBook (its default settlement).
    /// - The merchant was declared in default.
    /// - One claim per agreement.
    /// @param agreementId The settled plan.
    /// @param merchant The defaulted merchant.
    /// @param consumer The plan's consumer, who is owed the loss.
    /// @param loss What custody did not cover, in fen.
    /// @return claimId The claim's id, counting from 1.
    /// @return covered What the policies will pay in total.
    function openClaim(bytes32 agreementId, address merchant, address consumer, uint128 loss)
        external
        returns (uint64 claimId, uint128 covered);

    /// @notice Records the insurer's payment on a claim, as the bank feed reports it.
    /// @dev Emits {ClaimPaid}.
    /// Requirements:
    /// - The caller has the Oracle role.
    /// - `report` is the bank feed's, about subject `bytes32(uint256(payment.claimId))`, carrying
    ///   `keccak256(abi.encode(payment))`, and the OracleHub accepts it with `signatures`.
    /// - The claim is Open; `payment.amount` is positive and within what the claim still covers.
    /// - The bank reference was never used.
    /// @param payment The payment the bank booked.
    /// @param report The bank feed's signed report carrying `payment`.
    /// @param signatures The feed signers' signatures over the report.
    function confirmClaimPaid(
        ClaimPayment calldata payment,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external;

    /// @notice The policy `policyId`, pending or registered.
    function getPolicy(uint64 policyId) external view returns (Policy memory);

    /// @notice The claim `claimId`.
    function getClaim(uint64 claimId) external view returns (Claim memory);

    /// @notice What each policy covers of claim `claimId`, in the order the claim drew on them.
    function claimParts(uint64 claimId) external view returns (ClaimPart[] memory);

    /// @notice The claim opened for an agreement, zero if none.
    function claimOfAgreement(bytes32 agreementId) external view returns (uint64);

    /// @notice The ids of the policies registered on `merchant`, in registration order; pending
    /// policies are not listed, nor expired ones dropped to make room.
    function policiesOf(address merchant) external view returns (uint64[] memory);

    /// @notice The most registered policies a merchant can have at a time.
    function MAX_POLICIES_PER_MERCHANT() external view returns (uint256);
}
