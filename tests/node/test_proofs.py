"""EIP-1186 ``eth_getProof``: proofs from the running node, verified offline against a header.

Every proof here is fetched over HTTP (web3.py's ``get_proof`` or raw JSON-RPC) from the node
process and checked with nothing but the block's ``stateRoot`` from ``eth_getBlockByNumber``
and the ``trie`` package's ``HexaryTrie.get_from_proof``: the account RLP the proof leads to
must be the nonce, balance, storage root and code hash the node answered, and each storage
value the one ``eth_getStorageAt`` reads. A tampered proof must fail. The verification here
deliberately does not use ``chain.node.proofs``; that module's own verifier is checked against
it separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak, to_canonical_address
from rlp.sedes import Binary, List, big_endian_int
from trie import HexaryTrie
from trie.exceptions import BadTrieProof, InvalidNode
from trie.exceptions import ValidationError as TrieValidationError
from web3 import Web3

from chain.config import DevnetConfig
from chain.node import proofs
from chain.node.service import system_addresses

if TYPE_CHECKING:
    from conftest import NodeProcess  # tests/node/conftest.py, which pytest loads itself

EMPTY_TRIE_ROOT = keccak(rlp.encode(b""))
EMPTY_CODE_HASH = keccak(b"")
# The account RLP: [nonce, balance, storageRoot, codeHash].
ACCOUNT_SEDES = List([big_endian_int, big_endian_int, Binary.fixed_length(32), Binary(32, 32)])
# What verifying a forged proof may raise: a node that is not RLP, not a trie node, or not
# linked by hash from the root.
PROOF_FAILURES = (BadTrieProof, rlp.DecodingError, InvalidNode, TrieValidationError)
DEAD = "0x000000000000000000000000000000000000dEaD"
UNSET_SLOTS = (1_000, 2**255, int.from_bytes(keccak(b"nobody writes here"), "big"))


# ---------------------------------------------------------------- offline verification


def _bytes(value: Any) -> bytes:
    """HexBytes from web3.py or a 0x-hex string from raw JSON-RPC."""
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def verified_value(root: bytes, key: bytes, proof: Sequence[Any]) -> bytes:
    """The value ``proof`` leads to under ``root`` (``b""`` proves absence); raises if forged."""
    nodes = [rlp.decode(_bytes(node)) for node in proof]
    return bytes(HexaryTrie.get_from_proof(root, key, nodes))


def verified_account(state_root: bytes, address: str, proof: Sequence[Any]) -> tuple[Any, ...]:
    """(nonce, balance, storageRoot, codeHash) as proven; an absent account is the empty one."""
    encoded = verified_value(state_root, keccak(to_canonical_address(address)), proof)
    if not encoded:
        return (0, 0, EMPTY_TRIE_ROOT, EMPTY_CODE_HASH)
    return tuple(rlp.decode(encoded, sedes=ACCOUNT_SEDES))


def verified_storage(storage_root: bytes, slot: int, proof: Sequence[Any]) -> int:
    """A slot's value as proven (0 when the proof shows it absent)."""
    encoded = verified_value(storage_root, keccak(slot.to_bytes(32, "big")), proof)
    return rlp.decode(encoded, sedes=big_endian_int) if encoded else 0


def state_root_of(w3: Web3, number: int) -> bytes:
    """The only thing the verifier trusts: a header's state root."""
    return bytes(w3.eth.get_block(number)["stateRoot"])


def check_proof(
    w3: Web3, address: str, slots: Sequence[int], number: int
) -> tuple[Any, tuple[Any, ...]]:
    """Fetch a proof with web3.py at block ``number`` and verify all of it offline."""
    answer = w3.eth.get_proof(address, list(slots), number)
    state_root = state_root_of(w3, number)
    nonce, balance, storage_root, code_hash = verified_account(
        state_root, address, answer["accountProof"]
    )
    assert answer["address"] == Web3.to_checksum_address(address)
    assert answer["nonce"] == nonce == w3.eth.get_transaction_count(address, number)
    assert answer["balance"] == balance == w3.eth.get_balance(address, number)
    assert bytes(answer["storageHash"]) == storage_root
    assert bytes(answer["codeHash"]) == code_hash == keccak(w3.eth.get_code(address, number))
    assert len(answer["storageProof"]) == len(slots)
    for slot, entry in zip(slots, answer["storageProof"], strict=True):
        assert int.from_bytes(bytes(entry["key"]), "big") == slot
        value = verified_storage(storage_root, slot, entry["proof"])
        assert int.from_bytes(bytes(entry["value"]), "big") == value
        assert value == int.from_bytes(w3.eth.get_storage_at(address, slot, number), "big")
    return answer, (nonce, balance, storage_root, code_hash)


def _mapping_slot(key: bytes, base: int) -> int:
    """Solidity's slot of ``mapping[key]`` for a mapping at slot ``base``."""
    return int.from_bytes(keccak(key.rjust(32, b"\0") + base.to_bytes(32, "big")), "big")


def _flip(node: bytes, position: int) -> bytes:
    return node[:position] + bytes([node[position] ^ 0x01]) + node[position + 1 :]


# ---------------------------------------------------------------- accounts


def test_proof_of_a_funded_account(w3: Web3, config: DevnetConfig) -> None:
    regulator = config.regulator.address
    number = w3.eth.block_number
    answer, (nonce, balance, storage_root, code_hash) = check_proof(w3, regulator, [], number)
    assert nonce >= 32  # it sent the bootstrap's transactions
    assert 0 < balance
    assert storage_root == EMPTY_TRIE_ROOT
    assert code_hash == EMPTY_CODE_HASH
    assert answer["accountProof"], "an account is proven by at least the root node"
    assert answer["storageProof"] == []


def test_proof_of_an_account_that_does_not_exist(w3: Web3) -> None:
    nobody = Account.create().address
    number = w3.eth.block_number
    answer, proven = check_proof(w3, nobody, [0, 1], number)
    assert proven == (0, 0, EMPTY_TRIE_ROOT, EMPTY_CODE_HASH)
    # A proof of absence: the path from the root ends before reaching the key.
    assert answer["accountProof"]
    assert (
        verified_value(
            state_root_of(w3, number), keccak(to_canonical_address(nobody)), answer["accountProof"]
        )
        == b""
    )
    assert answer["nonce"] == 0
    assert answer["balance"] == 0
    assert bytes(answer["codeHash"]) == EMPTY_CODE_HASH
    assert bytes(answer["storageHash"]) == EMPTY_TRIE_ROOT
    for entry in answer["storageProof"]:
        assert bytes(entry["value"]) in (b"", b"\0")
        assert entry["proof"] == []  # an empty storage trie needs no nodes


# ---------------------------------------------------------------- contract storage


def test_proof_of_membership_storage_set_and_unset_slots(w3: Web3, config: DevnetConfig) -> None:
    membership = system_addresses(config).membership
    regulator = to_canonical_address(config.regulator.address)
    validators_base = int.from_bytes(keccak((3).to_bytes(32, "big")), "big")
    set_slots = [
        3,  # _validators.length
        validators_base,  # _validators[0]
        validators_base + len(config.validators) - 1,  # the last validator
        _mapping_slot(regulator, 0),  # _roles[regulator]
    ]
    unset_slots = [0, _mapping_slot(to_canonical_address(DEAD), 0), *UNSET_SLOTS]
    number = w3.eth.block_number
    answer, (_, _, storage_root, code_hash) = check_proof(
        w3, membership, set_slots + unset_slots, number
    )
    assert storage_root != EMPTY_TRIE_ROOT
    assert code_hash != EMPTY_CODE_HASH
    values = [int.from_bytes(bytes(entry["value"]), "big") for entry in answer["storageProof"]]
    assert values[0] == len(config.validators)
    assert values[1] == int.from_bytes(to_canonical_address(config.validators[0].address), "big")
    assert values[2] == int.from_bytes(to_canonical_address(config.validators[-1].address), "big")
    assert values[3] != 0
    assert values[len(set_slots) :] == [0] * len(unset_slots)
    for entry in answer["storageProof"]:
        assert entry["proof"], "a non-empty storage trie proves absence with nodes too"


def test_proofs_of_every_system_contract_s_first_slots(w3: Web3, config: DevnetConfig) -> None:
    number = w3.eth.block_number
    found_set = 0
    for address in system_addresses(config).as_tuple():
        slots = list(range(16))
        answer, _ = check_proof(w3, address, slots, number)
        found_set += sum(1 for entry in answer["storageProof"] if any(bytes(entry["value"])))
    assert found_set > 0


def test_raw_answer_is_standard_hex_with_keys_echoed_as_given(
    node: NodeProcess, w3: Web3, config: DevnetConfig
) -> None:
    membership = system_addresses(config).membership
    keys = ["0x3", "0x03", "0x" + "00" * 31 + "03", "0x" + "AB" * 32, "0x0"]
    head = node.rpc("eth_getBlockByNumber", "latest", False)
    answer = node.rpc("eth_getProof", membership, keys, head["number"])
    assert set(answer) == {
        "address",
        "accountProof",
        "balance",
        "codeHash",
        "nonce",
        "storageHash",
        "storageProof",
    }
    assert answer["address"] == membership.lower()
    for quantity in (answer["balance"], answer["nonce"]):
        assert quantity.startswith("0x")
        assert quantity == "0x0" or not quantity.startswith("0x0")
    assert len(answer["codeHash"]) == len(answer["storageHash"]) == 66
    assert [entry["key"] for entry in answer["storageProof"]] == keys
    three = node.rpc("eth_getStorageAt", membership, "0x3", head["number"])
    for entry in answer["storageProof"][:3]:
        assert int(entry["value"], 16) == int(three, 16) == len(config.validators)
        assert not entry["value"].startswith("0x0")
    for entry in answer["storageProof"][3:]:
        assert entry["value"] == "0x0"
    for node_hex in answer["accountProof"]:
        assert node_hex.startswith("0x") and node_hex == node_hex.lower()
    # The same proofs by block hash (EIP-1898) and by tag.
    by_hash = node.rpc("eth_getProof", membership, keys, {"blockHash": head["hash"]})
    assert by_hash == answer
    if node.rpc("eth_blockNumber") == head["number"]:
        assert node.rpc("eth_getProof", membership, keys, "latest") == answer
    root = bytes.fromhex(head["stateRoot"][2:])
    proven = verified_account(root, membership, answer["accountProof"])
    assert proven[2] == bytes.fromhex(answer["storageHash"][2:])


# ---------------------------------------------------------------- forgeries


def test_a_tampered_proof_fails_verification(w3: Web3, config: DevnetConfig) -> None:
    membership = system_addresses(config).membership
    number = w3.eth.block_number
    answer = w3.eth.get_proof(membership, [3], number)
    state_root = state_root_of(w3, number)
    account_nodes = [bytes(node) for node in answer["accountProof"]]
    key = keccak(to_canonical_address(membership))
    assert verified_value(state_root, key, account_nodes)

    # One flipped bit anywhere in any node of the path breaks the hash links.
    for index, node in enumerate(account_nodes):
        for position in (0, len(node) // 2, len(node) - 1):
            forged = list(account_nodes)
            forged[index] = _flip(node, position)
            with pytest.raises(PROOF_FAILURES):
                verified_value(state_root, key, forged)
    # A node missing from the path.
    with pytest.raises(BadTrieProof):
        verified_value(state_root, key, account_nodes[:-1])
    # Another block's root.
    with pytest.raises(BadTrieProof):
        verified_value(state_root_of(w3, 0), key, account_nodes)

    # A wrong value: the proof leads to the true one, not to the claim.
    storage_root = bytes(answer["storageHash"])
    entry = answer["storageProof"][0]
    claimed = int.from_bytes(bytes(entry["value"]), "big") + 1
    assert verified_storage(storage_root, 3, entry["proof"]) != claimed
    # A proof of one slot does not prove another.
    with pytest.raises(BadTrieProof):
        verified_storage(storage_root, 4, entry["proof"])
    storage_nodes = [bytes(node) for node in entry["proof"]]
    forged_leaf = list(storage_nodes)
    forged_leaf[-1] = _flip(storage_nodes[-1], len(storage_nodes[-1]) - 1)
    with pytest.raises(PROOF_FAILURES):
        verified_storage(storage_root, 3, forged_leaf)
    # A forged storage root (e.g. an account RLP with another storageHash) is not the proven one.
    proven_root = verified_account(state_root, membership, account_nodes)[2]
    assert proven_root == storage_root
    with pytest.raises(BadTrieProof):
        verified_storage(keccak(b"forged root"), 3, entry["proof"])


def test_the_node_s_own_verifier_agrees_and_refuses_forgeries(
    w3: Web3, config: DevnetConfig
) -> None:
    membership = system_addresses(config).membership
    nobody = Account.create().address
    number = w3.eth.block_number
    state_root = state_root_of(w3, number)
    for address, slots in ((membership, [3, 1_000]), (nobody, [0]), (config.regulator.address, [])):
        answer = w3.eth.get_proof(address, slots, number)
        account = proofs.verify_account_proof(
            state_root, to_canonical_address(address), answer["accountProof"]
        )
        assert (account.nonce, account.balance, account.storage_root, account.code_hash) == (
            verified_account(state_root, address, answer["accountProof"])
        )
        for slot, entry in zip(slots, answer["storageProof"], strict=True):
            assert proofs.verify_storage_proof(
                account.storage_root, slot, entry["proof"]
            ) == verified_storage(account.storage_root, slot, entry["proof"])
    answer = w3.eth.get_proof(membership, [], number)
    forged = [bytes(node) for node in answer["accountProof"]]
    forged[-1] = _flip(forged[-1], len(forged[-1]) // 2)
    with pytest.raises(proofs.BadTrieProof):
        proofs.verify_account_proof(state_root, to_canonical_address(membership), forged)
    with pytest.raises(proofs.BadTrieProof):
        proofs.verify_account_proof(state_root, to_canonical_address(membership), [b"\xc1"])


# ---------------------------------------------------------------- history


def test_a_proof_at_an_older_block_differs_from_latest_after_a_state_change(
    w3: Web3, config: DevnetConfig
) -> None:
    sender = config.organisations["insurer"]
    recipient = Account.create().address
    before = w3.eth.block_number
    signed = Account.sign_transaction(
        {
            "to": recipient,
            "value": 12_345,
            "gas": 21_000,
            "maxFeePerGas": w3.eth.gas_price * 2,
            "maxPriorityFeePerGas": w3.eth.max_priority_fee,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": w3.eth.chain_id,
        },
        sender.key.private_key,
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60
    )
    assert receipt["status"] == 1
    after = receipt["blockNumber"]
    assert after > before

    old, (_, old_balance, _, _) = check_proof(w3, recipient, [], before)
    new, (_, new_balance, _, _) = check_proof(w3, recipient, [], after)
    assert old_balance == 0 and new_balance == 12_345
    assert old["accountProof"] != new["accountProof"]

    old_sender, old_account = check_proof(w3, sender.address, [], before)
    new_sender, new_account = check_proof(w3, sender.address, [], after)
    assert new_account[0] == old_account[0] + 1
    assert new_account[1] < old_account[1] - 12_345
    # Each proof holds at its own block only.
    key = keccak(to_canonical_address(sender.address))
    with pytest.raises(BadTrieProof):
        verified_value(state_root_of(w3, after), key, old_sender["accountProof"])
    with pytest.raises(BadTrieProof):
        verified_value(state_root_of(w3, before), key, new_sender["accountProof"])


def test_a_contract_is_absent_before_its_deployment(w3: Web3, config: DevnetConfig) -> None:
    membership = system_addresses(config).membership
    answer, proven = check_proof(w3, membership, [3], 0)
    assert proven == (0, 0, EMPTY_TRIE_ROOT, EMPTY_CODE_HASH)
    assert answer["storageProof"][0]["proof"] == []
    later, _ = check_proof(w3, membership, [3], 1)  # deployed in block 1
    assert bytes(later["codeHash"]) != EMPTY_CODE_HASH


# ---------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("params", "code"),
    [
        pytest.param([], -32602, id="no-params"),
        pytest.param([DEAD], -32602, id="no-keys"),
        pytest.param(["0x12", [], "latest"], -32602, id="short-address"),
        pytest.param([DEAD, "0x1", "latest"], -32602, id="keys-not-a-list"),
        pytest.param([DEAD, ["0x" + "1" * 65], "latest"], -32602, id="key-too-long"),
        pytest.param([DEAD, ["slot"], "latest"], -32602, id="key-not-hex"),
        pytest.param([DEAD, [True], "latest"], -32602, id="key-a-bool"),
        pytest.param([DEAD, [], "yesterday"], -32602, id="bad-block"),
        pytest.param([DEAD, [], "0xffffffff"], -32001, id="future-block"),
        pytest.param([DEAD, [], {"blockHash": "0x" + "ab" * 32}], -32001, id="unknown-hash"),
        pytest.param([DEAD, ["0x0"] * 1_025, "latest"], -32005, id="too-many-keys"),
        pytest.param([DEAD, [], "latest", "extra"], -32602, id="too-many-params"),
    ],
)
def test_bad_proof_requests_get_a_standard_error(
    node: NodeProcess, params: list[Any], code: int
) -> None:
    assert node.rpc_error("eth_getProof", *params).code == code
    assert node.rpc("eth_chainId")


# ---------------------------------------------------------------- proofs.py, in-process


def test_embedded_nodes_travel_inside_their_parent() -> None:
    # Short keys and values make nodes under 32 bytes, which a parent embeds instead of hashing.
    db: dict[bytes, bytes] = {}
    trie = HexaryTrie(db)
    for key in (b"\x01\x00", b"\x01\x01", b"\x01\x02", b"\x02" * 40, b"\x02" * 39 + b"\x03"):
        trie[key] = b"v" + key[:1]
    for key, expected in ((b"\x01\x00", b"v\x01"), (b"\x01\x05", b""), (b"\x09", b"")):
        proof, value = proofs.trie_proof(db, trie.root_hash, key)
        assert value == expected
        assert len(proof) < len(trie.get_proof(key)) or key == b"\x09"
        assert all(len(node) >= 32 for node in proof[1:])
        assert all(keccak(node) in db for node in proof)
        assert verified_value(trie.root_hash, key, proof) == expected
    assert proofs.trie_proof(db, EMPTY_TRIE_ROOT, b"\x01") == ((), b"")
    assert proofs.verify_trie_proof(EMPTY_TRIE_ROOT, b"\x01", []) == b""
