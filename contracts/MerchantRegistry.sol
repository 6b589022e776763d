// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {IMerchantRegistry} from "./interfaces/IMerchantRegistry.sol";
import {IOracleHub} from "./interfaces/IOracleHub.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";
import {Feeds} from "./libraries/Feeds.sol";

/// @title MerchantRegistry
/// @notice Merchants' onboarding, licences, status and risk tiers.
contract MerchantRegistry is IMerchantRegistry {
    uint16 private constant FULL_BPS = 10_000;
    // A century: keeps licensedSince + minimum age far from overflowing.
    uint64 private constant MAX_LICENCE_AGE = 36_500 days;
    // A registry answer older than a year says nothing about the business today.
    uint64 private constant MAX_LICENCE_VALIDITY = 366 days;

    IMembership private immutable _membership;
    IOracleHub private immutable _oracleHub;
    IEvidenceRegistry private immutable _evidence;
    mapping(address merchant => Merchant) private _merchants;
    mapping(RiskTier tier => uint16 bps) private _custodyFloors;
    mapping(address merchant => CustodyAnomalies) private _custodyAnomalies;
    // Kept apart from the Merchant record so its layout does not change; zero until a default.
    mapping(address merchant => uint64 declaredAt) private _defaultedAt;
    uint64 private _minLicenceAge;
    uint64 private _licenceValidity;
    // Makes every status and tier change's evidence hash unique, even two alike in one block.
    uint256 private _changeCount;

    /// @param custodyFloors The custody floor of each tier, low to blocked, in basis points.
    /// @param minLicenceAge_ Seconds a licence must have existed (six months on the devnet).
    /// @param licenceValidity_ Seconds a licence check stays valid (30 days on the devnet).
    constructor(
        IMembership membership,
        IOracleHub oracleHub,
        IEvidenceRegistry evidence,
        uint16[4] memory custodyFloors,
        uint64 minLicenceAge_,
        uint64 licenceValidity_
    ) {
        _membership = membership;
        _oracleHub = oracleHub;
        _evidence = evidence;
        for (uint256 i = 0; i < 4; ++i) {
            _checkFloor(RiskTier(i), custodyFloors[i], i == 0 ? 0 : custodyFloors[i - 1], i == 3 ? FULL_BPS : custodyFloors[i + 1]);
            _custodyFloors[RiskTier(i)] = custodyFloors[i];
        }
        if (minLicenceAge_ > MAX_LICENCE_AGE) revert MerchantRegistryInvalidLicenceAge(minLicenceAge_);
        _minLicenceAge = minLicenceAge_;
        _checkLicenceValidity(licenceValidity_);
        _licenceValidity = licenceValidity_;
    }

    modifier onlyRole(IMembership.Role role) {
        if (!_membership.hasRole(msg.sender, role)) revert MerchantRegistryUnauthorized(msg.sender);
        _;
    }

    /// @inheritdoc IMerchantRegistry
    function applyAsMerchant(bytes32 usccHash, bytes32 nameHash, bytes32 industry, bytes32 receivingAccountHash)
        external
        onlyRole(IMembership.Role.Merchant)
    {
        Merchant storage merchant = _merchants[msg.sender];
        if (merchant.status != MerchantStatus.None) revert MerchantRegistryInvalidStatus(msg.sender, merchant.status);
        if (usccHash == bytes32(0)) revert MerchantRegistryMissingField("usccHash");
        if (nameHash == bytes32(0)) revert MerchantRegistryMissingField("nameHash");
        if (industry == bytes32(0)) revert MerchantRegistryMissingField("industry");
        if (receivingAccountHash == bytes32(0)) revert MerchantRegistryMissingField("receivingAccountHash");

        merchant.status = MerchantStatus.Applied;
        merchant.usccHash = usccHash;
        merchant.nameHash = nameHash;
        merchant.industry = industry;
        merchant.receivingAccountHash = receivingAccountHash;
        emit MerchantApplied(msg.sender, usccHash, industry, nameHash, receivingAccountHash);
        emit MerchantStatusChanged(msg.sender, MerchantStatus.None, MerchantStatus.Applied, bytes32(0));

        _evidence.anchor(
            keccak256(abi.encode(msg.sender, usccHash, nameHash, industry, receivingAccountHash)),
            EvidenceKinds.MERCHANT_APPLIED,
            _subject(msg.sender)
        );
    }

    /// @inheritdoc IMerchantRegistry
    function attestLicence(
        LicenceAttestation calldata attestation,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external onlyRole(IMembership.Role.Oracle) {
        // Checks
        Merchant storage merchant = _applied(attestation.merchant);
        _checkReport(report, Feeds.LICENCE, attestation.merchant, keccak256(abi.encode(attestation)));
        bytes32 digest = _oracleHub.consume(report, signatures);

        // Effects
        merchant.licence = attestation.status;
        merchant.licensedSince = attestation.licensedSince;
        merchant.licenceFlags = attestation.flags;
        merchant.licenceCheckedAt = attestation.checkedAt;
        emit LicenceAttested(
            attestation.merchant,
            attestation.status,
            attestation.flags,
            attestation.licensedSince,
            attestation.checkedAt,
            attestation.responseHash
        );
        if (merchant.status == MerchantStatus.Approved && !_licenceSound(merchant)) {
            // A revoked or flagged licence stops new sales at once, without waiting for the regulator.
            // A stale check is no finding against the merchant: licenceValid just stays false.
            _setStatus(attestation.merchant, merchant, MerchantStatus.Suspended, attestation.responseHash);
        }

        // Interactions
        _evidence.anchor(digest, EvidenceKinds.LICENCE_ATTESTED, _subject(attestation.merchant));
    }

    /// @inheritdoc IMerchantRegistry
    function approve(address account, bytes32 reasonHash) external onlyRole(IMembership.Role.Regulator) {
        Merchant storage merchant = _merchants[account];
        if (merchant.status != MerchantStatus.Applied && merchant.status != MerchantStatus.Suspended) {
            revert MerchantRegistryInvalidStatus(account, merchant.status);
        }
        if (!_licenceSound(merchant)) {
            revert MerchantRegistryLicenceNotValid(
                account, merchant.licence, merchant.licenceFlags, merchant.licensedSince
            );
        }
        if (!_licenceCheckCurrent(merchant)) {
            revert MerchantRegistryLicenceCheckExpired(
                account, merchant.licenceCheckedAt, _licenceCheckExpiry(merchant)
            );
        }
        _setStatus(account, merchant, MerchantStatus.Approved, reasonHash);
    }

    /// @inheritdoc IMerchantRegistry
    function suspend(address account, bytes32 reasonHash) external onlyRole(IMembership.Role.Regulator) {
        Merchant storage merchant = _merchants[account];
        if (merchant.status != MerchantStatus.Approved) revert MerchantRegistryInvalidStatus(account, merchant.status);
        _setStatus(account, merchant, MerchantStatus.Suspended, reasonHash);
    }

    /// @inheritdoc IMerchantRegistry
    function revoke(address account, bytes32 reasonHash) external onlyRole(IMembership.Role.Regulator) {
        Merchant storage merchant = _merchants[account];
        MerchantStatus status = merchant.status;
        if (status != MerchantStatus.Applied && status != MerchantStatus.Approved && status != MerchantStatus.Suspended)
        {
            revert MerchantRegistryInvalidStatus(account, status);
        }
        _setStatus(account, merchant, MerchantStatus.Revoked, reasonHash);
    }

    /// @inheritdoc IMerchantRegistry
    function declareDefault(address account, bytes32 reasonHash) external onlyRole(IMembership.Role.Regulator) {
        Merchant storage merchant = _merchants[account];
        MerchantStatus status = merchant.status;
        if (status != MerchantStatus.Approved && status != MerchantStatus.Suspended && status != MerchantStatus.Revoked)
        {
            revert MerchantRegistryInvalidStatus(account, status);
        }
        _defaultedAt[account] = uint64(block.timestamp);
        _setStatus(account, merchant, MerchantStatus.Defaulted, reasonHash);
    }

    /// @inheritdoc IMerchantRegistry
    function setRiskTier(address account, RiskTier tier, bytes32 reasonHash)
        external
        onlyRole(IMembership.Role.Regulator)
    {
        Merchant storage merchant = _applied(account);
        _setTierFloor(account, merchant, tier, reasonHash);
        _setTier(account, merchant, tier, 0, reasonHash);
    }

    /// @inheritdoc IMerchantRegistry
    function reportRisk(RiskReport calldata riskReport, IOracleHub.Report calldata report, bytes[] calldata signatures)
        external
        onlyRole(IMembership.Role.Oracle)
    {
        Merchant storage merchant = _applied(riskReport.merchant);
        _checkReport(report, Feeds.RISK, riskReport.merchant, keccak256(abi.encode(riskReport)));
        bytes32 digest = _oracleHub.consume(report, signatures);
        // The feed lowers a tier no further than its floor: only the regulator lowers the floor.
        RiskTier tier = riskReport.tier < merchant.tierFloor ? merchant.tierFloor : riskReport.tier;
        _setTier(riskReport.merchant, merchant, tier, riskReport.score, digest);
    }

    /// @inheritdoc IMerchantRegistry
    function flagCustodyAnomaly(address account, bytes32 reasonHash)
        external
        onlyRole(IMembership.Role.System)
        returns (uint32 count)
    {
        Merchant storage merchant = _applied(account);
        CustodyAnomalies storage anomalies = _custodyAnomalies[account];
        count = anomalies.count + 1;
        anomalies.count = count;
        anomalies.lastFlaggedAt = uint64(block.timestamp);
        anomalies.lastReasonHash = reasonHash;
        emit CustodyAnomalyFlagged(account, count, reasonHash);
        // Raised, not suspended: the bank's statement may itself be wrong; the regulator decides,
        // and only the regulator lowers the floor again.
        if (merchant.tierFloor < RiskTier.High) _setTierFloor(account, merchant, RiskTier.High, reasonHash);
        if (merchant.tier < RiskTier.High) _setTier(account, merchant, RiskTier.High, 0, reasonHash);
        _evidence.anchor(reasonHash, EvidenceKinds.CUSTODY_ANOMALY, _subject(account));
    }

    /// @inheritdoc IMerchantRegistry
    function changeReceivingAccount(bytes32 receivingAccountHash) external onlyRole(IMembership.Role.Merchant) {
        Merchant storage merchant = _applied(msg.sender);
        if (receivingAccountHash == bytes32(0)) revert MerchantRegistryMissingField("receivingAccountHash");
        bytes32 previous = merchant.receivingAccountHash;
        merchant.receivingAccountHash = receivingAccountHash;
        emit ReceivingAccountChanged(msg.sender, previous, receivingAccountHash);
    }

    /// @inheritdoc IMerchantRegistry
    function setCustodyFloor(RiskTier tier, uint16 bps) external onlyRole(IMembership.Role.Regulator) {
        uint16 below = tier == RiskTier.Low ? 0 : _custodyFloors[RiskTier(uint8(tier) - 1)];
        uint16 above = tier == RiskTier.Blocked ? FULL_BPS : _custodyFloors[RiskTier(uint8(tier) + 1)];
        _checkFloor(tier, bps, below, above);
        _custodyFloors[tier] = bps;
        emit CustodyFloorSet(tier, bps);
    }

    /// @inheritdoc IMerchantRegistry
    function setMinLicenceAge(uint64 secondsRequired) external onlyRole(IMembership.Role.Regulator) {
        if (secondsRequired > MAX_LICENCE_AGE) revert MerchantRegistryInvalidLicenceAge(secondsRequired);
        _minLicenceAge = secondsRequired;
        emit MinLicenceAgeSet(secondsRequired);
    }

    /// @inheritdoc IMerchantRegistry
    function setLicenceValidity(uint64 secondsValid) external onlyRole(IMembership.Role.Regulator) {
        _checkLicenceValidity(secondsValid);
        _licenceValidity = secondsValid;
        emit LicenceValiditySet(secondsValid);
    }

    /// @inheritdoc IMerchantRegistry
    function canSell(address account) external view returns (bool) {
        Merchant storage merchant = _merchants[account];
        return merchant.status == MerchantStatus.Approved && merchant.tier != RiskTier.Blocked && licenceValid(account);
    }

    /// @inheritdoc IMerchantRegistry
    function licenceValid(address account) public view returns (bool) {
        Merchant storage merchant = _merchants[account];
        return _licenceSound(merchant) && _licenceCheckCurrent(merchant);
    }

    /// @inheritdoc IMerchantRegistry
    function custodyRatioBps(address account, uint16 templateMinBps) external view returns (uint16) {
        uint16 floor = _custodyFloors[_merchants[account].tier];
        return templateMinBps > floor ? templateMinBps : floor;
    }

    /// @inheritdoc IMerchantRegistry
    function getMerchant(address account) external view returns (Merchant memory) {
        return _merchants[account];
    }

    /// @inheritdoc IMerchantRegistry
    function custodyFloor(RiskTier tier) external view returns (uint16) {
        return _custodyFloors[tier];
    }

    /// @inheritdoc IMerchantRegistry
    function minLicenceAge() external view returns (uint64) {
        return _minLicenceAge;
    }

    /// @inheritdoc IMerchantRegistry
    function licenceValidity() external view returns (uint64) {
        return _licenceValidity;
    }

    /// @inheritdoc IMerchantRegistry
    function custodyAnomalies(address account) external view returns (CustodyAnomalies memory) {
        return _custodyAnomalies[account];
    }

    /// @inheritdoc IMerchantRegistry
    function defaultedAt(address account) external view returns (uint64) {
        return _defaultedAt[account];
    }

    function _applied(address account) private view returns (Merchant storage merchant) {
        merchant = _merchants[account];
        if (merchant.status == MerchantStatus.None) revert MerchantRegistryInvalidStatus(account, merchant.status);
    }

    function _checkReport(IOracleHub.Report calldata report, bytes32 feed, address merchant, bytes32 payloadHash)
        private
        pure
    {
        if (report.feed != feed || report.subject != _subject(merchant) || report.payloadHash != payloadHash) {
            revert MerchantRegistryReportMismatch(payloadHash, report.payloadHash);
        }
    }

    function _checkFloor(RiskTier tier, uint16 bps, uint16 below, uint16 above) private pure {
        if (bps > FULL_BPS || bps < below || bps > above) revert MerchantRegistryInvalidCustodyFloor(tier, bps);
    }

    function _checkLicenceValidity(uint64 secondsValid) private pure {
        if (secondsValid == 0 || secondsValid > MAX_LICENCE_VALIDITY) {
            revert MerchantRegistryInvalidLicenceValidity(secondsValid);
        }
    }

    /// The last check found the licence active, unflagged and old enough.
    function _licenceSound(Merchant storage merchant) private view returns (bool) {
        return merchant.licence == LicenceStatus.Active && merchant.licenceFlags == 0
            && uint256(merchant.licensedSince) + _minLicenceAge <= block.timestamp;
    }

    /// The last check is recent enough to count.
    function _licenceCheckCurrent(Merchant storage merchant) private view returns (bool) {
        return _licenceCheckExpiry(merchant) >= block.timestamp;
    }

    function _licenceCheckExpiry(Merchant storage merchant) private view returns (uint256) {
        return uint256(merchant.licenceCheckedAt) + _licenceValidity;
    }

    function _setStatus(address account, Merchant storage merchant, MerchantStatus status, bytes32 reasonHash)
        private
    {
        MerchantStatus previous = merchant.status;
        merchant.status = status;
        emit MerchantStatusChanged(account, previous, status, reasonHash);
        _evidence.anchor(
            keccak256(abi.encode(account, previous, status, reasonHash, ++_changeCount)),
            EvidenceKinds.MERCHANT_STATUS_CHANGED,
            _subject(account)
        );
    }

    function _setTier(address account, Merchant storage merchant, RiskTier tier, uint32 score, bytes32 reasonHash)
        private
    {
        RiskTier previous = merchant.tier;
        merchant.tier = tier;
        emit RiskTierChanged(account, previous, tier, score);
        _evidence.anchor(
            keccak256(abi.encode(account, previous, tier, score, reasonHash, ++_changeCount)),
            EvidenceKinds.RISK_TIER_CHANGED,
            _subject(account)
        );
    }

    function _setTierFloor(address account, Merchant storage merchant, RiskTier floor, bytes32 reasonHash) private {
        RiskTier previous = merchant.tierFloor;
        if (previous == floor) return;
        merchant.tierFloor = floor;
        emit RiskTierFloorChanged(account, previous, floor, reasonHash);
    }

    function _subject(address account) private pure returns (bytes32) {
        return bytes32(uint256(uint160(account)));
    }
}
