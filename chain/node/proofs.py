"""EIP-1186 proofs: an account and some of its storage, proven against a block's state root.

py-evm keeps the world state in hexary Merkle-Patricia tries whose nodes are stored by hash:
the account trie maps ``keccak(address)`` to the RLP of ``[nonce, balance, storageRoot,
codeHash]``, and each account's storage trie maps ``keccak(slot as 32 bytes)`` to the RLP of
the slot's value. A proof is the list of RLP-encoded nodes on the path from the root to the
key. Whoever holds a block header can check it with nothing but the header's state root: each
node must hash to the reference its parent holds, and the path must end at the value, or, for
a key that is not there, at the node that shows it is absent.

The proofs are written as geth writes them: only nodes referred to by hash are listed (a node
shorter than 32 bytes is embedded in its parent and travels inside it), the root always; a
missing account is proven absent and answered as an empty one (nonce 0, balance 0, the empty
storage root, the hash of empty code); slots of an account without storage get empty proofs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.rlp.accounts import Account
from eth_utils import keccak
from trie import HexaryTrie
from trie.exceptions import BadTrieProof, InvalidNode
from trie.exceptions import ValidationError as TrieValidationError

EMPTY_CODE_HASH: bytes = EMPTY_SHA3
EMPTY_STORAGE_ROOT: bytes = BLANK_ROOT_HASH
# A node is embedded in its parent instead of being referred to by hash when its RLP is shorter.
HASH_REFERENCE_MIN_BYTES: int = 32


@dataclass(frozen=True)
class StorageProof:
    """One storage slot's value and the storage-trie nodes that prove it."""

    slot: int
    value: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class AccountProof:
    """An account as the state trie holds it, the nodes that prove it, and proven slots."""

    address: bytes
    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes
    proof: tuple[bytes, ...]
    storage: tuple[StorageProof, ...]


def account_key(address: bytes) -> bytes:
    """The account trie's key for ``address``."""
    return keccak(address)


def storage_key(slot: int) -> bytes:
    """A storage trie's key for ``slot``."""
    return keccak(slot.to_bytes(32, "big"))


def trie_proof(
    db: Mapping[bytes, bytes], root: bytes, key: bytes
) -> tuple[tuple[bytes, ...], bytes]:
    """The RLP-encoded nodes proving ``key``'s value (or its absence) under ``root``, and the value.

    The value is ``b""`` when the key is absent. An empty trie has an empty proof.
    """
    if root == BLANK_ROOT_HASH:
        return (), b""
    trie = HexaryTrie(db, root)
    encoded = [rlp.encode(node) for node in trie.get_proof(key)]
    # py-trie lists embedded nodes too; they are already inside their parent's encoding.
    proof = tuple(
        node
        for index, node in enumerate(encoded)
        if index == 0 or len(node) >= HASH_REFERENCE_MIN_BYTES
    )
    return proof, bytes(trie.get(key))


def prove_account(
    db: Mapping[bytes, bytes], state_root: bytes, address: bytes, slots: Sequence[int]
) -> AccountProof:
    """Prove ``address`` and its ``slots`` against ``state_root``, whose nodes are in ``db``."""
    proof, encoded = trie_proof(db, state_root, account_key(address))
    account = rlp.decode(encoded, sedes=Account) if encoded else Account()
    storage: list[StorageProof] = []
    for slot in slots:
        slot_proof, value = trie_proof(db, account.storage_root, storage_key(slot))
        storage.append(
            StorageProof(
                slot=slot,
                value=rlp.decode(value, sedes=rlp.sedes.big_endian_int) if value else 0,
                proof=slot_proof,
            )
        )
    return AccountProof(
        address=bytes(address),
        nonce=int(account.nonce),
        balance=int(account.balance),
        storage_root=bytes(account.storage_root),
        code_hash=bytes(account.code_hash),
        proof=proof,
        storage=tuple(storage),
    )


def format_account_proof(proven: AccountProof, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The EIP-1186 JSON answer for a proof.

    ``keys`` are the storage keys as the client wrote them, echoed back in ``storageProof``;
    by default each slot is written as a 32-byte word.
    """
    if keys is not None and len(keys) != len(proven.storage):
        raise ValueError("one key is needed for each proven slot")
    return {
        "address": _data(proven.address),
        "accountProof": [_data(node) for node in proven.proof],
        "balance": hex(proven.balance),
        "codeHash": _data(proven.code_hash),
        "nonce": hex(proven.nonce),
        "storageHash": _data(proven.storage_root),
        "storageProof": [
            {
                "key": _data(entry.slot.to_bytes(32, "big")) if keys is None else keys[index],
                "value": hex(entry.value),
                "proof": [_data(node) for node in entry.proof],
            }
            for index, entry in enumerate(proven.storage)
        ],
    }


def account_proof(
    db: Mapping[bytes, bytes],
    state_root: bytes,
    address: bytes,
    slots: Sequence[int],
    keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``eth_getProof``'s answer for ``address`` and ``slots`` at ``state_root``.

    ``keys`` are the storage keys as the client wrote them (see :func:`format_account_proof`).
    """
    return format_account_proof(prove_account(db, state_root, address, slots), keys)


# ---------------------------------------------------------------- verifying


def verify_trie_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes:
    """The value ``proof`` shows at ``key`` under ``root``: ``b""`` if it proves absence.

    Raises :class:`BadTrieProof` when the nodes do not hash to the references that lead from
    ``root`` to ``key``, or are not trie nodes at all.
    """
    if root == BLANK_ROOT_HASH and not proof:
        return b""
    try:
        nodes = [rlp.decode(bytes(node)) for node in proof]
        return bytes(HexaryTrie.get_from_proof(root, key, nodes))
    except (rlp.DecodingError, InvalidNode, TrieValidationError) as error:
        raise BadTrieProof(f"not a trie proof: {error}") from error


def verify_account_proof(state_root: bytes, address: bytes, proof: Sequence[bytes]) -> Account:
    """The account ``proof`` shows for ``address`` under ``state_root`` (empty if absent)."""
    encoded = verify_trie_proof(state_root, account_key(address), proof)
    if not encoded:
        return Account()
    try:
        return rlp.decode(encoded, sedes=Account)
    except rlp.DecodingError as error:
        raise BadTrieProof(f"the proven value is not an account: {error}") from error


def verify_storage_proof(storage_root: bytes, slot: int, proof: Sequence[bytes]) -> int:
    """The value ``proof`` shows for ``slot`` under ``storage_root`` (0 if absent)."""
    encoded = verify_trie_proof(storage_root, storage_key(slot), proof)
    if not encoded:
        return 0
    try:
        return int(rlp.decode(encoded, sedes=rlp.sedes.big_endian_int))
    except rlp.DecodingError as error:
        raise BadTrieProof(f"the proven value is not a storage value: {error}") from error


def _data(value: bytes) -> str:
    return "0x" + bytes(value).hex()
