// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IInsurancePool} from "./interfaces/IInsurancePool.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {IMerchantRegistry} from "./interfaces/IMerchantRegistry.sol";
import {IOracleHub} from "./interfaces/IOracleHub.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";
import {Feeds} from "./libraries/Feeds.sol";

/// @title InsurancePool
/// @notice Records insurers' policies on merchants and the claims defaults open against them.
/// @dev The insurer pays through its bank; the chain records entitlements, and the bank feed
/// confirms the payments.
contract InsurancePool is IInsurancePool {
    /// @inheritdoc IInsurancePool
    uint256 public constant MAX_POLICIES_PER_MERCHANT = 8;

    IMembership private immutable _membership;
    IOracleHub private immutable _oracleHub;
    IEvidenceRegistry private immutable _evidence;
    IMerchantRegistry private immutable _merchants;
    // The AgreementBook, deployed after the pool at an address the deployer predicts.
    address private immutable _book;

    mapping(uint64 policyId => Policy) private _policies;
    mapping(address merchant => uint64[] policyIds) private _registeredOf;
    mapping(uint64 claimId => Claim) private _claims;
    mapping(uint64 claimId => ClaimPart[] parts) private _claimParts;
    mapping(bytes32 agreementId => uint64 claimId) private _claimOfAgreement;
    mapping(bytes32 bankReference => bool used) private _bankReferenceUsed;
    uint64 private _policyCount;
    uint64 private _claimCount;

    constructor(
        IMembership membership,
        IOracleHub oracleHub,
        IEvidenceRegistry evidence,
        IMerchantRegistry merchants,
        address book
    ) {
        _membership = membership;
        _oracleHub = oracleHub;
        _evidence = evidence;
        _merchants = merchants;
        _book = book;
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
            documentHash: documentHash,
            registeredAt: 0
        });
        emit PolicyWritten(policyId, msg.sender, merchant, coverageLimit, start, end, documentHash);

        _evidence.anchor(
            keccak256(abi.encode(policyId, documentHash)),
            EvidenceKinds.POLICY_WRITTEN,
            bytes32(uint256(uint160(merchant)))
        );
    }

    /// @inheritdoc IInsurancePool
    function registerPolicy(uint64 policyId) external onlyRole(IMembership.Role.Regulator) {
        // Checks
        Policy storage policy = _policies[policyId];
        if (policy.insurer == address(0)) revert InsurancePoolUnknownPolicy(policyId);
        if (policy.registeredAt != 0) revert InsurancePoolPolicyAlreadyRegistered(policyId, policy.registeredAt);
        uint64 nowTime = uint64(block.timestamp);
        if (policy.end < nowTime) revert InsurancePoolPolicyExpired(policyId, policy.end, nowTime);
        address merchant = policy.merchant;
        uint64 defaultedAt = _merchants.defaultedAt(merchant);
        if (defaultedAt != 0) revert InsurancePoolMerchantDefaulted(merchant, defaultedAt);

        // Effects: expired policies can never be in force at a later default, so they make room.
        uint64[] storage registered = _registeredOf[merchant];
        _retireExpired(merchant, registered, nowTime);
        if (registered.length >= MAX_POLICIES_PER_MERCHANT) {
            revert InsurancePoolTooManyPolicies(merchant, MAX_POLICIES_PER_MERCHANT);
        }
        policy.registeredAt = nowTime;
        registered.push(policyId);
        emit PolicyRegistered(policyId, merchant, nowTime);
    }

    /// @inheritdoc IInsurancePool
    function openClaim(bytes32 agreementId, address merchant, address consumer, uint128 loss)
        external
        returns (uint64 claimId, uint128 covered)
    {
        // Checks
        if (msg.sender != _book) revert InsurancePoolUnauthorized(msg.sender);
        uint64 existing = _claimOfAgreement[agreementId];
        if (existing != 0) revert InsurancePoolDuplicateClaim(agreementId, existing);
        uint64 defaultedAt = _merchants.defaultedAt(merchant);
        if (defaultedAt == 0) revert InsurancePoolMerchantNotDefaulted(merchant);

        // Effects: draw on each policy in force at the default, in registration order. The list
        // is frozen at the default (no registration after it) and holds at most
        // MAX_POLICIES_PER_MERCHANT policies, so this loop is bounded.
        claimId = ++_claimCount;
        uint64 firstPolicyId;
        uint64[] storage registered = _registeredOf[merchant];
        ClaimPart[] storage parts = _claimParts[claimId];
        for (uint256 i = 0; i < registered.length && covered < loss; ++i) {
            uint64 policyId = registered[i];
            Policy storage policy = _policies[policyId];
            if (policy.start > defaultedAt || defaultedAt > policy.end) continue;
            uint128 left = policy.coverageLimit - policy.reserved;
            if (left == 0) continue;
            uint128 amount = loss - covered < left ? loss - covered : left;
            policy.reserved += amount;
            covered += amount;
            parts.push(ClaimPart({policyId: policyId, amount: amount}));
            if (firstPolicyId == 0) firstPolicyId = policyId;
        }
        _claims[claimId] = Claim({
            policyId: firstPolicyId,
            status: covered == 0 ? ClaimStatus.Uncovered : ClaimStatus.Open,
            agreementId: agreementId,
            merchant: merchant,
            consumer: consumer,
            loss: loss,
            covered: covered,
            paid: 0,
            defaultedAt: defaultedAt
        });
        _claimOfAgreement[agreementId] = claimId;
        emit ClaimOpened(claimId, agreementId, merchant, firstPolicyId, consumer, loss, covered);
        for (uint256 i = 0; i < parts.length; ++i) {
            emit ClaimCovered(claimId, parts[i].policyId, parts[i].amount);
        }

        // Interactions
        _evidence.anchor(
            keccak256(abi.encode("claim", claimId, agreementId, loss, covered)), EvidenceKinds.CLAIM_OPENED, agreementId
        );
    }

    /// @inheritdoc IInsurancePool
    function confirmClaimPaid(
        ClaimPayment calldata payment,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external onlyRole(IMembership.Role.Oracle) {
        // Checks
        uint64 claimId = payment.claimId;
        uint128 amount = payment.amount;
        bytes32 bankReference = payment.bankReference;
        Claim storage claim = _claims[claimId];
        if (claim.status == ClaimStatus.None) revert InsurancePoolUnknownClaim(claimId);
        uint128 outstanding = claim.covered - claim.paid;
        if (claim.status != ClaimStatus.Open || amount == 0 || amount > outstanding) {
            revert InsurancePoolPayoutExceedsCover(claimId, outstanding, amount);
        }
        if (_bankReferenceUsed[bankReference]) revert InsurancePoolDuplicateBankReference(bankReference);
        bytes32 payloadHash = keccak256(abi.encode(payment));
        if (
            report.feed != Feeds.BANK || report.subject != bytes32(uint256(claimId))
                || report.payloadHash != payloadHash
        ) revert InsurancePoolReportMismatch(payloadHash, report.payloadHash);
        _oracleHub.consume(report, signatures);

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
    function claimParts(uint64 claimId) external view returns (ClaimPart[] memory) {
        if (_claims[claimId].status == ClaimStatus.None) revert InsurancePoolUnknownClaim(claimId);
        return _claimParts[claimId];
    }

    /// @inheritdoc IInsurancePool
    function claimOfAgreement(bytes32 agreementId) external view returns (uint64) {
        return _claimOfAgreement[agreementId];
    }

    /// @inheritdoc IInsurancePool
    function policiesOf(address merchant) external view returns (uint64[] memory) {
        return _registeredOf[merchant];
    }

    /// Drops the policies that ended before `nowTime` from `registered`, keeping the others in
    /// registration order.
    function _retireExpired(address merchant, uint64[] storage registered, uint64 nowTime) private {
        uint256 kept = 0;
        uint256 count = registered.length;
        for (uint256 i = 0; i < count; ++i) {
            uint64 policyId = registered[i];
            if (_policies[policyId].end < nowTime) {
                emit PolicyRetired(policyId, merchant);
            } else {
                if (kept != i) registered[kept] = policyId;
                ++kept;
            }
        }
        for (uint256 i = kept; i < count; ++i) {
            registered.pop();
        }
    }
}
