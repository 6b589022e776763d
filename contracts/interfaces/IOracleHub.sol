// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IOracleHub
/// @notice Verifies k-of-n signed reports from the outside world (bank statements, licence
/// checks, risk scores) before a Yufu contract acts on them.
/// @dev Each report is an EIP-712 message signed by the feed's signers. The consuming contract
/// computes `payloadHash` from the typed payload it acts on, so a signature covers the payload.
interface IOracleHub {
    /// @notice A signed statement from a feed.
    /// @param feed The feed id, e.g. keccak256("yufu.feed.bank").
    /// @param subject What the report is about (an agreement id, a merchant as bytes32).
    /// @param sequence Strictly increasing per (feed, subject).
    /// @param issuedAt When the signers issued it (unix seconds).
    /// @param configVersion The feed configuration the signers signed under.
    /// @param payloadHash keccak256 of the ABI-encoded payload the report carries.
    struct Report {
        bytes32 feed;
        bytes32 subject;
        uint64 sequence;
        uint64 issuedAt;
        uint32 configVersion;
        bytes32 payloadHash;
    }

    /// @notice A feed's signer set.
    struct FeedConfig {
        address[] signers;
        uint8 threshold;
        uint32 version;
    }

    /// @notice The caller may not do this.
    error OracleHubUnauthorized(address caller);
    /// @notice Only the governance authority may change the hub's configuration once the
    /// bootstrap is closed (see {IMembership-handOverToGovernance}).
    error OracleHubGovernanceRequired(address caller, address governance);
    /// @notice No signer set is configured for `feed`.
    error OracleHubUnknownFeed(bytes32 feed);
    /// @notice The threshold must be between 1 and the number of signers.
    error OracleHubInvalidThreshold(uint8 threshold, uint256 signerCount);
    /// @notice Signers must be given in strictly ascending address order, without zero.
    error OracleHubSignersNotSorted(uint256 index, address signer);
    /// @notice The report was signed under another configuration of the feed.
    error OracleHubConfigVersionMismatch(bytes32 feed, uint32 expected, uint32 got);
    /// @notice The report is older than the maximum age.
    error OracleHubStaleReport(uint64 issuedAt, uint64 nowTime, uint64 maxAge);
    /// @notice The report claims to be issued in the future.
    error OracleHubReportFromFuture(uint64 issuedAt, uint64 nowTime);
    /// @notice The report's sequence does not exceed the last accepted one for its subject.
    error OracleHubSequenceNotIncreasing(bytes32 feed, bytes32 subject, uint64 last, uint64 got);
    /// @notice Signature `index` is malformed.
    error OracleHubInvalidSignature(uint256 index);
    /// @notice Signature `index` was made by `signer`, who is not in the feed's signer set.
    error OracleHubUnknownSigner(uint256 index, address signer);
    /// @notice Signatures must come in strictly ascending signer order (which also makes them distinct).
    error OracleHubSignaturesNotSorted(uint256 index, address signer);
    /// @notice The maximum report age must be positive.
    error OracleHubInvalidMaxAge(uint64 maxAge);
    /// @notice Fewer valid signatures than the feed's threshold.
    error OracleHubInsufficientSignatures(uint256 valid, uint8 threshold);

    /// @notice Emitted when `feed` got a new signer set.
    event FeedConfigured(bytes32 indexed feed, uint32 indexed version, address[] signers, uint8 threshold);
    /// @notice Emitted when `consumer` was allowed or disallowed to consume reports.
    event ConsumerSet(address indexed consumer, bool allowed);
    /// @notice Emitted when the maximum report age changed.
    event MaxReportAgeSet(uint64 maxAge);
    /// @notice Emitted when a report was verified and consumed.
    event ReportAccepted(
        bytes32 indexed feed, bytes32 indexed subject, uint64 indexed sequence, bytes32 digest, address consumer
    );

    /// @notice Replaces `feed`'s signer set and threshold and bumps its configuration version.
    /// @dev Emits {FeedConfigured}. Reports signed under the old version are refused from now on.
    /// Requirements:
    /// - The caller is the governance authority, or, before the hand-over, a regulator.
    /// - `signers` are strictly ascending and non-zero; `1 <= threshold <= signers.length`.
    /// @param feed The feed id.
    /// @param signers The signer accounts, ascending.
    /// @param threshold How many of them must sign.
    function configureFeed(bytes32 feed, address[] calldata signers, uint8 threshold) external;

    /// @notice Allows or disallows a contract to consume reports.
    /// @dev Emits {ConsumerSet}. Only consumers can spend a report's sequence, so a valid report
    /// cannot be burnt by a third party.
    /// Requirements: the caller is the governance authority, or, before the hand-over, a regulator.
    function setConsumer(address consumer, bool allowed) external;

    /// @notice Sets how old a report may be when it is consumed.
    /// @dev Emits {MaxReportAgeSet}.
    /// Requirements:
    /// - The caller is the governance authority, or, before the hand-over, a regulator.
    /// - `maxAge` is not zero.
    function setMaxReportAge(uint64 maxAge) external;

    /// @notice Verifies `report` and its signatures and marks it consumed.
    /// @dev Emits {ReportAccepted}.
    /// Requirements:
    /// - The caller is an allowed consumer.
    /// - The feed is configured and `report.configVersion` is its current version.
    /// - `report.issuedAt` is not in the future and not older than the maximum age.
    /// - `report.sequence` exceeds the last accepted sequence of (feed, subject).
    /// - At least `threshold` signatures, by distinct signers of the feed, in ascending signer order.
    /// @param report The report.
    /// @param signatures 65-byte ECDSA signatures over the report's EIP-712 digest.
    /// @return digest The report's EIP-712 digest.
    function consume(Report calldata report, bytes[] calldata signatures) external returns (bytes32 digest);

    /// @notice The EIP-712 digest signers sign for `report`.
    function reportDigest(Report calldata report) external view returns (bytes32);

    /// @notice `feed`'s current configuration.
    function feedConfig(bytes32 feed) external view returns (FeedConfig memory);

    /// @notice The last accepted sequence of (feed, subject).
    function lastSequence(bytes32 feed, bytes32 subject) external view returns (uint64);

    /// @notice The maximum age of a report, in seconds.
    function maxReportAge() external view returns (uint64);
}
