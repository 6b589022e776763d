// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IComplaintDesk
/// @notice Consumers' complaints about agreements: filed by the consumer, answered by the merchant,
/// resolved by the regulator. Counts per merchant feed the risk score.
interface IComplaintDesk {
    /// @notice A complaint's state.
    enum ComplaintStatus {
        None,
        Filed,
        Answered,
        Resolved
    }

    /// @notice A complaint. Its text and evidence stay off chain; only hashes are here.
    struct Complaint {
        bytes32 agreementId;
        address merchant;
        address consumer;
        ComplaintStatus status;
        bool upheld;
        uint64 filedAt;
        bytes32 evidenceHash;
        bytes32 answerHash;
        bytes32 resolutionHash;
    }

    /// @notice Complaint counts of one merchant.
    struct ComplaintStats {
        uint64 filed;
        uint64 open;
        uint64 upheld;
    }

    /// @notice The caller may not do this.
    error ComplaintDeskUnauthorized(address caller);
    /// @notice No complaint has this id.
    error ComplaintDeskUnknownComplaint(uint64 complaintId);
    /// @notice The complaint is in a state that does not allow this.
    error ComplaintDeskInvalidStatus(uint64 complaintId, ComplaintStatus status);
    /// @notice The consumer's signature is not valid for this complaint.
    error ComplaintDeskInvalidSignature(bytes32 digest, address expected, address recovered);
    /// @notice This exact complaint was filed already.
    error ComplaintDeskDuplicateComplaint(bytes32 digest);
    /// @notice The consumer's signed complaint passed its deadline.
    error ComplaintDeskRequestExpired(uint64 deadline, uint64 nowTime);
    /// @notice A hash is zero.
    error ComplaintDeskMissingHash(bytes32 field);

    /// @notice Emitted when a consumer filed a complaint.
    event ComplaintFiled(
        uint64 indexed complaintId, bytes32 indexed agreementId, address indexed merchant, address consumer,
        bytes32 evidenceHash
    );
    /// @notice Emitted when the merchant answered.
    event ComplaintAnswered(uint64 indexed complaintId, address indexed merchant, bytes32 answerHash);
    /// @notice Emitted when the regulator resolved it.
    event ComplaintResolved(
        uint64 indexed complaintId, address indexed merchant, bool indexed upheld, bytes32 resolutionHash
    );

    /// @notice Files a consumer's signed complaint (EIP-712 `Complaint`) on one of their agreements.
    /// @dev Emits {ComplaintFiled}. Anchors the evidence hash.
    /// Requirements: the caller is an operator; the agreement exists; the agreement's consumer
    /// signed; the deadline has not passed; the same complaint was not filed before.
    /// @return complaintId The complaint's id, counting from 1.
    function fileComplaint(bytes32 agreementId, bytes32 evidenceHash, uint64 deadline, bytes calldata consumerSignature)
        external
        returns (uint64 complaintId);

    /// @notice The merchant answers a complaint.
    /// @dev Emits {ComplaintAnswered}. Requirements: the caller is the complaint's merchant; it is Filed.
    function answerComplaint(uint64 complaintId, bytes32 answerHash) external;

    /// @notice The regulator resolves a complaint, upholding it or not.
    /// @dev Emits {ComplaintResolved}. Requirements: the caller is a regulator; it is Filed or Answered.
    function resolveComplaint(uint64 complaintId, bool upheld, bytes32 resolutionHash) external;

    /// @notice The complaint `complaintId`.
    function getComplaint(uint64 complaintId) external view returns (Complaint memory);

    /// @notice `merchant`'s complaint counts.
    function statsOf(address merchant) external view returns (ComplaintStats memory);

    /// @notice How many complaints exist.
    function complaintCount() external view returns (uint64);

    /// @notice The EIP-712 digest the consumer signs to file a complaint.
    function complaintDigest(bytes32 agreementId, bytes32 evidenceHash, uint64 deadline)
        external
        view
        returns (bytes32);
}
