// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IInsurancePool} from "./interfaces/IInsurancePool.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";

/// @title InsurancePool
/// @notice Records insurers' policies on merchants and the claims defaults open against them.
/// @dev The insurer pays through its bank; the chain records entitlements and confirmations.
contract InsurancePool is IInsurancePool {
    IMembership private immutable _membership;
    IEvidenceRegistry private immutable _evidence;
    mapping(uint64 policyId => Policy) private _policies;
    mapping(address merchant => uint64[] policyIds) private _policiesOf;
    mapping(uint64 claimId => Claim) private _claims;
    mapping(bytes32 agreementId => uint64 claimId) private _claimOfAgreement;
    mapping(bytes32 bankReference => bool used) private _bankReferenceUsed;
    uint64 private _policyCount;
    uint64 private _claimCount;

    constructor(IMembership membership, IEvidenceRegistry evidence) {
        _membership = membership;
        _evidence = evidence;
    }

    modifier onlyRole(IMembership.Role role) {
        if (!_membership.hasRole(msg.sender, role)) revert InsurancePoolUnauthorized(msg.sender);
        _;
    }

    /// @inheritdoc IInsurancePool
    function writePolicy(address merchant, uint128 coverageLimit, uint64 start, uint64 end, bytes32 documentHash)
        external
        onlyRole(IMembership.Role.Insurer)
        returns (uint64 policyId)
    {
        if (merchant == address(0)) revert InsurancePoolInvalidTerm("merchant", 0);
        if (coverageLimit == 0) revert InsurancePoolInvalidTerm("coverageLimit", 0);
        if (start >= end) revert InsurancePoolInvalidTerm("end", end);

        policyId = ++_policyCount;
        _policies[policyId] = Policy({
            insurer: msg.sender,
            merchant: merchant,
            coverageLimit: coverageLimit,
            reserved: 0,
            start: start,
            end: end,
            documentHash: documentHash
        });
        _policiesOf[merchant].push(policyId);
        emit PolicyWritten(policyId, msg.sender, merchant, coverageLimit, start, end, documentHash);

        _evidence.anchor(
            keccak256(abi.encode(policyId, documentHash)),
            EvidenceKinds.POLICY_WRITTEN,
            bytes32(uint256(uint160(merchant)))
        );
    }

    /// @inheritdoc IInsurancePool
    function openClaim(bytes32 agreementId, address merchant, address consumer, uint128 loss)
        external
        onlyRole(IMembership.Role.System)
        returns (uint64 claimId, uint128 covered)
    {
        // Checks
        uint64 existing = _claimOfAgreement[agreementId];
        if (existing != 0) revert InsurancePoolDuplicateClaim(agreementId, existing);
        uint64 policyId = _policyInForce(merchant);

        // Effects
        if (policyId != 0) {
            Policy storage policy = _policies[policyId];
            uint128 remaining = policy.coverageLimit - policy.reserved;
            covered = loss < remaining ? loss : remaining;
            policy.reserved += covered;
        }
        claimId = ++_claimCount;
        _claims[claimId] = Claim({
            policyId: policyId,
            status: covered == 0 ? ClaimStatus.Uncovered : ClaimStatus.Open,
            agreementId: agreementId,
            merchant: merchant,
            consumer: consumer,
            loss: loss,
            covered: covered,
            paid: 0
        });
        _claimOfAgreement[agreementId] = claimId;
        emit ClaimOpened(claimId, agreementId, merchant, policyId, consumer, loss, covered);

        // Interactions
        _evidence.anchor(
            keccak256(abi.encode("claim", claimId, agreementId, loss, covered)), EvidenceKinds.CLAIM_OPENED, agreementId
        );
    }

    /// @inheritdoc IInsurancePool
    function confirmClaimPaid(uint64 claimId, uint128 amount, bytes32 bankReference) external {
        // Checks
        Claim storage claim = _claims[claimId];
        if (claim.status == ClaimStatus.None) revert InsurancePoolUnknownClaim(claimId);
        if (_policies[claim.policyId].insurer != msg.sender) revert InsurancePoolUnauthorized(msg.sender);
        uint128 outstanding = claim.covered - claim.paid;
        if (claim.status != ClaimStatus.Open || amount == 0 || amount > outstanding) {
            revert InsurancePoolPayoutExceedsCover(claimId, outstanding, amount);
        }
        if (_bankReferenceUsed[bankReference]) revert InsurancePoolDuplicateBankReference(bankReference);

        // Effects
        _bankReferenceUsed[bankReference] = true;
        claim.paid += amount;
        if (claim.paid == claim.covered) claim.status = ClaimStatus.Paid;
        emit ClaimPaid(claimId, bankReference, amount, claim.paid);

        // Interactions
        _evidence.anchor(
            keccak256(abi.encode("claim-paid", claimId, bankReference, amount)),
            EvidenceKinds.CLAIM_PAID,
            claim.agreementId
        );
    }

    /// @inheritdoc IInsurancePool
    function getPolicy(uint64 policyId) external view returns (Policy memory) {
        Policy memory policy = _policies[policyId];
        if (policy.insurer == address(0)) revert InsurancePoolUnknownPolicy(policyId);
        return policy;
    }

    /// @inheritdoc IInsurancePool
    function getClaim(uint64 claimId) external view returns (Claim memory) {
        Claim memory claim = _claims[claimId];
        if (claim.status == ClaimStatus.None) revert InsurancePoolUnknownClaim(claimId);
        return claim;
    }

    /// @inheritdoc IInsurancePool
    function claimOfAgreement(bytes32 agreementId) external view returns (uint64) {
        return _claimOfAgreement[agreementId];
    }

    /// @inheritdoc IInsurancePool
    function policiesOf(address merchant) external view returns (uint64[] memory) {
        return _policiesOf[merchant];
    }

    /// The first policy on `merchant` in force now with cover left, zero if none.
    function _policyInForce(address merchant) private view returns (uint64) {
        uint64[] storage ids = _policiesOf[merchant];
        for (uint256 i = 0; i < ids.length; ++i) {
            Policy storage policy = _policies[ids[i]];
            if (
                policy.start <= block.timestamp && block.timestamp <= policy.end
                    && policy.reserved < policy.coverageLimit
            ) return ids[i];
        }
        return 0;
    }
}
