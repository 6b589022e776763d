// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IInsurancePool
/// @notice Performance-bond policies on merchants, and the claims a default opens against them.
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
    struct Policy {
        address insurer;
        address merchant;
        uint128 coverageLimit;
        uint128 reserved;
        uint64 start;
        uint64 end;
        bytes32 documentHash;
    }

    /// @notice A consumer's claim after a merchant's default. Amounts in fen.
    /// @param loss What custody did not cover.
    /// @param covered What the policy promised to pay: min(loss, remaining cover).
    /// @param paid What the insurer confirmed paid so far.
    struct Claim {
        uint64 policyId;
        ClaimStatus status;
        bytes32 agreementId;
        address merchant;
        address consumer;
        uint128 loss;
        uint128 covered;
        uint128 paid;
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

    /// @notice Emitted when an insurer wrote a policy.
    event PolicyWritten(
        uint64 indexed policyId, address indexed insurer, address indexed merchant, uint128 coverageLimit,
        uint64 start, uint64 end, bytes32 documentHash
    );
    /// @notice Emitted when a default opened a claim; `covered` may be zero when no policy applies.
    event ClaimOpened(
        uint64 indexed claimId, bytes32 indexed agreementId, address indexed merchant, uint64 policyId,
        address consumer, uint128 loss, uint128 covered
    );
    /// @notice Emitted when the insurer confirmed a payout on a claim.
    event ClaimPaid(uint64 indexed claimId, bytes32 indexed bankReference, uint128 amount, uint128 totalPaid);

    /// @notice Writes a policy covering `merchant`'s defaults during [start, end].
    /// @dev Emits {PolicyWritten}. Requirements: the caller is an insurer; `coverageLimit` positive;
    /// `start < end`; the merchant is not zero.
    /// @return policyId The policy's id, counting from 1.
    function writePolicy(address merchant, uint128 coverageLimit, uint64 start, uint64 end, bytes32 documentHash)
        external
        returns (uint64 policyId);

    /// @notice Opens a claim for a consumer's uncovered loss after `merchant`'s default.
    /// @dev Emits {ClaimOpened}. Covers from the merchant's first policy in force with cover left;
    /// a claim with no such policy is recorded as Uncovered for the regulator.
    /// Requirements: the caller is a system contract (the agreement book); one claim per agreement.
    /// @return claimId The claim's id, counting from 1.
    /// @return covered What the policy will pay.
    function openClaim(bytes32 agreementId, address merchant, address consumer, uint128 loss)
        external
        returns (uint64 claimId, uint128 covered);

    /// @notice The insurer confirms it paid `amount` on a claim.
    /// @dev Emits {ClaimPaid}. Requirements: the caller is the policy's insurer; the claim is Open;
    /// the total paid stays within `covered`; the bank reference was never used.
    function confirmClaimPaid(uint64 claimId, uint128 amount, bytes32 bankReference) external;

    /// @notice The policy `policyId`.
    function getPolicy(uint64 policyId) external view returns (Policy memory);

    /// @notice The claim `claimId`.
    function getClaim(uint64 claimId) external view returns (Claim memory);

    /// @notice The claim opened for an agreement, zero if none.
    function claimOfAgreement(bytes32 agreementId) external view returns (uint64);

    /// @notice The ids of the policies written on `merchant`.
    function policiesOf(address merchant) external view returns (uint64[] memory);
}
