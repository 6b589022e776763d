// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {IOracleHub} from "./interfaces/IOracleHub.sol";

/// @title OracleHub
/// @notice k-of-n verification of reports from Yufu's outside feeds.
contract OracleHub is IOracleHub, EIP712 {
    bytes32 private constant REPORT_TYPEHASH = keccak256(
        "Report(bytes32 feed,bytes32 subject,uint64 sequence,uint64 issuedAt,uint32 configVersion,bytes32 payloadHash)"
    );

    IMembership private immutable _membership;
    uint64 private _maxReportAge;
    mapping(bytes32 feed => FeedConfig) private _feeds;
    mapping(bytes32 feed => mapping(address signer => uint32 version)) private _signerVersion;
    mapping(bytes32 feed => mapping(bytes32 subject => uint64 sequence)) private _lastSequence;
    mapping(address consumer => bool allowed) private _consumers;

    constructor(IMembership membership, uint64 maxReportAge_) EIP712("Yufu OracleHub", "1") {
        _membership = membership;
        _maxReportAge = maxReportAge_;
    }

    /// @dev Signer sets, consumers and the report age decide whose statements the chain believes,
    /// so once Membership's bootstrap is closed only its governance authority changes them.
    modifier onlyGovernance() {
        address governance = _membership.governance();
        if (governance != address(0)) {
            if (msg.sender != governance) revert OracleHubGovernanceRequired(msg.sender, governance);
        } else if (!_membership.hasRole(msg.sender, IMembership.Role.Regulator)) {
            revert OracleHubUnauthorized(msg.sender);
        }
        _;
    }

    /// @inheritdoc IOracleHub
    function configureFeed(bytes32 feed, address[] calldata signers, uint8 threshold) external onlyGovernance {
        if (threshold == 0 || threshold > signers.length) revert OracleHubInvalidThreshold(threshold, signers.length);
        address previous = address(0);
        for (uint256 i = 0; i < signers.length; ++i) {
            if (signers[i] <= previous) revert OracleHubSignersNotSorted(i, signers[i]);
            previous = signers[i];
        }

        FeedConfig storage config = _feeds[feed];
        uint32 version = config.version + 1;
        config.signers = signers;
        config.threshold = threshold;
        config.version = version;
        for (uint256 i = 0; i < signers.length; ++i) {
            _signerVersion[feed][signers[i]] = version;
        }
        emit FeedConfigured(feed, version, signers, threshold);
    }

    /// @inheritdoc IOracleHub
    function setConsumer(address consumer, bool allowed) external onlyGovernance {
        _consumers[consumer] = allowed;
        emit ConsumerSet(consumer, allowed);
    }

    /// @inheritdoc IOracleHub
    function setMaxReportAge(uint64 maxAge) external onlyGovernance {
        if (maxAge == 0) revert OracleHubInvalidMaxAge(maxAge);
        _maxReportAge = maxAge;
        emit MaxReportAgeSet(maxAge);
    }

    /// @inheritdoc IOracleHub
    function consume(Report calldata report, bytes[] calldata signatures) external returns (bytes32 digest) {
        // Checks
        if (!_consumers[msg.sender]) revert OracleHubUnauthorized(msg.sender);
        FeedConfig storage config = _feeds[report.feed];
        if (config.version == 0) revert OracleHubUnknownFeed(report.feed);
        if (report.configVersion != config.version) {
            revert OracleHubConfigVersionMismatch(report.feed, config.version, report.configVersion);
        }
        uint64 nowTime = uint64(block.timestamp);
        if (report.issuedAt > nowTime) revert OracleHubReportFromFuture(report.issuedAt, nowTime);
        if (nowTime - report.issuedAt > _maxReportAge) {
            revert OracleHubStaleReport(report.issuedAt, nowTime, _maxReportAge);
        }
        uint64 last = _lastSequence[report.feed][report.subject];
        if (report.sequence <= last) {
            revert OracleHubSequenceNotIncreasing(report.feed, report.subject, last, report.sequence);
        }
        digest = reportDigest(report);
        uint256 valid = _countSigners(report.feed, config.version, digest, signatures);
        if (valid < config.threshold) revert OracleHubInsufficientSignatures(valid, config.threshold);

        // Effects
        _lastSequence[report.feed][report.subject] = report.sequence;
        emit ReportAccepted(report.feed, report.subject, report.sequence, digest, msg.sender);
    }

    /// @inheritdoc IOracleHub
    function reportDigest(Report calldata report) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    REPORT_TYPEHASH,
                    report.feed,
                    report.subject,
                    report.sequence,
                    report.issuedAt,
                    report.configVersion,
                    report.payloadHash
                )
            )
        );
    }

    /// @inheritdoc IOracleHub
    function feedConfig(bytes32 feed) external view returns (FeedConfig memory) {
        return _feeds[feed];
    }

    /// @inheritdoc IOracleHub
    function lastSequence(bytes32 feed, bytes32 subject) external view returns (uint64) {
        return _lastSequence[feed][subject];
    }

    /// @inheritdoc IOracleHub
    function maxReportAge() external view returns (uint64) {
        return _maxReportAge;
    }

    function _countSigners(bytes32 feed, uint32 version, bytes32 digest, bytes[] calldata signatures)
        private
        view
        returns (uint256)
    {
        address previous = address(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signatures[i]);
            if (error != ECDSA.RecoverError.NoError) revert OracleHubInvalidSignature(i);
            if (_signerVersion[feed][signer] != version) revert OracleHubUnknownSigner(i, signer);
            if (signer <= previous) revert OracleHubSignaturesNotSorted(i, signer);
            previous = signer;
        }
        return signatures.length;
    }
}
