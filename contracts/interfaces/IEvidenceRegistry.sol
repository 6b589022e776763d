// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IEvidenceRegistry
/// @notice Anchors hashes of documents and life-cycle events so a court can later prove that a
/// record existed, unaltered, at a given block.
/// @dev Two namespaces: anchors written by Yufu's system contracts (life-cycle evidence) and
/// anchors written by member organisations (documents they register). A member can never
/// occupy a hash in the system namespace, so nobody can block a life-cycle step by anchoring
/// its evidence hash first. {lookup} prefers the system anchor.
interface IEvidenceRegistry {
    /// @notice Where and when a hash was anchored.
    /// @param blockNumber The block that anchored it (zero when never anchored).
    /// @param timestamp That block's timestamp.
    /// @param kind The evidence kind (see `EvidenceKinds`).
    /// @param submitter The account or system contract that anchored it.
    /// @param subject What it is about: an agreement id, or a merchant address as bytes32.
    struct Anchor {
        uint40 blockNumber;
        uint40 timestamp;
        uint16 kind;
        address submitter;
        bytes32 subject;
    }

    /// @notice The caller is neither a member nor a system contract.
    error EvidenceRegistryUnauthorized(address caller);
    /// @notice The hash is already anchored in the caller's namespace, at `blockNumber`.
    error EvidenceRegistryAlreadyAnchored(bytes32 hash, uint40 blockNumber);
    /// @notice The zero hash cannot be anchored.
    error EvidenceRegistryZeroHash();
    /// @notice Life-cycle kinds (10 and above) are written only by Yufu's system contracts.
    error EvidenceRegistryKindReserved(uint16 kind);
    /// @notice A batch must hold at least one leaf.
    error EvidenceRegistryEmptyBatch(bytes32 root);

    /// @notice Emitted when `hash` was anchored.
    event EvidenceAnchored(bytes32 indexed hash, uint16 indexed kind, bytes32 indexed subject, address submitter);
    /// @notice Emitted when `root`, the Merkle root of `leafCount` hashes, was anchored.
    event BatchAnchored(bytes32 indexed root, uint16 indexed kind, bytes32 indexed subject, uint32 leafCount);

    /// @notice Anchors `hash` of `kind` about `subject`.
    /// @dev Emits {EvidenceAnchored}.
    /// Requirements:
    /// - The caller is a member or a system contract.
    /// - `hash` is not zero and not yet anchored in the caller's namespace.
    /// - A member (not a system contract) uses a kind below 10 (a document or a batch).
    /// @param hash The document's or record's hash.
    /// @param kind The evidence kind.
    /// @param subject The agreement id or merchant the evidence is about.
    function anchor(bytes32 hash, uint16 kind, bytes32 subject) external;

    /// @notice Anchors the Merkle root of a batch of hashes (OpenZeppelin's sorted-pair tree).
    /// @dev Emits {EvidenceAnchored} and {BatchAnchored}. The root is stored with kind `BATCH`.
    /// Requirements: as {anchor}; `leafCount` is not zero.
    /// @param root The Merkle root.
    /// @param kind The kind of the leaves.
    /// @param subject What the batch is about.
    /// @param leafCount How many leaves the tree holds.
    function anchorBatch(bytes32 root, uint16 kind, bytes32 subject, uint32 leafCount) external;

    /// @notice Where and when `hash` was anchored: the system anchor if there is one, else the
    /// members' one; `blockNumber` is zero when it never was.
    function lookup(bytes32 hash) external view returns (Anchor memory);

    /// @notice The anchor a member organisation (not a system contract) wrote for `hash`.
    function lookupMemberAnchor(bytes32 hash) external view returns (Anchor memory);

    /// @notice Whether `leaf` belongs to the anchored batch `root` by `proof`.
    function verifyInBatch(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external view returns (bool);
}
