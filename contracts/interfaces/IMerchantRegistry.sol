// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IOracleHub} from "./IOracleHub.sol";

/// @title IMerchantRegistry
/// @notice Merchant onboarding, business-licence attestations, status and risk tier.
/// @dev A merchant may sell new plans only while approved, licensed, and not in the blocked tier.
interface IMerchantRegistry {
    /// @notice A merchant's standing on the platform.
    enum MerchantStatus {
        None,
        Applied,
        Approved,
        Suspended,
        Revoked,
        Defaulted
    }

    /// @notice The business licence's status in the registry.
    enum LicenceStatus {
        Unknown,
        Active,
        Revoked,
        Cancelled,
        InDeregistration
    }

    /// @notice Risk tiers; a higher tier raises the custody floor, `Blocked` stops new sales.
    enum RiskTier {
        Low,
        Medium,
        High,
        Blocked
    }

    /// @notice A merchant's record. Personal and business data stay off chain: only hashes here.
    /// @dev `tierFloor` is the lowest tier the risk feed may set: the regulator's last decision,
    /// raised to at least High by a custody anomaly. It packs with the fields before
    /// `industry` into one storage slot.
    struct Merchant {
        MerchantStatus status;
        RiskTier tier;
        RiskTier tierFloor;
        LicenceStatus licence;
        uint16 licenceFlags;
        uint64 licensedSince;
        uint64 licenceCheckedAt;
        bytes32 industry;
        bytes32 usccHash;
        bytes32 nameHash;
        bytes32 receivingAccountHash;
    }

    /// @notice The licence oracle's signed finding about a merchant.
    /// @param merchant The merchant's account.
    /// @param status The licence status in the registry.
    /// @param licensedSince When the licence was issued (unix seconds).
    /// @param flags Problems found: bit 0 abnormal operations list, bit 1 dishonest debtor list,
    /// bit 2 name mismatch, bit 3 business scope does not cover the industry.
    /// @param checkedAt When the registry was queried.
    /// @param responseHash SHA-256 of the registry's raw response, kept off chain as evidence.
    struct LicenceAttestation {
        address merchant;
        LicenceStatus status;
        uint64 licensedSince;
        uint16 flags;
        uint64 checkedAt;
        bytes32 responseHash;
    }

    /// @notice The risk oracle's signed tier for a merchant.
    struct RiskReport {
        address merchant;
        RiskTier tier;
        uint32 score;
        bytes32 signalsHash;
    }

    /// @notice The custody anomalies found for a merchant by the bank's statements.
    /// @param count How many reconciliations found the statement's balance different from the book's.
    /// @param lastFlaggedAt When the last one was recorded (unix seconds), 0 if never.
    /// @param lastReasonHash The last one's reason: the SHA-256 of the bank statement.
    struct CustodyAnomalies {
        uint32 count;
        uint64 lastFlaggedAt;
        bytes32 lastReasonHash;
    }

    /// @notice The caller may not do this.
    error MerchantRegistryUnauthorized(address caller);
    /// @notice The merchant is in `status`, which does not allow the action.
    error MerchantRegistryInvalidStatus(address merchant, MerchantStatus status);
    /// @notice The merchant's licence does not allow approval.
    error MerchantRegistryLicenceNotValid(address merchant, LicenceStatus status, uint16 flags, uint64 licensedSince);
    /// @notice The report's feed, subject or payload does not match what it claims to carry.
    error MerchantRegistryReportMismatch(bytes32 expectedPayloadHash, bytes32 gotPayloadHash);
    /// @notice A required hash or the industry is zero.
    error MerchantRegistryMissingField(bytes32 field);
    /// @notice Basis points above 10000, or custody floors not rising with the tier.
    error MerchantRegistryInvalidCustodyFloor(RiskTier tier, uint16 bps);

    /// @notice The minimum licence age is above a century.
    error MerchantRegistryInvalidLicenceAge(uint64 secondsRequired);
    /// @notice The merchant's last licence check is too old: it was valid until `expiredAt`.
    error MerchantRegistryLicenceCheckExpired(address merchant, uint64 checkedAt, uint256 expiredAt);
    /// @notice A licence check's validity must be at least a second and at most 366 days.
    error MerchantRegistryInvalidLicenceValidity(uint64 secondsValid);

    /// @notice Emitted when a merchant applied.
    event MerchantApplied(
        address indexed merchant, bytes32 indexed usccHash, bytes32 indexed industry, bytes32 nameHash,
        bytes32 receivingAccountHash
    );
    /// @notice Emitted when a licence attestation was recorded.
    event LicenceAttested(
        address indexed merchant, LicenceStatus indexed status, uint16 flags, uint64 licensedSince,
        uint64 checkedAt, bytes32 responseHash
    );
    /// @notice Emitted when a merchant's status changed; `reasonHash` points at the off-chain reason.
    event MerchantStatusChanged(
        address indexed merchant, MerchantStatus indexed previous, MerchantStatus indexed current, bytes32 reasonHash
    );
    /// @notice Emitted when a merchant's risk tier changed, or the risk feed reported it again.
    event RiskTierChanged(address indexed merchant, RiskTier indexed previous, RiskTier indexed current, uint32 score);
    /// @notice Emitted when the lowest tier the risk feed may set for a merchant changed;
    /// `reasonHash` is the regulator's reason or the bank statement behind a custody anomaly.
    event RiskTierFloorChanged(
        address indexed merchant, RiskTier indexed previous, RiskTier indexed current, bytes32 reasonHash
    );
    /// @notice Emitted when a merchant changed its receiving account (a risk signal).
    event ReceivingAccountChanged(address indexed merchant, bytes32 previousHash, bytes32 currentHash);
    /// @notice Emitted when a tier's custody floor changed.
    event CustodyFloorSet(RiskTier indexed tier, uint16 bps);
    /// @notice Emitted when the minimum licence age changed.
    event MinLicenceAgeSet(uint64 secondsRequired);
    /// @notice Emitted when the time a licence check stays valid changed.
    event LicenceValiditySet(uint64 secondsValid);
    /// @notice Emitted when a custody anomaly was recorded for a merchant; `count` is its total.
    event CustodyAnomalyFlagged(address indexed merchant, uint32 count, bytes32 reasonHash);

    /// @notice A merchant account applies to sell prepaid plans.
    /// @dev Emits {MerchantApplied}. Requirements: the caller holds the Merchant role and has not
    /// applied before; no field is zero.
    /// @param usccHash Hash of the unified social credit code.
    /// @param nameHash Hash of the legal name.
    /// @param industry The industry, e.g. keccak256("training").
    /// @param receivingAccountHash Hash of the bank account that receives released money.
    function applyAsMerchant(bytes32 usccHash, bytes32 nameHash, bytes32 industry, bytes32 receivingAccountHash)
        external;

    /// @notice Records the licence oracle's attestation; a failing licence (not active, flagged
    /// or too young) suspends an approved merchant at once. An attestation whose check is
    /// already older than the licence validity suspends nothing: the merchant just cannot sell
    /// until a fresh one arrives.
    /// @dev Emits {LicenceAttested}, and {MerchantStatusChanged} when it suspends.
    /// Requirements: the caller is an oracle; the report is a valid licence-feed report whose subject
    /// is the merchant and whose payload hash is keccak256(abi.encode(attestation)).
    function attestLicence(
        LicenceAttestation calldata attestation,
        IOracleHub.Report calldata report,
        bytes[] calldata signatures
    ) external;

    /// @notice Approves an applied (or reinstates a suspended) merchant with a valid licence.
    /// @dev Emits {MerchantStatusChanged}.
    /// Requirements:
    /// - the caller is a regulator;
    /// - the merchant is Applied or Suspended;
    /// - the licence is active, unflagged and old enough ({MerchantRegistryLicenceNotValid});
    /// - its last check is no older than the licence validity ({MerchantRegistryLicenceCheckExpired}).
    function approve(address merchant, bytes32 reasonHash) external;

    /// @notice Suspends new sales of an approved merchant; existing plans continue.
    /// @dev Emits {MerchantStatusChanged}. Requirements: the caller is a regulator; the merchant is Approved.
    function suspend(address merchant, bytes32 reasonHash) external;

    /// @notice Removes a merchant from the platform for good; its plans stop.
    /// @dev Emits {MerchantStatusChanged}. Requirements: the caller is a regulator; the merchant is
    /// Applied, Approved or Suspended.
    function revoke(address merchant, bytes32 reasonHash) external;

    /// @notice Declares the merchant in default: its plans stop and become refundable.
    /// @dev Emits {MerchantStatusChanged}. Records the moment, see {defaultedAt}. Requirements: the caller is a regulator; the merchant is
    /// Approved, Suspended or Revoked.
    function declareDefault(address merchant, bytes32 reasonHash) external;

    /// @notice Sets a merchant's risk tier and its tier floor by the regulator's decision. The
    /// regulator is the only one who may lower a tier: the risk feed cannot go below this floor.
    /// @dev Emits {RiskTierFloorChanged} when the floor changes, then {RiskTierChanged}.
    /// Requirements:
    /// - the caller is a regulator;
    /// - the merchant exists.
    /// @param merchant The merchant's account.
    /// @param tier The tier, and from now on the floor of the tier.
    /// @param reasonHash The off-chain reason for the decision.
    function setRiskTier(address merchant, RiskTier tier, bytes32 reasonHash) external;

    /// @notice Sets a merchant's risk tier from the risk feed, never below the merchant's tier
    /// floor: a reported tier below the floor sets the tier to the floor (the report and its
    /// score are still recorded). The feed raises a tier freely and lowers it down to the floor.
    /// @dev Emits {RiskTierChanged} with the tier applied and the reported score.
    /// Requirements:
    /// - the caller is an oracle;
    /// - the merchant exists;
    /// - a valid risk-feed report whose subject is the merchant and whose payload hash is
    ///   keccak256(abi.encode(riskReport)).
    function reportRisk(RiskReport calldata riskReport, IOracleHub.Report calldata report, bytes[] calldata signatures)
        external;

    /// @notice Records a custody anomaly (the bank's statement differs from the chain's custody)
    /// and raises the merchant's risk tier and tier floor to High if they are lower; never
    /// lowers either, and the risk feed cannot lower the tier below High afterwards.
    /// @dev Emits {CustodyAnomalyFlagged}, {RiskTierFloorChanged} when the floor rises, and
    /// {RiskTierChanged} when the tier rises. Anchors
    /// `reasonHash` (kind `CUSTODY_ANOMALY`, subject the merchant). Suspending or declaring default
    /// stays the regulator's decision.
    /// Requirements: the caller is a system contract (the agreement book); the merchant exists;
    /// `reasonHash` is not zero and not anchored by a system contract before.
    /// @param merchant The merchant's account.
    /// @param reasonHash The off-chain reason: the SHA-256 of the bank statement.
    /// @return count The merchant's anomalies so far, this one included.
    function flagCustodyAnomaly(address merchant, bytes32 reasonHash) external returns (uint32 count);

    /// @notice The merchant points releases at a new receiving account.
    /// @dev Emits {ReceivingAccountChanged}. Requirements: the caller is an applied merchant; hash not zero.
    function changeReceivingAccount(bytes32 receivingAccountHash) external;

    /// @notice Sets the custody floor of a tier.
    /// @dev Emits {CustodyFloorSet}. Requirements: the caller is a regulator; floors stay within
    /// 0..10000 and do not fall as the tier rises.
    function setCustodyFloor(RiskTier tier, uint16 bps) external;

    /// @notice Sets how long a licence must have existed before a merchant is approved or sells.
    /// @dev Emits {MinLicenceAgeSet}. Requirements: the caller is a regulator; at most a century.
    function setMinLicenceAge(uint64 secondsRequired) external;

    /// @notice Sets how long a licence check stays valid: once the merchant's last check is
    /// older, its licence is not valid and it cannot sell until the licence oracle checks again.
    /// @dev Emits {LicenceValiditySet}.
    /// Requirements:
    /// - the caller is a regulator;
    /// - `secondsValid` is at least 1 and at most 366 days.
    /// @param secondsValid Seconds after `licenceCheckedAt` during which the check counts.
    function setLicenceValidity(uint64 secondsValid) external;

    /// @notice Whether `merchant` may sell new plans now.
    function canSell(address merchant) external view returns (bool);

    /// @notice Whether the merchant's licence is active, unflagged and old enough now, by a check
    /// no older than the licence validity (`licenceCheckedAt + licenceValidity() >= block.timestamp`).
    function licenceValid(address merchant) external view returns (bool);

    /// @notice The custody ratio for a new plan: the template's minimum raised to the tier's floor.
    function custodyRatioBps(address merchant, uint16 templateMinBps) external view returns (uint16);

    /// @notice The merchant's record.
    function getMerchant(address merchant) external view returns (Merchant memory);

    /// @notice The custody floor of `tier`, in basis points.
    function custodyFloor(RiskTier tier) external view returns (uint16);

    /// @notice The minimum licence age in seconds.
    function minLicenceAge() external view returns (uint64);

    /// @notice How long a licence check stays valid, in seconds.
    function licenceValidity() external view returns (uint64);

    /// @notice The custody anomalies recorded for `merchant`.
    function custodyAnomalies(address merchant) external view returns (CustodyAnomalies memory);

    /// @notice When `merchant` was declared in default (unix seconds), zero if it never was. The
    /// insurance cover in force at this moment is what pays the merchant's consumers' shortfall.
    function defaultedAt(address merchant) external view returns (uint64);
}
