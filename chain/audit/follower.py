"""The auditor's follower: download a node's blocks, verify each one, re-execute it, keep up.

A :class:`Follower` owns its own :class:`chain.node.node.YufuNode`, built from the same
configuration as the node it audits, so both start from the same genesis. It takes blocks from
a :class:`BlockSource` — the node's JSON-RPC (:class:`RpcSource`) or the node's data directory
read directly (:class:`StoreSource`) — and for every block, in order from block 1:

1. the header the node served hashes to the hash the node names the block by, and its parent
   hash is the follower's own head;
2. the seal is a signature over the block hash by a validator of the set at the parent, as the
   follower's *own* state says (the configured validators until the Membership contract exists,
   then its ``getValidators()``), and the ``yufuSealer`` the node names is that signer;
3. every transaction rebuilt from what the node served hashes to the hash it was served with,
   and the permissioning contract allows it at the parent state (the check a block import
   applies, as Besu's account permissioning does);
4. the transactions are executed on the follower's chain in a header carrying the served
   timestamp, gas limit, coinbase, extra data and mix hash — exactly how the producer executes
   them (``mine_all`` in the header it then seals) — and every header field of the result
   (state root, transactions root, receipts root, logs bloom, gas used, base fee, ...) and
   the resulting block hash must equal the served ones;
5. each receipt the node served (status, cumulative gas, bloom, every log) must equal the
   follower's.

Everything found wrong in a block is collected into one :class:`AuditFailure`, which names the
block number, its hash and, per field, what re-execution expects and what the node served; the
follower then stops and commits nothing of that block. A verified block is committed to the
follower's own store with its seal and log index, so the follower serves the same JSON-RPC
reads as the node (``chain.node.rpc``), from state it computed itself.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import requests
import rlp
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS, ZERO_ADDRESS
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.vm.forks import PragueVM
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import (
    function_signature_to_4byte_selector,
    keccak,
    to_canonical_address,
    to_checksum_address,
)
from eth_utils.exceptions import ValidationError

from chain.config import DevnetConfig
from chain.errors import ChainError
from chain.messages import recover_signer
from chain.node.errors import TransactionRejected
from chain.node.node import YufuNode
from chain.node.rpc import create_app
from chain.node.store import ChainStore, LogRecord, Seal
from chain.serving import ServerControl, serve_app

logger = logging.getLogger(__name__)

# JSON-RPC batches the follower sends stay under the node's limit of 1,000 requests.
RPC_BATCH_LIMIT: int = 500
# Blocks fetched in one request grow and shrink so a request carries about this many txs.
TRANSACTIONS_PER_FETCH: int = 1_000
MAX_BLOCKS_PER_FETCH: int = 32
# Blocks fetched ahead of verification, on a background thread.
PREFETCH_DEPTH: int = 4
RPC_TIMEOUT_SECONDS: float = 120.0
DEFAULT_POLL_SECONDS: float = 1.0

# Header fields as py-evm names them, with the JSON-RPC names reports use.
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("parent_hash", "parentHash"),
    ("uncles_hash", "sha3Uncles"),
    ("coinbase", "miner"),
    ("state_root", "stateRoot"),
    ("transaction_root", "transactionsRoot"),
    ("receipt_root", "receiptsRoot"),
    ("bloom", "logsBloom"),
    ("difficulty", "difficulty"),
    ("block_number", "number"),
    ("gas_limit", "gasLimit"),
    ("gas_used", "gasUsed"),
    ("timestamp", "timestamp"),
    ("extra_data", "extraData"),
    ("mix_hash", "mixHash"),
    ("nonce", "nonce"),
    ("base_fee_per_gas", "baseFeePerGas"),
    ("withdrawals_root", "withdrawalsRoot"),
    ("blob_gas_used", "blobGasUsed"),
    ("excess_blob_gas", "excessBlobGas"),
    ("parent_beacon_block_root", "parentBeaconBlockRoot"),
    ("requests_hash", "requestsHash"),
)

# Besu's account-permissioning question, as YufuNode asks it at the door.
_TRANSACTION_ALLOWED = function_signature_to_4byte_selector(
    "transactionAllowed(address,address,uint256,uint256,uint256,bytes)"
)
_LEGACY, _ACCESS_LIST, _DYNAMIC_FEE, _BLOB, _SET_CODE = 0, 1, 2, 3, 4


class AuditError(ChainError):
    """The audit cannot run as asked (no node at the URL, no data directory, another chain)."""


# ---------------------------------------------------------------- findings


@dataclass(frozen=True)
class Discrepancy:
    """One thing wrong with a block.

    ``expected`` is what the follower's own verification gives (re-execution, the validator
    set, the hash of the served fields); ``got`` is what the node served.
    """

    field: str
    expected: str
    got: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        found = {"field": self.field, "expected": self.expected, "got": self.got}
        if self.detail:
            found["detail"] = self.detail
        return found

    def __str__(self) -> str:
        text = f"{self.field}: expected {self.expected}, got {self.got}"
        return f"{text} ({self.detail})" if self.detail else text


class AuditFailure(ChainError):
    """A block failed verification; the follower stopped before it.

    Attributes
    ----------
    block_number
        The block that failed.
    block_hash
        The hash the node names that block by (None when it served none).
    discrepancies
        Everything found wrong with it.
    """

    def __init__(
        self, block_number: int, block_hash: bytes | None, discrepancies: Sequence[Discrepancy]
    ) -> None:
        self.block_number = block_number
        self.block_hash = block_hash
        self.discrepancies = tuple(discrepancies)
        fields = ", ".join(d.field for d in self.discrepancies)
        super().__init__(f"block {block_number} failed verification: {fields}")

    def report(self) -> dict[str, Any]:
        """The failure as JSON."""
        return {
            "blockNumber": self.block_number,
            "blockHash": None if self.block_hash is None else _hex(self.block_hash),
            "discrepancies": [d.as_dict() for d in self.discrepancies],
        }

    def describe(self) -> str:
        """The failure as lines of text."""
        name = "" if self.block_hash is None else f" ({_hex(self.block_hash)})"
        lines = [f"block {self.block_number}{name} failed verification:"]
        lines += [f"  - {d}" for d in self.discrepancies]
        return "\n".join(lines)


# ---------------------------------------------------------------- what a node serves


@dataclass(frozen=True)
class ServedLog:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class ServedReceipt:
    """A receipt as the node served it."""

    tx_hash: bytes
    status: int
    cumulative_gas_used: int
    bloom: int
    logs: tuple[ServedLog, ...]


@dataclass(frozen=True)
class ServedBlock:
    """A block as the node served it, decoded for verification.

    ``block_hash`` is the hash the node names the block by (its JSON ``hash``, or the
    canonical index of its data directory); ``header`` is built from the served fields.
    ``problems`` are what was already wrong while decoding (a transaction that cannot be
    rebuilt, a header whose fields cannot form one).
    """

    number: int
    block_hash: bytes | None
    header: BlockHeaderAPI | None
    transactions: tuple[SignedTransactionAPI, ...]
    sealer: bytes | None
    signature: bytes | None
    receipts: tuple[ServedReceipt | None, ...]
    problems: tuple[Discrepancy, ...] = ()


@dataclass(frozen=True)
class VerifiedBlock:
    """A block the follower verified and committed, with its own receipts."""

    block: BlockAPI
    receipts: tuple[ReceiptAPI, ...]
    sealer: bytes | None


class BlockSource(Protocol):
    """Where a follower reads a node's history."""

    description: str

    def chain_id(self) -> int | None:
        """The chain id of the node, None when the source cannot tell."""

    def head_number(self) -> int:
        """The number of the node's latest block."""

    def blocks(self, first: int, last: int) -> Iterator[ServedBlock]:
        """Blocks ``first`` to ``last`` inclusive, in order."""

    def close(self) -> None:
        """Release connections and files."""


# ---------------------------------------------------------------- JSON-RPC source


class RpcCallError(AuditError):
    """The node answered a JSON-RPC request with an error."""


class JsonRpc:
    """A small JSON-RPC 2.0 client with batches, on one keep-alive HTTP session."""

    def __init__(self, url: str, timeout: float = RPC_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Answers in the order of ``calls``; an error answer raises :class:`RpcCallError`."""
        results: list[Any] = []
        for start in range(0, len(calls), RPC_BATCH_LIMIT):
            chunk = calls[start : start + RPC_BATCH_LIMIT]
            body = [
                {"jsonrpc": "2.0", "id": index, "method": method, "params": params}
                for index, (method, params) in enumerate(chunk)
            ]
            try:
                response = self.session.post(self.url, json=cast(Any, body), timeout=self.timeout)
                response.raise_for_status()
                answers = response.json()
            except (requests.RequestException, ValueError) as error:
                raise AuditError(f"no usable answer from the node at {self.url}: {error}") from None
            if not isinstance(answers, list):
                raise RpcCallError(f"the node at {self.url} answered a batch with {answers!r}")
            by_id = {answer.get("id"): answer for answer in answers if isinstance(answer, dict)}
            for index, (method, params) in enumerate(chunk):
                answer = by_id.get(index)
                if answer is None:
                    raise RpcCallError(f"the node did not answer {method}{params}")
                if "error" in answer:
                    problem = answer["error"]
                    raise RpcCallError(
                        f"{method} failed: {problem.get('code')}: {problem.get('message')}"
                    )
                results.append(answer.get("result"))
        return results

    def close(self) -> None:
        self.session.close()


class RpcSource:
    """A node's history over its JSON-RPC: full blocks, their seals and every receipt.

    Transactions are rebuilt from the served JSON fields (type, nonce, fees, gas, to, value,
    input, access list, signature) and must hash to the hash they were served with.
    """

    def __init__(self, url: str, timeout: float = RPC_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.description = f"JSON-RPC {url}"
        self.rpc = JsonRpc(url, timeout)
        self._blocks_per_fetch = 8

    def chain_id(self) -> int:
        return int(self.rpc.call("eth_chainId"), 16)

    def head_number(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def blocks(self, first: int, last: int) -> Iterator[ServedBlock]:
        number = first
        while number <= last:
            count = min(self._blocks_per_fetch, last - number + 1)
            numbers = list(range(number, number + count))
            fetched = self.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
            hashes = [
                str(tx["hash"])
                for block in fetched
                if isinstance(block, dict)
                for tx in block.get("transactions", [])
                if isinstance(tx, dict)
            ]
            receipts = self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            by_hash = dict(zip(hashes, receipts, strict=True))
            for wanted, block in zip(numbers, fetched, strict=True):
                yield served_block_from_json(wanted, block, by_hash)
            transactions = max(len(hashes), 1)
            per_block = max(transactions // count, 1)
            self._blocks_per_fetch = max(
                1, min(MAX_BLOCKS_PER_FETCH, TRANSACTIONS_PER_FETCH // per_block)
            )
            number += count

    def close(self) -> None:
        self.rpc.close()


def served_block_from_json(
    number: int, block: Any, receipts_by_hash: dict[str, Any]
) -> ServedBlock:
    """Decode a block served as JSON (``eth_getBlockByNumber`` with full transactions)."""
    if not isinstance(block, dict):
        return ServedBlock(
            number,
            None,
            None,
            (),
            None,
            None,
            (),
            (Discrepancy("block", f"block {number}", "nothing served"),),
        )
    problems: list[Discrepancy] = []
    block_hash = _bytes_or_none(block.get("hash"))
    try:
        header: BlockHeaderAPI | None = header_from_json(block)
    except (KeyError, TypeError, ValueError, rlp.exceptions.ObjectSerializationError) as error:
        header = None
        problems.append(Discrepancy("header", "a well-formed header", "malformed", str(error)))
    transactions: list[SignedTransactionAPI] = []
    receipts: list[ServedReceipt | None] = []
    for index, entry in enumerate(block.get("transactions", [])):
        where = f"transactions[{index}]"
        if not isinstance(entry, dict):
            problems.append(Discrepancy(where, "a full transaction object", repr(entry)[:80]))
            continue
        try:
            transaction = transaction_from_json(entry)
        except (KeyError, TypeError, ValueError, ValidationError, rlp.DecodingError) as error:
            problems.append(
                Discrepancy(where, "a valid signed transaction", "undecodable", str(error))
            )
            continue
        served_hash = _bytes_or_none(entry.get("hash"))
        if served_hash != transaction.hash:
            problems.append(
                Discrepancy(
                    f"{where}.hash",
                    _hex(transaction.hash),
                    _hex(served_hash),
                    "the served fields of the transaction hash to another value",
                )
            )
        served_sender = _bytes_or_none(entry.get("from"))
        try:
            sender = bytes(transaction.sender)
        except (ValidationError, ValueError) as error:
            problems.append(
                Discrepancy(f"{where}.from", "a recoverable signer", "none", str(error))
            )
        else:
            if served_sender != sender:
                problems.append(Discrepancy(f"{where}.from", _hex(sender), _hex(served_sender)))
        transactions.append(transaction)
        receipts.append(receipt_from_json(receipts_by_hash.get(str(entry.get("hash")))))
    return ServedBlock(
        number=number,
        block_hash=block_hash,
        header=header,
        transactions=tuple(transactions),
        sealer=_bytes_or_none(block.get("yufuSealer")),
        signature=_bytes_or_none(block.get("yufuSeal")),
        receipts=tuple(receipts),
        problems=tuple(problems),
    )


def header_from_json(block: dict[str, Any]) -> BlockHeaderAPI:
    """The py-evm header whose fields the JSON block carries."""
    header_class: Any = PragueBlockHeader
    return cast(
        BlockHeaderAPI,
        header_class(
            parent_hash=_b(block["parentHash"]),
            uncles_hash=_b(block["sha3Uncles"]),
            coinbase=_b(block["miner"]),
            state_root=_b(block["stateRoot"]),
            transaction_root=_b(block["transactionsRoot"]),
            receipt_root=_b(block["receiptsRoot"]),
            bloom=int.from_bytes(_b(block["logsBloom"]), "big"),
            difficulty=_q(block["difficulty"]),
            block_number=_q(block["number"]),
            gas_limit=_q(block["gasLimit"]),
            gas_used=_q(block["gasUsed"]),
            timestamp=_q(block["timestamp"]),
            extra_data=_b(block["extraData"]),
            mix_hash=_b(block["mixHash"]),
            nonce=_b(block["nonce"]),
            base_fee_per_gas=_q(block["baseFeePerGas"]),
            withdrawals_root=_b(block["withdrawalsRoot"]),
            blob_gas_used=_q(block["blobGasUsed"]),
            excess_blob_gas=_q(block["excessBlobGas"]),
            parent_beacon_block_root=_b(block["parentBeaconBlockRoot"]),
            requests_hash=_b(block["requestsHash"]),
        ),
    )


def transaction_from_json(entry: dict[str, Any]) -> SignedTransactionAPI:
    """Rebuild a signed transaction from its JSON-RPC fields."""
    # Typed as the base API, which lacks the typed-transaction constructors.
    builder: Any = PragueVM.get_transaction_builder()
    type_id = _q(entry.get("type", "0x0"))
    to = _b(entry["to"]) if entry.get("to") else b""
    common = {
        "nonce": _q(entry["nonce"]),
        "gas": _q(entry["gas"]),
        "to": to,
        "value": _q(entry["value"]),
        "data": _b(entry["input"]),
    }
    r, s = _q(entry["r"]), _q(entry["s"])
    if type_id == _LEGACY:
        transaction = builder.new_transaction(
            gas_price=_q(entry["gasPrice"]), v=_q(entry["v"]), r=r, s=s, **common
        )
    else:
        y_parity = _q(entry.get("yParity", entry.get("v")))
        chain_id = _q(entry["chainId"])
        access_list = [
            (_b(item["address"]), [_q(key) for key in item["storageKeys"]])
            for item in entry.get("accessList", [])
        ]
        if type_id == _ACCESS_LIST:
            transaction = builder.new_access_list_transaction(
                chain_id=chain_id,
                gas_price=_q(entry["gasPrice"]),
                access_list=access_list,
                y_parity=y_parity,
                r=r,
                s=s,
                **common,
            )
        elif type_id == _DYNAMIC_FEE:
            transaction = builder.new_dynamic_fee_transaction(
                chain_id=chain_id,
                max_priority_fee_per_gas=_q(entry["maxPriorityFeePerGas"]),
                max_fee_per_gas=_q(entry["maxFeePerGas"]),
                access_list=access_list,
                y_parity=y_parity,
                r=r,
                s=s,
                **common,
            )
        elif type_id == _SET_CODE:
            authorizations = [
                {
                    "chain_id": _q(item["chainId"]),
                    "address": _b(item["address"]),
                    "nonce": _q(item["nonce"]),
                    "y_parity": _q(item["yParity"]),
                    "r": _q(item["r"]),
                    "s": _q(item["s"]),
                }
                for item in entry.get("authorizationList", [])
            ]
            transaction = builder.new_set_code_transaction(
                chain_id=chain_id,
                max_priority_fee_per_gas=_q(entry["maxPriorityFeePerGas"]),
                max_fee_per_gas=_q(entry["maxFeePerGas"]),
                access_list=access_list,
                authorization_list=authorizations,
                y_parity=y_parity,
                r=r,
                s=s,
                **common,
            )
        else:
            raise ValueError(f"transaction type {type_id} cannot be rebuilt from JSON")
    transaction.validate()
    return transaction


def receipt_from_json(receipt: Any) -> ServedReceipt | None:
    """A served receipt, None when the node served none."""
    if not isinstance(receipt, dict):
        return None
    return ServedReceipt(
        tx_hash=_b(receipt["transactionHash"]),
        status=_q(receipt["status"]),
        cumulative_gas_used=_q(receipt["cumulativeGasUsed"]),
        bloom=int.from_bytes(_b(receipt["logsBloom"]), "big"),
        logs=tuple(
            ServedLog(_b(log["address"]), tuple(_b(t) for t in log["topics"]), _b(log["data"]))
            for log in receipt.get("logs", [])
        ),
    )


# ---------------------------------------------------------------- data-directory source


class StoreSource:
    """A node's history read straight from its data directory (``chain.sqlite``).

    Nothing is written. The node may be stopped, or running (SQLite's WAL lets a reader see
    the last committed block).
    """

    def __init__(self, data_dir: Path) -> None:
        path = Path(data_dir) / "chain.sqlite"
        if not path.is_file():
            raise AuditError(f"no node data in {data_dir}: {path} does not exist")
        self.description = f"data directory {Path(data_dir).resolve()}"
        self.store = ChainStore(path)
        self.chaindb = ChainDB(AtomicDB(self.store))
        self._transactions = PragueVM.get_transaction_builder()
        self._receipts = PragueVM.get_receipt_builder()

    def chain_id(self) -> int | None:
        # A data directory does not record the chain id; the genesis check covers it.
        return None

    def head_number(self) -> int:
        return int(self.chaindb.get_canonical_head().block_number)

    def blocks(self, first: int, last: int) -> Iterator[ServedBlock]:
        for number in range(first, last + 1):
            yield self.block(number)

    def block(self, number: int) -> ServedBlock:
        try:
            block_hash = bytes(self.chaindb.get_canonical_block_hash(cast(Any, number)))
        except Exception as error:  # noqa: BLE001 - any damage is a finding, not a crash
            return ServedBlock(
                number,
                None,
                None,
                (),
                None,
                None,
                (),
                (
                    Discrepancy(
                        "block", f"block {number} in the canonical index", "missing", str(error)
                    ),
                ),
            )
        try:
            header = self.chaindb.get_block_header_by_hash(cast(Any, block_hash))
            transactions = self.chaindb.get_block_transactions(header, self._transactions)
            stored = self.chaindb.get_receipts(header, self._receipts)
        except Exception as error:  # noqa: BLE001 - any damage is a finding, not a crash
            return ServedBlock(
                number,
                block_hash,
                None,
                (),
                None,
                None,
                (),
                (Discrepancy("block", "readable block data", "unreadable", str(error)),),
            )
        seal = self.store.seal_of(block_hash)
        receipts: list[ServedReceipt | None] = []
        for index, transaction in enumerate(transactions):
            receipt = stored[index] if index < len(stored) else None
            receipts.append(
                None
                if receipt is None
                else ServedReceipt(
                    tx_hash=bytes(transaction.hash),
                    status=_status(receipt),
                    cumulative_gas_used=int(receipt.gas_used),
                    bloom=int(receipt.bloom),
                    logs=tuple(_served_log(log) for log in receipt.logs),
                )
            )
        return ServedBlock(
            number=number,
            block_hash=block_hash,
            header=header,
            transactions=tuple(transactions),
            sealer=None if seal is None else seal.sealer,
            signature=None if seal is None else seal.signature,
            receipts=tuple(receipts),
        )

    def close(self) -> None:
        self.store.close()


# ---------------------------------------------------------------- the follower's node


class FollowerNode(YufuNode):
    """A YufuNode that only reads: it never seals and refuses every transaction sent to it."""

    def __init__(self, config: DevnetConfig, data_dir: Path, upstream: str = "") -> None:
        super().__init__(config, data_dir, validator_key=None)
        self.upstream = upstream

    def send_raw_transaction(self, raw: bytes) -> bytes:
        where = f" ({self.upstream})" if self.upstream else ""
        raise TransactionRejected(
            "this node is a read-only auditor follower and accepts no transactions; "
            f"send them to a validator node{where}"
        )


@dataclass
class FollowerStats:
    """What the follower has verified since it started."""

    blocks: int = 0
    transactions: int = 0
    gas_used: int = 0
    seals_by_sealer: dict[str, int] = field(default_factory=dict)
    permission_checks: int = 0
    started: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return time.monotonic() - self.started


class Follower:
    """Verifies and re-executes a node's blocks on its own chain.

    Parameters
    ----------
    config
        The devnet configuration the audited node runs (it fixes the genesis and the
        validators before the Membership contract exists).
    data_dir
        Where the follower keeps its own chain; a follower restarted on it goes on from
        its own head.
    upstream
        The audited node's address, shown to clients that try to send transactions here.
    check_permissions
        Whether to ask the permissioning contract about every transaction at its block's
        parent (on by default; the import rule of issue 3).
    """

    def __init__(
        self,
        config: DevnetConfig,
        data_dir: Path,
        *,
        upstream: str = "",
        check_permissions: bool = True,
    ) -> None:
        self.config = config
        self.node = FollowerNode(config, Path(data_dir), upstream)
        self.check_permissions = check_permissions
        self.stats = FollowerStats()
        self.failure: AuditFailure | None = None
        self.source_head: int | None = None
        self.listeners: list[Callable[[VerifiedBlock], None]] = []

    # ------------------------------------------------------------ reading

    def head_number(self) -> int:
        return int(self.node.head().block_number)

    def close(self) -> None:
        self.node.close()

    # ------------------------------------------------------------ following

    def check_source(self, source: BlockSource) -> None:
        """The source is the configured chain: same chain id and the same genesis block."""
        chain_id = source.chain_id()
        if chain_id is not None and chain_id != self.node.chain_id:
            raise AuditError(
                f"{source.description} is chain {chain_id}, the configuration says "
                f"{self.node.chain_id}"
            )
        genesis = next(iter(source.blocks(0, 0)))
        own = self.node.block_by_number(0)
        if genesis.block_hash != own.hash:
            failure = AuditFailure(
                0,
                genesis.block_hash,
                [
                    Discrepancy(
                        "hash",
                        _hex(own.hash),
                        _hex(genesis.block_hash),
                        "the genesis built from the configuration differs: another "
                        "configuration or another chain",
                    )
                ],
            )
            self.failure = failure
            raise failure

    def sync(
        self,
        source: BlockSource,
        *,
        until: int | None = None,
        progress: Callable[[VerifiedBlock], None] | None = None,
    ) -> int:
        """Verify and import every block from the follower's head + 1 to ``until``.

        ``until`` defaults to the source's head when called. Returns the follower's head.

        Raises
        ------
        AuditFailure
            A block failed; the follower's head is the block before it.
        """
        if self.failure is not None:
            raise self.failure
        last = source.head_number() if until is None else until
        self.source_head = max(self.source_head or 0, last)
        first = self.head_number() + 1
        if first > last:
            return self.head_number()
        for served in prefetch(source.blocks(first, last), PREFETCH_DEPTH):
            verified = self.import_block(served)
            if progress is not None:
                progress(verified)
        return self.head_number()

    def follow(
        self,
        source: BlockSource,
        stop: threading.Event,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Keep in step with the source until ``stop`` is set or a block fails.

        Connection trouble is retried at each poll (and passed to ``on_error``); a failed
        block raises :class:`AuditFailure`.
        """
        while not stop.is_set():
            try:
                self.sync(source)
            except AuditFailure:
                raise
            except AuditError as error:
                logger.warning("following %s: %s", source.description, error)
                if on_error is not None:
                    on_error(error)
            stop.wait(poll_seconds)

    # ------------------------------------------------------------ one block

    def import_block(self, served: ServedBlock) -> VerifiedBlock:
        """Verify one served block, re-execute it and commit it, or raise AuditFailure."""
        node = self.node
        with node.lock:
            parent = node.chain.get_canonical_head()
            problems = list(served.problems)
            expected_number = parent.block_number + 1
            if served.number != expected_number:
                problems.append(Discrepancy("number", str(expected_number), str(served.number)))
            header = served.header
            if header is None:
                raise self._fail(served, problems)
            problems += self._check_header_identity(served, header, parent)
            sealer, seal_problems = self._check_seal(served, parent)
            problems += seal_problems
            if len(served.transactions) != len(served.receipts):
                problems.append(
                    Discrepancy(
                        "receipts",
                        f"{len(served.transactions)} receipts",
                        f"{len(served.receipts)}",
                    )
                )
            if any(p.field.startswith("transactions[") for p in served.problems):
                # A transaction that cannot be rebuilt cannot be executed either.
                raise self._fail(served, problems)
            if self.check_permissions:
                problems += self._check_permissions(served.transactions, parent)
            executed = self._execute(served, header, parent, problems)
            if problems or executed is None:
                self._discard()
                raise self._fail(served, problems)
            block, receipts = executed
            node.store.stage_block_records(
                Seal(
                    bytes(block.hash),
                    block.number,
                    cast(bytes, sealer),
                    cast(bytes, served.signature),
                ),
                _log_records(block, receipts),
                [],
            )
            node.store.commit()
        self.stats.blocks += 1
        self.stats.transactions += len(block.transactions)
        self.stats.gas_used += int(block.header.gas_used)
        name = to_checksum_address(cast(bytes, sealer))
        self.stats.seals_by_sealer[name] = self.stats.seals_by_sealer.get(name, 0) + 1
        verified = VerifiedBlock(block, receipts, sealer)
        for listener in self.listeners:
            listener(verified)
        return verified

    def _fail(self, served: ServedBlock, problems: list[Discrepancy]) -> AuditFailure:
        failure = AuditFailure(served.number, served.block_hash, problems)
        self.failure = failure
        return failure

    def _check_header_identity(
        self, served: ServedBlock, header: BlockHeaderAPI, parent: BlockHeaderAPI
    ) -> list[Discrepancy]:
        problems: list[Discrepancy] = []
        if served.block_hash != header.hash:
            problems.append(
                Discrepancy(
                    "hash",
                    _hex(header.hash),
                    _hex(served.block_hash),
                    "the served header fields hash to another block hash than the one "
                    "the node names the block by",
                )
            )
        if header.parent_hash != parent.hash:
            problems.append(
                Discrepancy(
                    "parentHash",
                    _hex(parent.hash),
                    _hex(header.parent_hash),
                    f"the follower's block {parent.block_number}",
                )
            )
        return problems

    def _check_seal(
        self, served: ServedBlock, parent: BlockHeaderAPI
    ) -> tuple[bytes | None, list[Discrepancy]]:
        validators = self.node.validators(parent)
        shown = "[" + ", ".join(to_checksum_address(v) for v in validators) + "]"
        wanted = f"a seal by a validator at block {parent.block_number} {shown}"
        if served.signature is None or served.block_hash is None:
            return None, [Discrepancy("seal", wanted, "no seal")]
        try:
            signer = to_canonical_address(recover_signer(served.block_hash, served.signature))
        except Exception as error:  # noqa: BLE001 - a malformed seal is a finding
            return None, [Discrepancy("seal", wanted, "an unrecoverable signature", str(error))]
        problems: list[Discrepancy] = []
        if signer not in validators:
            problems.append(
                Discrepancy(
                    "sealer",
                    wanted,
                    to_checksum_address(signer),
                    "the block is sealed by an account that is not a validator",
                )
            )
        if served.sealer is not None and served.sealer != signer:
            problems.append(
                Discrepancy(
                    "yufuSealer",
                    to_checksum_address(signer),
                    _checksum_or_none(served.sealer),
                    "the node names another sealer than the one who signed",
                )
            )
        return signer, problems

    def _check_permissions(
        self, transactions: Sequence[SignedTransactionAPI], parent: BlockHeaderAPI
    ) -> list[Discrepancy]:
        problems: list[Discrepancy] = []
        answers = self._permission_answers(transactions, parent)
        for index, (transaction, answer) in enumerate(zip(transactions, answers, strict=True)):
            self.stats.permission_checks += 1
            if isinstance(answer, str):
                problems.append(
                    Discrepancy(f"transactions[{index}]", "a permission answer", "error", answer)
                )
            elif not answer:
                problems.append(
                    Discrepancy(
                        f"transactions[{index}]",
                        "allowed by the permissioning contract at the parent block",
                        f"refused for sender {to_checksum_address(transaction.sender)}",
                    )
                )
        return problems

    def _permission_answers(
        self, transactions: Sequence[SignedTransactionAPI], parent: BlockHeaderAPI
    ) -> list[bool | str]:
        """Besu's question for each transaction at the parent state (an error as text).

        The same question as ``YufuNode.transaction_allowed``, asked once per distinct set of
        arguments, all in one state (``view_calls``).
        """
        node = self.node
        if not node.membership_deployed(parent):
            return [transaction.sender == node.regulator for transaction in transactions]
        keys: list[tuple[Any, ...]] = []
        for transaction in transactions:
            target = transaction.to
            if target == CREATE_CONTRACT_ADDRESS:
                target = ZERO_ADDRESS
            keys.append(
                (
                    transaction.sender,
                    target,
                    transaction.value,
                    transaction.max_fee_per_gas,
                    transaction.gas,
                    transaction.data,
                )
            )
        distinct = list(dict.fromkeys(keys))
        payloads = [
            _TRANSACTION_ALLOWED
            + abi_encode(
                ["address", "address", "uint256", "uint256", "uint256", "bytes"], list(arguments)
            )
            for arguments in distinct
        ]
        outputs = self.view_calls([(node.membership, payload) for payload in payloads], parent)
        answers: dict[tuple[Any, ...], bool | str] = {}
        for arguments, output in zip(distinct, outputs, strict=True):
            if isinstance(output, str):
                answers[arguments] = f"the permissioning contract failed: {output}"
                continue
            try:
                answers[arguments] = bool(abi_decode(["bool"], output)[0])
            except Exception as error:  # noqa: BLE001 - an unreadable answer is a finding
                answers[arguments] = f"unreadable answer 0x{output.hex()}: {error}"
        return [answers[key] for key in keys]

    def view_calls(
        self, calls: Sequence[tuple[bytes, bytes]], header: BlockHeaderAPI
    ) -> list[bytes | str]:
        """Run ``(to, data)`` calls on ``header``'s state; each output, or its error as text.

        All calls share one costless state, each reverted after it ran: building a state per
        call (as ``YufuNode.call`` does) costs more than the calls themselves.
        """
        with self.node.lock:
            vm = self.node.chain.get_vm(header)
            outputs: list[bytes | str] = []
            with vm.in_costless_state() as state:
                for to, data in calls:
                    unsigned = vm.create_unsigned_transaction(
                        nonce=state.get_nonce(ZERO_ADDRESS),
                        gas_price=0,
                        gas=header.gas_limit,
                        to=cast(Any, to),
                        value=0,
                        data=data,
                    )
                    snapshot = state.snapshot()
                    try:
                        computation = state.costless_execute_transaction(
                            cast(Any, SpoofTransaction(unsigned, from_=ZERO_ADDRESS))
                        )
                    except Exception as error:  # noqa: BLE001 - reported to the caller
                        outputs.append(f"{type(error).__name__}: {error}")
                        continue
                    finally:
                        state.revert(snapshot)
                    if computation.is_error:
                        outputs.append(f"{type(computation.error).__name__}: {computation.error}")
                    else:
                        outputs.append(bytes(computation.output))
        return outputs

    def _execute(
        self,
        served: ServedBlock,
        header: BlockHeaderAPI,
        parent: BlockHeaderAPI,
        problems: list[Discrepancy],
    ) -> tuple[BlockAPI, tuple[ReceiptAPI, ...]] | None:
        """Run the block as the producer did and compare the result with the served one."""
        chain = self.node.chain
        try:
            chain.header = chain.create_header_from_parent(
                parent,
                timestamp=header.timestamp,
                gas_limit=header.gas_limit,
                coinbase=header.coinbase,
                extra_data=header.extra_data,
                mix_hash=header.mix_hash,
            )
            result, receipts, _ = chain.mine_all(list(served.transactions))
        except Exception as error:  # noqa: BLE001 - a block py-evm refuses is a finding
            problems.append(
                Discrepancy("execution", "a valid block", "refused by re-execution", str(error))
            )
            return None
        block = result.imported_block
        for attribute, name in HEADER_FIELDS:
            ours = getattr(block.header, attribute, None)
            theirs = getattr(header, attribute, None)
            if ours != theirs:
                problems.append(Discrepancy(name, _show(ours), _show(theirs)))
        if served.block_hash != block.hash and not any(p.field == "hash" for p in problems):
            problems.append(Discrepancy("hash", _hex(block.hash), _hex(served.block_hash)))
        problems += _compare_receipts(block, receipts, served.receipts)
        return block, tuple(receipts)

    def _discard(self) -> None:
        self.node.store.discard()
        self.node.chain = self.node.chain_class(AtomicDB(self.node.store))


# ---------------------------------------------------------------- helpers


def _compare_receipts(
    block: BlockAPI,
    receipts: Sequence[ReceiptAPI],
    served: Sequence[ServedReceipt | None],
) -> list[Discrepancy]:
    problems: list[Discrepancy] = []
    for index, (transaction, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
        where = f"receipts[{index}]"
        theirs = served[index] if index < len(served) else None
        if theirs is None:
            problems.append(
                Discrepancy(where, f"the receipt of {_hex(transaction.hash)}", "none served")
            )
            continue
        if theirs.tx_hash != transaction.hash:
            problems.append(
                Discrepancy(
                    f"{where}.transactionHash", _hex(transaction.hash), _hex(theirs.tx_hash)
                )
            )
        if theirs.status != _status(receipt):
            problems.append(
                Discrepancy(f"{where}.status", str(_status(receipt)), str(theirs.status))
            )
        if theirs.cumulative_gas_used != receipt.gas_used:
            problems.append(
                Discrepancy(
                    f"{where}.cumulativeGasUsed",
                    str(receipt.gas_used),
                    str(theirs.cumulative_gas_used),
                )
            )
        if theirs.bloom != receipt.bloom:
            problems.append(
                Discrepancy(f"{where}.logsBloom", _show(receipt.bloom), _show(theirs.bloom))
            )
        ours = tuple(_served_log(log) for log in receipt.logs)
        if len(ours) != len(theirs.logs):
            problems.append(
                Discrepancy(f"{where}.logs", f"{len(ours)} logs", f"{len(theirs.logs)}")
            )
            continue
        for position, (mine, other) in enumerate(zip(ours, theirs.logs, strict=True)):
            if mine != other:
                problems.append(
                    Discrepancy(
                        f"{where}.logs[{position}]",
                        _describe_log(mine),
                        _describe_log(other),
                    )
                )
    return problems


def _log_records(block: BlockAPI, receipts: Iterable[ReceiptAPI]) -> list[LogRecord]:
    """The follower's log index rows for a verified block (as the producer writes them)."""
    records: list[LogRecord] = []
    log_index = 0
    for tx_index, (transaction, receipt) in enumerate(
        zip(block.transactions, receipts, strict=True)
    ):
        for log in receipt.logs:
            records.append(
                LogRecord(
                    block_number=block.number,
                    log_index=log_index,
                    tx_index=tx_index,
                    tx_hash=bytes(transaction.hash),
                    block_hash=bytes(block.hash),
                    address=bytes(log.address),
                    topics=tuple(t.to_bytes(32, "big") for t in log.topics),
                    data=bytes(log.data),
                )
            )
            log_index += 1
    return records


_DONE = object()
T = TypeVar("T")


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """Run ``items`` on a background thread, ``depth`` ahead of the consumer."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stopped.is_set():
                    try:
                        buffer.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stopped.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            buffer.put(error)

    thread = threading.Thread(target=produce, name="yufu-audit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        stopped.set()
        # Unblock a producer waiting on a full queue.
        while not buffer.empty():
            buffer.get_nowait()
        thread.join(timeout=5)


def _status(receipt: ReceiptAPI) -> int:
    # Since Byzantium the receipt's first field is the status: 0x01 or empty.
    return 1 if receipt.state_root == b"\x01" else 0


def _served_log(log: Any) -> ServedLog:
    return ServedLog(
        bytes(log.address), tuple(t.to_bytes(32, "big") for t in log.topics), bytes(log.data)
    )


def _describe_log(log: ServedLog) -> str:
    topics = ",".join(_hex(t)[:10] for t in log.topics)
    return f"{_hex(log.address)} [{topics}] data keccak {_hex(keccak(log.data))[:18]}"


def _hex(value: bytes | None) -> str:
    return "none" if value is None else "0x" + bytes(value).hex()


def _checksum_or_none(value: bytes | None) -> str:
    return "none" if value is None else to_checksum_address(value)


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return _hex(value)
    if isinstance(value, int) and value > 2**64:
        return hex(value)
    return str(value)


def _b(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise ValueError(f"expected 0x-prefixed hex, got {value!r}")
    return bytes.fromhex(value[2:])


def _q(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise ValueError(f"expected a hex quantity, got {value!r}")
    return int(value, 16)


def _bytes_or_none(value: Any) -> bytes | None:
    try:
        return None if value is None else _b(value)
    except ValueError:
        return None


# ---------------------------------------------------------------- the follower as a service


@dataclass(frozen=True)
class FollowOptions:
    """How ``serve_follower`` runs."""

    rpc_url: str
    data_dir: Path
    host: str
    port: int
    poll_seconds: float = DEFAULT_POLL_SECONDS
    report_path: Path | None = None
    check_permissions: bool = True


def serve_follower(config: DevnetConfig, options: FollowOptions) -> int:
    """Follow a node and serve its verified chain over JSON-RPC until stopped or a block fails.

    Prints ``Yufu follower serving JSON-RPC on http://HOST:PORT`` once the port is bound.
    ``GET /audit`` tells how far the follower got. Returns 0 after SIGTERM or SIGINT, 1 when
    a block failed verification (its report printed, and written to ``report_path``), 2 when
    the follower itself failed.
    """
    control = ServerControl()
    stop = control.stop_requested

    source = RpcSource(options.rpc_url)
    follower = Follower(
        config,
        options.data_dir,
        upstream=options.rpc_url,
        check_permissions=options.check_permissions,
    )
    last_error: list[str] = []
    crashed = threading.Event()

    def follow() -> None:
        try:
            while not stop.is_set():
                try:
                    follower.check_source(source)
                    break
                except AuditFailure:
                    raise
                except AuditError as error:
                    # The node may still be starting: try again at the next poll.
                    last_error.append(str(error))
                    stop.wait(options.poll_seconds)
            follower.follow(
                source,
                stop,
                poll_seconds=options.poll_seconds,
                on_error=lambda error: last_error.append(str(error)),
            )
        except AuditFailure as failure:
            print(failure.describe(), flush=True)
        except Exception as error:  # noqa: BLE001 - reported, then the service stops
            logger.exception("the follower stopped")
            last_error.append(f"{type(error).__name__}: {error}")
            crashed.set()
        finally:
            control.request_stop()

    app = create_app(follower.node)

    @app.get("/audit")
    def audit_status() -> dict[str, Any]:
        stats = follower.stats
        return {
            "following": options.rpc_url,
            "verifiedHead": follower.head_number(),
            "sourceHead": follower.source_head,
            "blocksVerified": stats.blocks,
            "transactionsVerified": stats.transactions,
            "sealers": stats.seals_by_sealer,
            "failure": None if follower.failure is None else follower.failure.report(),
            "lastError": last_error[-1] if last_error else None,
        }

    thread = threading.Thread(target=follow, name="yufu-follower", daemon=True)
    try:
        serve_app(
            app,
            options.host,
            options.port,
            lambda url: f"Yufu follower serving JSON-RPC on {url} (following {options.rpc_url})",
            before_serving=lambda _: thread.start(),
            control=control,
        )
    finally:
        stop.set()
        thread.join(timeout=30)
        head = follower.head_number()
        follower.close()
        source.close()
    failure = follower.failure
    if failure is not None and options.report_path is not None:
        options.report_path.parent.mkdir(parents=True, exist_ok=True)
        options.report_path.write_text(json.dumps(failure.report(), indent=2) + "\n")
    print(f"Yufu follower stopped at block {head}", flush=True)
    if failure is not None:
        return 1
    return 2 if crashed.is_set() else 0
