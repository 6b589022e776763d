// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";

/// @title EvidenceRegistry
/// @notice One place where every piece of Yufu evidence is anchored and can be looked up by hash.
contract EvidenceRegistry is IEvidenceRegistry {
    // Kinds from here on record life-cycle steps; only system contracts may write them, so a
    // member's anchor can never pass for one.
    uint16 private constant FIRST_LIFE_CYCLE_KIND = 10;

    IMembership private immutable _membership;
    mapping(bytes32 hash => Anchor) private _systemAnchors;
    mapping(bytes32 hash => Anchor) private _memberAnchors;

    constructor(IMembership membership) {
        _membership = membership;
    }

    /// @inheritdoc IEvidenceRegistry
    function anchor(bytes32 hash, uint16 kind, bytes32 subject) external {
        bool isSystem = _authorise();
        if (!isSystem && kind >= FIRST_LIFE_CYCLE_KIND) revert EvidenceRegistryKindReserved(kind);
        _anchor(isSystem, hash, kind, subject);
    }

    /// @inheritdoc IEvidenceRegistry
    function anchorBatch(bytes32 root, uint16 kind, bytes32 subject, uint32 leafCount) external {
        bool isSystem = _authorise();
        if (!isSystem && kind >= FIRST_LIFE_CYCLE_KIND) revert EvidenceRegistryKindReserved(kind);
        if (leafCount == 0) revert EvidenceRegistryEmptyBatch(root);
        _anchor(isSystem, root, EvidenceKinds.BATCH, subject);
        emit BatchAnchored(root, kind, subject, leafCount);
    }

    /// @inheritdoc IEvidenceRegistry
    function lookup(bytes32 hash) external view returns (Anchor memory) {
        Anchor memory systemAnchor = _systemAnchors[hash];
        return systemAnchor.blockNumber != 0 ? systemAnchor : _memberAnchors[hash];
    }

    /// @inheritdoc IEvidenceRegistry
    function lookupMemberAnchor(bytes32 hash) external view returns (Anchor memory) {
        return _memberAnchors[hash];
    }

    /// @inheritdoc IEvidenceRegistry
    function verifyInBatch(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        bool anchored =
            _systemAnchors[root].kind == EvidenceKinds.BATCH || _memberAnchors[root].kind == EvidenceKinds.BATCH;
        return anchored && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// Refuses non-members; returns whether the caller is a system contract.
    function _authorise() private view returns (bool isSystem) {
        uint256 roles = _membership.rolesOf(msg.sender);
        if (roles == 0) revert EvidenceRegistryUnauthorized(msg.sender);
        return roles & (uint256(1) << uint8(IMembership.Role.System)) != 0;
    }

    function _anchor(bool isSystem, bytes32 hash, uint16 kind, bytes32 subject) private {
        if (hash == bytes32(0)) revert EvidenceRegistryZeroHash();
        mapping(bytes32 => Anchor) storage anchors = isSystem ? _systemAnchors : _memberAnchors;
        Anchor storage existing = anchors[hash];
        if (existing.blockNumber != 0) revert EvidenceRegistryAlreadyAnchored(hash, existing.blockNumber);

        anchors[hash] = Anchor({
            blockNumber: uint40(block.number),
            timestamp: uint40(block.timestamp),
            kind: kind,
            submitter: msg.sender,
            subject: subject
        });
        emit EvidenceAnchored(hash, kind, subject, msg.sender);
    }
}
