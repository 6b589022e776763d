// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IAgreementBook} from "./interfaces/IAgreementBook.sol";
import {IComplaintDesk} from "./interfaces/IComplaintDesk.sol";
import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";

/// @title ComplaintDesk
/// @notice Files, answers and resolves consumers' complaints.
contract ComplaintDesk is IComplaintDesk, EIP712 {
    bytes32 private constant COMPLAINT_TYPEHASH =
        keccak256("Complaint(bytes32 agreementId,bytes32 evidenceHash,uint64 deadline)");

    IMembership private immutable _membership;
    IAgreementBook private immutable _book;
    IEvidenceRegistry private immutable _evidence;
    mapping(uint64 complaintId => Complaint) private _complaints;
    mapping(address merchant => ComplaintStats) private _stats;
    mapping(bytes32 digest => bool filed) private _filed;
    uint64 private _count;

    constructor(IMembership membership, IAgreementBook book, IEvidenceRegistry evidence)
        EIP712("Yufu ComplaintDesk", "1")
    {
        _membership = membership;
        _book = book;
        _evidence = evidence;
    }

    /// @inheritdoc IComplaintDesk
    function fileComplaint(bytes32 agreementId, bytes32 evidenceHash, uint64 deadline, bytes calldata consumerSignature)
        external
        returns (uint64 complaintId)
    {
        // Checks
        if (!_membership.hasRole(msg.sender, IMembership.Role.Operator)) revert ComplaintDeskUnauthorized(msg.sender);
        if (evidenceHash == bytes32(0)) revert ComplaintDeskMissingHash("evidenceHash");
        if (block.timestamp > deadline) revert ComplaintDeskRequestExpired(deadline, uint64(block.timestamp));
        IAgreementBook.Agreement memory agreement = _book.getAgreement(agreementId);
        bytes32 digest = complaintDigest(agreementId, evidenceHash, deadline);
        (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, consumerSignature);
        if (error != ECDSA.RecoverError.NoError || recovered != agreement.consumer) {
            revert ComplaintDeskInvalidSignature(digest, agreement.consumer, recovered);
        }
        if (_filed[digest]) revert ComplaintDeskDuplicateComplaint(digest);

        // Effects
        _filed[digest] = true;
        complaintId = ++_count;
        _complaints[complaintId] = Complaint({
            agreementId: agreementId,
            merchant: agreement.merchant,
            consumer: agreement.consumer,
            status: ComplaintStatus.Filed,
            upheld: false,
            filedAt: uint64(block.timestamp),
            evidenceHash: evidenceHash,
            answerHash: bytes32(0),
            resolutionHash: bytes32(0)
        });
        ComplaintStats storage stats = _stats[agreement.merchant];
        stats.filed += 1;
        stats.open += 1;
        emit ComplaintFiled(complaintId, agreementId, agreement.merchant, agreement.consumer, evidenceHash);

        // Interactions
        _evidence.anchor(digest, EvidenceKinds.COMPLAINT_FILED, agreementId);
    }

    /// @inheritdoc IComplaintDesk
    function answerComplaint(uint64 complaintId, bytes32 answerHash) external {
        Complaint storage complaint = _existing(complaintId);
        if (msg.sender != complaint.merchant) revert ComplaintDeskUnauthorized(msg.sender);
        if (complaint.status != ComplaintStatus.Filed) revert ComplaintDeskInvalidStatus(complaintId, complaint.status);
        if (answerHash == bytes32(0)) revert ComplaintDeskMissingHash("answerHash");

        complaint.status = ComplaintStatus.Answered;
        complaint.answerHash = answerHash;
        emit ComplaintAnswered(complaintId, msg.sender, answerHash);

        _evidence.anchor(
            keccak256(abi.encode("yufu.complaint.answer", complaintId, answerHash)),
            EvidenceKinds.COMPLAINT_ANSWERED,
            complaint.agreementId
        );
    }

    /// @inheritdoc IComplaintDesk
    function resolveComplaint(uint64 complaintId, bool upheld, bytes32 resolutionHash) external {
        if (!_membership.hasRole(msg.sender, IMembership.Role.Regulator)) revert ComplaintDeskUnauthorized(msg.sender);
        Complaint storage complaint = _existing(complaintId);
        if (complaint.status != ComplaintStatus.Filed && complaint.status != ComplaintStatus.Answered) {
            revert ComplaintDeskInvalidStatus(complaintId, complaint.status);
        }
        if (resolutionHash == bytes32(0)) revert ComplaintDeskMissingHash("resolutionHash");

        complaint.status = ComplaintStatus.Resolved;
        complaint.upheld = upheld;
        complaint.resolutionHash = resolutionHash;
        ComplaintStats storage stats = _stats[complaint.merchant];
        stats.open -= 1;
        if (upheld) stats.upheld += 1;
        emit ComplaintResolved(complaintId, complaint.merchant, upheld, resolutionHash);

        _evidence.anchor(
            keccak256(abi.encode("yufu.complaint.resolution", complaintId, upheld, resolutionHash)),
            EvidenceKinds.COMPLAINT_RESOLVED,
            complaint.agreementId
        );
    }

    /// @inheritdoc IComplaintDesk
    function getComplaint(uint64 complaintId) external view returns (Complaint memory) {
        return _existing(complaintId);
    }

    /// @inheritdoc IComplaintDesk
    function statsOf(address merchant) external view returns (ComplaintStats memory) {
        return _stats[merchant];
    }

    /// @inheritdoc IComplaintDesk
    function complaintCount() external view returns (uint64) {
        return _count;
    }

    /// @inheritdoc IComplaintDesk
    function complaintDigest(bytes32 agreementId, bytes32 evidenceHash, uint64 deadline) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(COMPLAINT_TYPEHASH, agreementId, evidenceHash, deadline)));
    }

    function _existing(uint64 complaintId) private view returns (Complaint storage complaint) {
        complaint = _complaints[complaintId];
        if (complaint.status == ComplaintStatus.None) revert ComplaintDeskUnknownComplaint(complaintId);
    }
}
