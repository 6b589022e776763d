// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IEvidenceRegistry} from "./interfaces/IEvidenceRegistry.sol";
import {IMembership} from "./interfaces/IMembership.sol";
import {EvidenceKinds} from "./libraries/EvidenceKinds.sol";

/// @title EvidenceRegistry
/// @notice One place where every piece of Yufu evidence is anchored and can be looked up by hash.
contract EvidenceRegistry is IEvidenceRegistry {
    IMembership private immutable _membership;
    mapping(bytes32 hash => Anchor) private _anchors;

    constructor(IMembership membership) {
        _membership = membership;
    }

    /// @inheritdoc IEvidenceRegistry
    function anchor(bytes32 hash, uint16 kind, bytes32 subject) external {
        _authorise();
        _anchor(hash, kind, subject);
    }

    /// @inheritdoc IEvidenceRegistry
    function anchorBatch(bytes32 root, uint16 kind, bytes32 subject, uint32 leafCount) external {
        _authorise();
        if (leafCount == 0) revert EvidenceRegistryEmptyBatch(root);
        _anchor(root, EvidenceKinds.BATCH, subject);
        emit BatchAnchored(root, kind, subject, leafCount);
    }

    /// @inheritdoc IEvidenceRegistry
    function lookup(bytes32 hash) external view returns (Anchor memory) {
        return _anchors[hash];
    }

    /// @inheritdoc IEvidenceRegistry
    function verifyInBatch(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        return _anchors[root].kind == EvidenceKinds.BATCH && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    function _authorise() private view {
        if (!_membership.isMember(msg.sender)) revert EvidenceRegistryUnauthorized(msg.sender);
    }

    function _anchor(bytes32 hash, uint16 kind, bytes32 subject) private {
        if (hash == bytes32(0)) revert EvidenceRegistryZeroHash();
        Anchor storage existing = _anchors[hash];
        if (existing.blockNumber != 0) revert EvidenceRegistryAlreadyAnchored(hash, existing.blockNumber);

        _anchors[hash] = Anchor({
            blockNumber: uint40(block.number),
            timestamp: uint40(block.timestamp),
            kind: kind,
            submitter: msg.sender,
            subject: subject
        });
        emit EvidenceAnchored(hash, kind, subject, msg.sender);
    }
}
