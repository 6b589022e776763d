"""The Yufu node's JSON-RPC 2.0 server: standard Ethereum methods and the ``yufu_`` namespace.

``RpcDispatcher`` answers JSON-RPC requests, single or batched, from a :class:`YufuNode`: it
checks every parameter (a bad one is refused with ``-32602`` naming it), calls the node, and
writes blocks, transactions, receipts and logs as standard Ethereum JSON, so web3.py, ethers
and Foundry's ``cast`` talk to the node unchanged. Whatever a request holds, it gets an answer:
nothing a client sends can crash the server.

``create_app`` puts the dispatcher behind HTTP (``POST /``), with ``GET /health`` for process
supervisors and ``GET /metrics`` for Prometheus.

Block tags: ``latest``, ``safe`` and ``finalized`` are the head (a block sealed by a validator
is final; there are no forks to wait out), ``earliest`` is genesis, and ``pending`` is the head
too, except that ``eth_getTransactionCount`` at ``pending`` counts the mempool.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import rlp
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth_account import Account
from eth_utils import to_canonical_address
from eth_utils.exceptions import ValidationError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.concurrency import run_in_threadpool

from chain.deploy import contract_address
from chain.node.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    InvalidParams,
    LimitExceeded,
    NodeError,
    NotFound,
)
from chain.node.node import PRIORITY_FEE_WEI, YufuNode
from chain.node.proofs import account_proof
from chain.node.store import LogRecord, Seal

logger = logging.getLogger(__name__)

MAX_UINT256: int = 2**256 - 1
MAX_UINT64: int = 2**64 - 1
# Bigger bodies are refused before they are parsed.
MAX_REQUEST_BYTES: int = 16 * 1024 * 1024
MAX_BATCH_SIZE: int = 1_000
# Deeper JSON is refused unparsed (see ``nests_deeper_than``); real requests nest about 6 deep.
MAX_JSON_DEPTH: int = 64
# eth_feeHistory serves at most this many blocks at once (geth's limit).
MAX_FEE_HISTORY_BLOCKS: int = 1_024
MAX_REWARD_PERCENTILES: int = 100
MAX_LOG_TOPICS: int = 4
# eth_getProof proves at most this many storage slots in one request.
MAX_PROOF_STORAGE_KEYS: int = 1_024
# Receipts of committed blocks never change; keep the last few blocks' formatted receipts.
RECEIPT_CACHE_BLOCKS: int = 64
BLOB_TRANSACTION_TYPE: int = 3
SET_CODE_TRANSACTION_TYPE: int = 4
BLOCK_TAGS: tuple[str, ...] = ("latest", "earliest", "pending", "safe", "finalized")

# geth's code for a call the EVM refuses to start (insufficient funds, bad nonce, ...).
CALL_REJECTED: int = -32000


class CallRejected(NodeError):
    """py-evm refused to run a call or estimate before executing it; the message says why."""

    code = CALL_REJECTED


def client_version() -> str:
    """``web3_clientVersion``: ``Yufu/<package version>/python``."""
    try:
        version = importlib.metadata.version("yufu")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"Yufu/{version}/python"


def validator_address(node: YufuNode) -> str | None:
    """The address this node seals blocks with, None for a node without a key."""
    if node.validator_key is None:
        return None
    return data(to_canonical_address(Account.from_key(node.validator_key).address))


def mempool_size(node: YufuNode) -> int:
    """Transactions waiting, counted under the node's lock (the producer changes the pool)."""
    with node.lock:
        return len(node.mempool)


# ---------------------------------------------------------------- encoding


def quantity(value: int) -> str:
    """A JSON-RPC QUANTITY: hex without leading zeros."""
    return hex(value)


def data(value: bytes) -> str:
    """JSON-RPC DATA: ``0x`` and two hex digits a byte."""
    return "0x" + bytes(value).hex()


def word(value: int) -> str:
    """A 32-byte big-endian word as DATA (topics, storage values, storage keys)."""
    return data(value.to_bytes(32, "big"))


def _address_or_none(value: bytes) -> str | None:
    return None if value == CREATE_CONTRACT_ADDRESS else data(value)


# ---------------------------------------------------------------- decoding parameters


def parse_quantity(value: Any, name: str, maximum: int = MAX_UINT256) -> int:
    """A QUANTITY parameter (hex string; a plain JSON integer is accepted too)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value[:2] in ("0x", "0X"):
        digits = value[2:]
        # Bounded before conversion, so a megabyte of digits costs nothing.
        if not digits or len(digits) > 64 or not _is_hex(digits):
            raise InvalidParams(f"{name}: expected a hex quantity, got {_show(value)}")
        number = int(digits, 16)
    else:
        raise InvalidParams(f"{name}: expected a hex quantity, got {_show(value)}")
    if not 0 <= number <= maximum:
        raise InvalidParams(f"{name}: {_show(value)} is out of range (0 to {hex(maximum)})")
    return number


def parse_data(value: Any, name: str, length: int | None = None) -> bytes:
    """A DATA parameter, optionally of an exact byte length."""
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise InvalidParams(f"{name}: expected 0x-prefixed hex data, got {_show(value)}")
    digits = value[2:]
    if len(digits) % 2 or not _is_hex(digits):
        raise InvalidParams(f"{name}: expected an even number of hex digits, got {_show(value)}")
    raw = bytes.fromhex(digits)
    if length is not None and len(raw) != length:
        raise InvalidParams(f"{name}: expected {length} bytes, got {len(raw)}")
    return raw


def parse_address(value: Any, name: str) -> bytes:
    """A 20-byte address."""
    return parse_data(value, name, 20)


def parse_hash(value: Any, name: str) -> bytes:
    """A 32-byte hash."""
    return parse_data(value, name, 32)


def parse_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(f"{name}: expected true or false, got {_show(value)}")
    return value


def _is_hex(digits: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in digits)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class BlockRef:
    """A block parameter: a tag, a number or a hash (EIP-1898)."""

    tag: str | None = None
    number: int | None = None
    block_hash: bytes | None = None


def parse_block(value: Any, name: str) -> BlockRef:
    """A block tag, hex number, or ``{"blockNumber": ...}`` / ``{"blockHash": ...}`` object."""
    if isinstance(value, str) and value in BLOCK_TAGS:
        return BlockRef(tag=value)
    if isinstance(value, dict):
        if "blockHash" in value and "blockNumber" not in value:
            return BlockRef(block_hash=parse_hash(value["blockHash"], f"{name}.blockHash"))
        if "blockNumber" in value and "blockHash" not in value:
            return parse_block(value["blockNumber"], f"{name}.blockNumber")
        raise InvalidParams(f"{name}: expected one of blockNumber or blockHash")
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        return BlockRef(number=parse_quantity(value, name, MAX_UINT64))
    raise InvalidParams(
        f"{name}: expected a block number or one of {', '.join(BLOCK_TAGS)}, got {_show(value)}"
    )


@dataclass(frozen=True)
class CallRequest:
    """The transaction object of ``eth_call`` and ``eth_estimateGas``."""

    sender: bytes | None
    to: bytes | None
    gas: int | None
    value: int
    payload: bytes

    def as_node_params(self) -> dict[str, Any]:
        return {
            "from": self.sender,
            "to": self.to,
            "gas": self.gas,
            "value": self.value,
            "data": self.payload,
        }


def parse_call(value: Any, name: str) -> CallRequest:
    """A call object: ``from``, ``to``, ``gas``, ``value``, ``data``/``input``; fees ignored."""
    if not isinstance(value, dict):
        raise InvalidParams(f"{name}: expected a transaction object, got {_show(value)}")

    def field(key: str, parser: Callable[[Any, str], Any]) -> Any:
        entry = value.get(key)
        return None if entry is None else parser(entry, f"{name}.{key}")

    payload = field("data", parse_data)
    given_input = field("input", parse_data)
    if payload is not None and given_input is not None and payload != given_input:
        raise InvalidParams(f"{name}: data and input differ; send one of them")
    for fee in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce"):
        field(fee, parse_quantity)
    return CallRequest(
        sender=field("from", parse_address),
        to=field("to", parse_address),
        gas=field("gas", lambda v, n: parse_quantity(v, n, MAX_UINT64)),
        value=field("value", parse_quantity) or 0,
        payload=given_input if given_input is not None else (payload or b""),
    )


# ---------------------------------------------------------------- formatting


def format_transaction(
    transaction: SignedTransactionAPI,
    block: BlockAPI | None = None,
    index: int | None = None,
) -> dict[str, Any]:
    """A transaction as Ethereum JSON; ``block`` None for one still in the mempool."""
    type_id = _type_of(transaction)
    formatted: dict[str, Any] = {
        "type": quantity(type_id),
        "hash": data(transaction.hash),
        "nonce": quantity(transaction.nonce),
        "blockHash": None if block is None else data(block.hash),
        "blockNumber": None if block is None else quantity(block.number),
        "transactionIndex": None if index is None else quantity(index),
        "from": data(transaction.sender),
        "to": _address_or_none(transaction.to),
        "value": quantity(transaction.value),
        "gas": quantity(transaction.gas),
        "input": data(transaction.data),
    }
    if type_id >= 2:
        formatted["maxFeePerGas"] = quantity(transaction.max_fee_per_gas)
        formatted["maxPriorityFeePerGas"] = quantity(transaction.max_priority_fee_per_gas)
        formatted["gasPrice"] = quantity(
            transaction.max_fee_per_gas
            if block is None
            else effective_gas_price(transaction, base_fee_of(block.header))
        )
    else:
        formatted["gasPrice"] = quantity(transaction.gas_price)
    if transaction.chain_id is not None:
        formatted["chainId"] = quantity(transaction.chain_id)
    if type_id >= 1:
        formatted["accessList"] = [
            {"address": data(address), "storageKeys": [word(key) for key in keys]}
            for address, keys in transaction.access_list
        ]
    if type_id == BLOB_TRANSACTION_TYPE:
        formatted["maxFeePerBlobGas"] = quantity(transaction.max_fee_per_blob_gas)
        formatted["blobVersionedHashes"] = [
            data(h) for h in getattr(transaction, "blob_versioned_hashes", ())
        ]
    if type_id == SET_CODE_TRANSACTION_TYPE:
        formatted["authorizationList"] = [
            {
                "chainId": quantity(authorization.chain_id),
                "address": data(authorization.address),
                "nonce": quantity(authorization.nonce),
                "yParity": quantity(authorization.y_parity),
                "r": quantity(authorization.r),
                "s": quantity(authorization.s),
            }
            for authorization in transaction.authorization_list
        ]
    if type_id >= 1:
        formatted["v"] = quantity(transaction.y_parity)
        formatted["yParity"] = quantity(transaction.y_parity)
    else:
        # Legacy transactions carry v itself (EIP-155: 35 + 2 * chain id + parity).
        formatted["v"] = quantity(getattr(transaction, "v", 0))
    formatted["r"] = quantity(transaction.r)
    formatted["s"] = quantity(transaction.s)
    return formatted


def base_fee_of(header: BlockHeaderAPI) -> int:
    """A header's base fee (every Yufu block has one; London and later)."""
    return int(header.base_fee_per_gas or 0)


def _type_of(transaction: SignedTransactionAPI) -> int:
    return int(getattr(transaction, "type_id", None) or 0)


def effective_gas_price(transaction: SignedTransactionAPI, base_fee: int) -> int:
    """What the sender paid per gas in a block with ``base_fee``."""
    if _type_of(transaction) >= 2:
        return min(transaction.max_fee_per_gas, transaction.max_priority_fee_per_gas + base_fee)
    return int(transaction.gas_price)


def effective_priority_fee(transaction: SignedTransactionAPI, base_fee: int) -> int:
    """What the block's sealer earned per gas of ``transaction``."""
    return max(effective_gas_price(transaction, base_fee) - base_fee, 0)


def format_block(block: BlockAPI, seal: Seal | None, full_transactions: bool) -> dict[str, Any]:
    """A block as Ethereum JSON, with the Yufu seal as ``yufuSealer`` and ``yufuSeal``."""
    header = block.header
    if full_transactions:
        transactions: list[Any] = [
            format_transaction(transaction, block, index)
            for index, transaction in enumerate(block.transactions)
        ]
    else:
        transactions = [data(transaction.hash) for transaction in block.transactions]
    formatted: dict[str, Any] = {
        "number": quantity(header.block_number),
        "hash": data(header.hash),
        "parentHash": data(header.parent_hash),
        "nonce": data(header.nonce.rjust(8, b"\0")),
        "sha3Uncles": data(header.uncles_hash),
        "logsBloom": data(header.bloom.to_bytes(256, "big")),
        "transactionsRoot": data(header.transaction_root),
        "stateRoot": data(header.state_root),
        "receiptsRoot": data(header.receipt_root),
        "miner": data(header.coinbase),
        "difficulty": quantity(header.difficulty),
        "extraData": data(header.extra_data),
        "size": quantity(len(rlp.encode(block))),
        "gasLimit": quantity(header.gas_limit),
        "gasUsed": quantity(header.gas_used),
        "timestamp": quantity(header.timestamp),
        "mixHash": data(header.mix_hash),
        "baseFeePerGas": quantity(base_fee_of(header)),
        "transactions": transactions,
        "uncles": [data(uncle.hash) for uncle in block.uncles],
    }
    optional_fields = (
        ("withdrawals_root", "withdrawalsRoot", data),
        ("blob_gas_used", "blobGasUsed", quantity),
        ("excess_blob_gas", "excessBlobGas", quantity),
        ("parent_beacon_block_root", "parentBeaconBlockRoot", data),
        ("requests_hash", "requestsHash", data),
    )
    for attribute, key, encode in optional_fields:
        if hasattr(header, attribute):
            formatted[key] = encode(getattr(header, attribute))
    if hasattr(header, "withdrawals_root"):
        formatted["withdrawals"] = []
    formatted["yufuSealer"] = None if seal is None else data(seal.sealer)
    formatted["yufuSeal"] = None if seal is None else data(seal.signature)
    return formatted


def format_log(log: LogRecord) -> dict[str, Any]:
    """A log from the index as Ethereum JSON."""
    return {
        "address": data(log.address),
        "topics": [data(topic) for topic in log.topics],
        "data": data(log.data),
        "blockNumber": quantity(log.block_number),
        "blockHash": data(log.block_hash),
        "transactionHash": data(log.tx_hash),
        "transactionIndex": quantity(log.tx_index),
        "logIndex": quantity(log.log_index),
        "removed": False,
    }


def format_receipts(block: BlockAPI, receipts: Iterable[ReceiptAPI]) -> list[dict[str, Any]]:
    """Every receipt of a block as Ethereum JSON (gas used and log indexes need them all)."""
    formatted: list[dict[str, Any]] = []
    previous_cumulative = 0
    log_index = 0
    base_fee = base_fee_of(block.header)
    for index, (transaction, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
        logs = []
        for log in receipt.logs:
            logs.append(
                format_log(
                    LogRecord(
                        block_number=block.number,
                        log_index=log_index,
                        tx_index=index,
                        tx_hash=bytes(transaction.hash),
                        block_hash=bytes(block.hash),
                        address=bytes(log.address),
                        topics=tuple(topic.to_bytes(32, "big") for topic in log.topics),
                        data=bytes(log.data),
                    )
                )
            )
            log_index += 1
        creates = transaction.to == CREATE_CONTRACT_ADDRESS
        formatted.append(
            {
                "type": quantity(_type_of(transaction)),
                "transactionHash": data(transaction.hash),
                "transactionIndex": quantity(index),
                "blockHash": data(block.hash),
                "blockNumber": quantity(block.number),
                "from": data(transaction.sender),
                "to": _address_or_none(transaction.to),
                "cumulativeGasUsed": quantity(receipt.gas_used),
                "gasUsed": quantity(receipt.gas_used - previous_cumulative),
                "effectiveGasPrice": quantity(effective_gas_price(transaction, base_fee)),
                "contractAddress": (
                    data(contract_address(transaction.sender, transaction.nonce))
                    if creates
                    else None
                ),
                "logs": logs,
                "logsBloom": data(receipt.bloom.to_bytes(256, "big")),
                # Since Byzantium the receipt's first field is the status: 0x01 or empty.
                "status": quantity(1 if receipt.state_root == b"\x01" else 0),
            }
        )
        previous_cumulative = receipt.gas_used
    return formatted


def format_seal(seal: Seal) -> dict[str, Any]:
    return {
        "blockHash": data(seal.block_hash),
        "blockNumber": quantity(seal.block_number),
        "sealer": data(seal.sealer),
        "signature": data(seal.signature),
    }


# ---------------------------------------------------------------- the dispatcher


class BlockProducerAPI(Protocol):
    """What the server needs of the block producer."""

    last_error: str | None

    def notify_transaction(self) -> None:
        """A transaction entered the mempool (the producer may seal at once when it is full)."""

    def is_running(self) -> bool:
        """Whether the producer's thread is alive."""


# The methods served, each by the dispatcher method named beside it.
RPC_METHODS: dict[str, str] = {
    "web3_clientVersion": "web3_client_version",
    "net_version": "net_version",
    "eth_chainId": "eth_chain_id",
    "eth_syncing": "eth_syncing",
    "eth_accounts": "eth_accounts",
    "eth_blockNumber": "eth_block_number",
    "eth_getBlockByNumber": "eth_get_block_by_number",
    "eth_getBlockByHash": "eth_get_block_by_hash",
    "eth_getTransactionByHash": "eth_get_transaction_by_hash",
    "eth_getTransactionReceipt": "eth_get_transaction_receipt",
    "eth_getTransactionCount": "eth_get_transaction_count",
    "eth_getBalance": "eth_get_balance",
    "eth_getCode": "eth_get_code",
    "eth_getStorageAt": "eth_get_storage_at",
    "eth_call": "eth_call",
    "eth_estimateGas": "eth_estimate_gas",
    "eth_gasPrice": "eth_gas_price",
    "eth_maxPriorityFeePerGas": "eth_max_priority_fee_per_gas",
    "eth_feeHistory": "eth_fee_history",
    "eth_sendRawTransaction": "eth_send_raw_transaction",
    "eth_getLogs": "eth_get_logs",
    "eth_getProof": "eth_get_proof",
    "yufu_getSeal": "yufu_get_seal",
    "yufu_status": "yufu_status",
    "yufu_validators": "yufu_validators",
}

# Dev-only test controls, served only by a node started with ``run --dev`` (anvil's names).
DEV_RPC_METHODS: dict[str, str] = {
    "evm_snapshot": "evm_snapshot",
    "evm_revert": "evm_revert",
    "evm_increaseTime": "evm_increase_time",
    "evm_mine": "evm_mine",
}


class RpcDispatcher:
    """Answers JSON-RPC 2.0 requests from a :class:`YufuNode`.

    Parameters
    ----------
    node
        The node whose chain is served.
    producer
        The block producer to notify of new transactions, if this node seals blocks.
    dev
        Dev-only: also serve ``DEV_RPC_METHODS`` (never by default).
    """

    def __init__(
        self, node: YufuNode, producer: BlockProducerAPI | None = None, dev: bool = False
    ) -> None:
        self.node = node
        self.producer = producer
        self.version = client_version()
        self.methods: dict[str, Callable[..., Any]] = {
            name: getattr(self, attribute) for name, attribute in RPC_METHODS.items()
        }
        if dev:  # dev-only test controls
            self.methods.update(
                {name: getattr(self, attribute) for name, attribute in DEV_RPC_METHODS.items()}
            )
        self._signatures = {
            name: inspect.signature(method) for name, method in self.methods.items()
        }
        self._receipt_cache: OrderedDict[bytes, list[dict[str, Any]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self.request_counts: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------ requests

    def handle_body(self, body: bytes) -> Any | None:
        """Answer a raw HTTP body; None when it held only notifications."""
        if nests_deeper_than(body, MAX_JSON_DEPTH):
            return _error_response(
                None, PARSE_ERROR, f"parse error: JSON nested deeper than {MAX_JSON_DEPTH}"
            )
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:
            # ValueError covers JSONDecodeError, bad UTF-8 and over-long integer literals.
            return _error_response(None, PARSE_ERROR, f"parse error: {_short(error)}")
        return self.handle_payload(payload)

    def handle_payload(self, payload: Any) -> Any | None:
        """Answer a parsed request or batch; None when nothing needs an answer."""
        if isinstance(payload, list):
            if not payload:
                return _error_response(None, INVALID_REQUEST, "invalid request: empty batch")
            if len(payload) > MAX_BATCH_SIZE:
                return _error_response(
                    None,
                    INVALID_REQUEST,
                    f"invalid request: batch of {len(payload)} exceeds {MAX_BATCH_SIZE}",
                )
            answers = [self.handle_request(entry) for entry in payload]
            kept = [answer for answer in answers if answer is not None]
            return kept or None
        return self.handle_request(payload)

    def handle_request(self, request: Any) -> dict[str, Any] | None:
        """Answer one request object; None for a notification (a request without ``id``)."""
        if not isinstance(request, dict):
            return _error_response(None, INVALID_REQUEST, "invalid request: expected an object")
        request_id = request.get("id")
        if not _valid_id(request_id):
            return _error_response(
                None, INVALID_REQUEST, "invalid request: id must be a string, number or null"
            )
        if request.get("jsonrpc") != "2.0":
            return _error_response(
                request_id, INVALID_REQUEST, 'invalid request: jsonrpc must be "2.0"'
            )
        method = request.get("method")
        if not isinstance(method, str):
            return _error_response(
                request_id, INVALID_REQUEST, "invalid request: method must be a string"
            )
        params = request.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            response = _error_response(
                request_id, InvalidParams.code, "invalid params: expected an array of parameters"
            )
        else:
            response = self._call(request_id, method, params)
        self._count(method, "error" if "error" in response else "ok")
        return response if "id" in request else None

    def _call(self, request_id: Any, method: str, params: list[Any]) -> dict[str, Any]:
        handler = self.methods.get(method)
        if handler is None:
            return _error_response(
                request_id, METHOD_NOT_FOUND, f"the method {_show(method)} does not exist"
            )
        try:
            arguments = self._bind(method, params)
            result = handler(*arguments)
        except NodeError as error:
            return _error_response(request_id, error.code, error.message, error.data)
        except Exception:
            logger.exception("%s failed", method)
            return _error_response(request_id, INTERNAL_ERROR, f"internal error in {method}")
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _bind(self, method: str, params: list[Any]) -> list[Any]:
        """Check the parameter count against the handler's signature; null means default."""
        parameters = list(self._signatures[method].parameters.values())
        if len(params) > len(parameters):
            raise InvalidParams(
                f"too many arguments: {method} takes at most {len(parameters)}, got {len(params)}"
            )
        arguments: list[Any] = []
        for index, parameter in enumerate(parameters):
            given = params[index] if index < len(params) else None
            if given is None:
                if parameter.default is inspect.Parameter.empty:
                    raise InvalidParams(
                        f"missing value for required argument {index} ({parameter.name})"
                    )
                given = parameter.default
            arguments.append(given)
        return arguments

    def _count(self, method: str, outcome: str) -> None:
        label = method if method in self.methods else "unknown"
        with self._counts_lock:
            key = (label, outcome)
            self.request_counts[key] = self.request_counts.get(key, 0) + 1

    # ------------------------------------------------------------ resolving blocks

    def _header(self, ref: BlockRef) -> BlockHeaderAPI:
        """The header a state read is answered at; refuses blocks the node does not have."""
        if ref.block_hash is not None:
            return self.node.block_by_hash(ref.block_hash).header
        head = self.node.head()
        number = self._number(ref, head)
        if number == head.block_number:
            return head
        if number > head.block_number:
            raise NotFound(
                f"header not found: block {number} is beyond the head {head.block_number}"
            )
        return self.node.block_by_number(number).header

    @staticmethod
    def _number(ref: BlockRef, head: BlockHeaderAPI) -> int:
        if ref.number is not None:
            return ref.number
        return 0 if ref.tag == "earliest" else int(head.block_number)

    def _block_or_none(self, ref: BlockRef) -> BlockAPI | None:
        try:
            if ref.block_hash is not None:
                return self.node.block_by_hash(ref.block_hash)
            number = self._number(ref, self.node.head())
            return self.node.block_by_number(number)
        except NotFound:
            return None

    # ------------------------------------------------------------ web3_, net_

    def web3_client_version(self) -> str:
        return self.version

    def net_version(self) -> str:
        return str(self.node.chain_id)

    # ------------------------------------------------------------ eth_: chain

    def eth_chain_id(self) -> str:
        return quantity(self.node.chain_id)

    def eth_syncing(self) -> bool:
        return False

    def eth_accounts(self) -> list[str]:
        # The node holds no keys for anyone: every transaction arrives signed.
        return []

    def eth_block_number(self) -> str:
        return quantity(self.node.head().block_number)

    def eth_get_block_by_number(self, block: Any, full_transactions: Any = False) -> Any:
        ref = parse_block(block, "block")
        full = parse_bool(full_transactions, "full_transactions")
        found = self._block_or_none(ref)
        if found is None:
            return None
        return format_block(found, self.node.seal(bytes(found.hash)), full)

    def eth_get_block_by_hash(self, block_hash: Any, full_transactions: Any = False) -> Any:
        wanted = parse_hash(block_hash, "block_hash")
        full = parse_bool(full_transactions, "full_transactions")
        found = self._block_or_none(BlockRef(block_hash=wanted))
        if found is None:
            return None
        return format_block(found, self.node.seal(bytes(found.hash)), full)

    # ------------------------------------------------------------ eth_: transactions

    def eth_get_transaction_by_hash(self, transaction_hash: Any) -> Any:
        wanted = parse_hash(transaction_hash, "transaction_hash")
        location = self.node.transaction_location(wanted)
        if location is not None:
            number, index = location
            block = self.node.block_by_number(number)
            return format_transaction(block.transactions[index], block, index)
        pending = self.node.pending_transaction(wanted)
        return None if pending is None else format_transaction(pending)

    def eth_get_transaction_receipt(self, transaction_hash: Any) -> Any:
        wanted = parse_hash(transaction_hash, "transaction_hash")
        location = self.node.transaction_location(wanted)
        if location is None:
            return None
        number, index = location
        return self._receipts_of(self.node.block_by_number(number))[index]

    def _receipts_of(self, block: BlockAPI) -> list[dict[str, Any]]:
        key = bytes(block.hash)
        with self._cache_lock:
            cached = self._receipt_cache.get(key)
            if cached is not None:
                self._receipt_cache.move_to_end(key)
                return cached
        formatted = format_receipts(block, self.node.receipts(block))
        with self._cache_lock:
            self._receipt_cache[key] = formatted
            while len(self._receipt_cache) > RECEIPT_CACHE_BLOCKS:
                self._receipt_cache.popitem(last=False)
        return formatted

    def eth_get_transaction_count(self, address: Any, block: Any = "latest") -> str:
        account = parse_address(address, "address")
        ref = parse_block(block, "block")
        if ref.tag == "pending":
            return quantity(self.node.pending_nonce(account))
        return quantity(self.node.nonce(account, self._header(ref)))

    def eth_send_raw_transaction(self, raw_transaction: Any) -> str:
        raw = parse_data(raw_transaction, "raw_transaction")
        if not raw:
            raise InvalidParams("raw_transaction: empty")
        tx_hash = self.node.send_raw_transaction(raw)
        if self.producer is not None:
            self.producer.notify_transaction()
        return data(tx_hash)

    # ------------------------------------------------------------ eth_: state

    def eth_get_balance(self, address: Any, block: Any = "latest") -> str:
        account = parse_address(address, "address")
        header = self._header(parse_block(block, "block"))
        return quantity(self.node.balance(account, header))

    def eth_get_code(self, address: Any, block: Any = "latest") -> str:
        account = parse_address(address, "address")
        header = self._header(parse_block(block, "block"))
        return data(self.node.code(account, header))

    def eth_get_storage_at(self, address: Any, slot: Any, block: Any = "latest") -> str:
        account = parse_address(address, "address")
        position = parse_quantity(slot, "slot")
        header = self._header(parse_block(block, "block"))
        return word(self.node.storage(account, position, header))

    def eth_call(self, transaction: Any, block: Any = "latest", state_overrides: Any = None) -> str:
        if state_overrides is not None:
            raise InvalidParams("state_overrides: not supported by this node")
        call = parse_call(transaction, "transaction")
        header = self._header(parse_block(block, "block"))
        try:
            return data(self.node.call(self._capped(call, header), header))
        except ValidationError as error:
            raise CallRejected(f"call refused: {error}") from None

    def eth_estimate_gas(self, transaction: Any, block: Any = "latest") -> str:
        call = parse_call(transaction, "transaction")
        header = self._header(parse_block(block, "block"))
        try:
            return quantity(self.node.estimate_gas(self._capped(call, header), header))
        except ValidationError as error:
            raise CallRejected(f"call refused: {error}") from None

    @staticmethod
    def _capped(call: CallRequest, header: BlockHeaderAPI) -> dict[str, Any]:
        # As geth's RPC gas cap: a call never runs with more gas than a block holds.
        params = call.as_node_params()
        if call.gas is not None:
            params["gas"] = min(call.gas, header.gas_limit)
        return params

    def eth_get_proof(self, address: Any, storage_keys: Any, block: Any = "latest") -> Any:
        """EIP-1186: the account and the storage slots asked for, with Merkle proofs.

        The proofs lead from the block's state root; storage keys are echoed as written.
        """
        account = parse_address(address, "address")
        if not isinstance(storage_keys, list):
            raise InvalidParams(f"storage_keys: expected a list, got {_show(storage_keys)}")
        if len(storage_keys) > MAX_PROOF_STORAGE_KEYS:
            raise LimitExceeded(
                f"storage_keys: at most {MAX_PROOF_STORAGE_KEYS} keys in one request"
            )
        slots = [
            parse_quantity(key, f"storage_keys[{index}]") for index, key in enumerate(storage_keys)
        ]
        keys = [key if isinstance(key, str) else quantity(key) for key in storage_keys]
        header = self._header(parse_block(block, "block"))
        # Under the node's lock: the producer writes trie nodes while it builds a block.
        with self.node.lock:
            return account_proof(
                self.node.chain.chaindb.db, header.state_root, account, slots, keys
            )

    # ------------------------------------------------------------ eth_: fees

    def eth_gas_price(self) -> str:
        return quantity(self.node.base_fee_next() + PRIORITY_FEE_WEI)

    def eth_max_priority_fee_per_gas(self) -> str:
        return quantity(PRIORITY_FEE_WEI)

    def eth_fee_history(
        self, block_count: Any, newest_block: Any, reward_percentiles: Any = None
    ) -> dict[str, Any]:
        count = parse_quantity(block_count, "block_count", MAX_UINT64)
        ref = parse_block(newest_block, "newest_block")
        percentiles = self._percentiles(reward_percentiles)
        head = self.node.head()
        newest = int(self._header(ref).block_number)
        count = min(count, MAX_FEE_HISTORY_BLOCKS, newest + 1)
        if count == 0:
            return {"oldestBlock": quantity(0), "baseFeePerGas": [], "gasUsedRatio": []}
        oldest = newest - count + 1
        base_fees: list[str] = []
        ratios: list[float] = []
        rewards: list[list[str]] = []
        for number in range(oldest, newest + 1):
            block = self.node.block_by_number(number)
            header = block.header
            base_fees.append(quantity(base_fee_of(header)))
            ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
            if percentiles is not None:
                rewards.append([quantity(r) for r in self._rewards(block, percentiles)])
        next_base_fee = (
            self.node.base_fee_next()
            if newest >= head.block_number
            else base_fee_of(self.node.block_by_number(newest + 1).header)
        )
        base_fees.append(quantity(next_base_fee))
        history: dict[str, Any] = {
            "oldestBlock": quantity(oldest),
            "baseFeePerGas": base_fees,
            "gasUsedRatio": ratios,
        }
        if percentiles is not None:
            history["reward"] = rewards
        return history

    @staticmethod
    def _percentiles(value: Any) -> list[float] | None:
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > MAX_REWARD_PERCENTILES:
            raise InvalidParams(
                f"reward_percentiles: expected a list of at most {MAX_REWARD_PERCENTILES} numbers"
            )
        previous = 0.0
        for entry in value:
            if isinstance(entry, bool) or not isinstance(entry, int | float):
                raise InvalidParams(f"reward_percentiles: {_show(entry)} is not a number")
            if not previous <= entry <= 100:
                raise InvalidParams("reward_percentiles: expected rising numbers between 0 and 100")
            previous = float(entry)
        return [float(entry) for entry in value]

    def _rewards(self, block: BlockAPI, percentiles: list[float]) -> list[int]:
        """Priority fees at the given percentiles of the block's gas (as geth computes them)."""
        if not block.transactions:
            return [0 for _ in percentiles]
        receipts = self._receipts_of(block)
        base_fee = base_fee_of(block.header)
        paid = sorted(
            (
                effective_priority_fee(transaction, base_fee),
                int(receipt["gasUsed"], 16),
            )
            for transaction, receipt in zip(block.transactions, receipts, strict=True)
        )
        rewards: list[int] = []
        gas_used = block.header.gas_used
        index = 0
        cumulative = paid[0][1]
        for percentile in percentiles:
            threshold = gas_used * percentile / 100
            while cumulative < threshold and index < len(paid) - 1:
                index += 1
                cumulative += paid[index][1]
            rewards.append(paid[index][0])
        return rewards

    # ------------------------------------------------------------ eth_: logs

    def eth_get_logs(self, log_filter: Any) -> list[dict[str, Any]]:
        if not isinstance(log_filter, dict):
            raise InvalidParams(f"filter: expected an object, got {_show(log_filter)}")
        addresses = self._filter_addresses(log_filter.get("address"))
        topics = self._filter_topics(log_filter.get("topics"))
        head = self.node.head()
        if log_filter.get("blockHash") is not None:
            if log_filter.get("fromBlock") is not None or log_filter.get("toBlock") is not None:
                raise InvalidParams("filter: blockHash cannot be combined with fromBlock/toBlock")
            block_hash = parse_hash(log_filter["blockHash"], "filter.blockHash")
            first = last = int(self.node.block_by_hash(block_hash).number)
        else:
            first = self._filter_bound(log_filter.get("fromBlock"), "filter.fromBlock", head)
            last = self._filter_bound(log_filter.get("toBlock"), "filter.toBlock", head)
            if first > last:
                raise InvalidParams(f"filter: fromBlock {first} is after toBlock {last}")
            last = min(last, head.block_number)
            if first > last:
                return []
        return [format_log(log) for log in self.node.logs(first, last, addresses, topics)]

    def _filter_bound(self, value: Any, name: str, head: BlockHeaderAPI) -> int:
        if value is None:
            return int(head.block_number)
        ref = parse_block(value, name)
        if ref.block_hash is not None:
            return int(self.node.block_by_hash(ref.block_hash).number)
        return self._number(ref, head)

    @staticmethod
    def _filter_addresses(value: Any) -> list[bytes]:
        if value is None:
            return []
        if isinstance(value, list):
            return [parse_address(entry, f"filter.address[{i}]") for i, entry in enumerate(value)]
        return [parse_address(value, "filter.address")]

    @staticmethod
    def _filter_topics(value: Any) -> list[list[bytes] | None]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidParams(f"filter.topics: expected a list, got {_show(value)}")
        if len(value) > MAX_LOG_TOPICS:
            raise InvalidParams(f"filter.topics: at most {MAX_LOG_TOPICS} positions")
        topics: list[list[bytes] | None] = []
        for position, entry in enumerate(value):
            name = f"filter.topics[{position}]"
            if entry is None:
                topics.append(None)
            elif isinstance(entry, list):
                # An empty list matches anything, as null does.
                choices = [parse_hash(choice, name) for choice in entry if choice is not None]
                topics.append(choices if choices and None not in entry else None)
            else:
                topics.append([parse_hash(entry, name)])
        return topics

    # ------------------------------------------------------------ yufu_

    def yufu_get_seal(self, block_hash: Any) -> Any:
        seal = self.node.seal(parse_hash(block_hash, "block_hash"))
        return None if seal is None else format_seal(seal)

    def yufu_status(self) -> dict[str, Any]:
        head = self.node.head()
        return {
            "chainId": quantity(self.node.chain_id),
            "head": {
                "number": quantity(head.block_number),
                "hash": data(head.hash),
                "stateRoot": data(head.state_root),
                "timestamp": quantity(head.timestamp),
            },
            "mempoolSize": mempool_size(self.node),
            "blocksProduced": self.node.blocks_produced,
            "transactionsSealed": self.node.transactions_sealed,
            "validator": validator_address(self.node),
            "permissioningContract": data(self.node.membership),
            "permissioningDeployed": self.node.membership_deployed(head),
            "producerRunning": self.producer is not None and self.producer.is_running(),
        }

    def yufu_validators(self, block: Any = "latest") -> list[str]:
        header = self._header(parse_block(block, "block"))
        return [data(address) for address in self.node.validators(header)]

    # ------------------------------------------------------------ dev-only (run --dev)

    def evm_snapshot(self) -> str:
        return quantity(self.node.dev_snapshot())

    def evm_revert(self, snapshot_id: Any) -> bool:
        self.node.dev_revert(parse_quantity(snapshot_id, "snapshot_id", MAX_UINT64))
        return True

    def evm_increase_time(self, seconds: Any) -> int:
        return self.node.dev_increase_time(parse_quantity(seconds, "seconds", MAX_UINT64))

    def evm_mine(self) -> str:
        if self.node.validator_key is None:
            raise InvalidParams("this node has no validator key and cannot seal blocks")
        self.node.produce_block(allow_empty=True)
        return "0x0"


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether a JSON text opens more than ``limit`` arrays or objects inside each other.

    Checked before parsing: the C JSON parser recurses once a level, and py-evm and py_ecc
    raise Python's recursion limit so far that a deep enough request would overflow the C
    stack and kill the process instead of raising ``RecursionError``.
    """
    depth = 0
    in_string = False
    escaped = -1
    for match in _JSON_STRUCTURE.finditer(body):
        position = match.start()
        if position == escaped:
            continue
        char = body[position]
        if in_string:
            if char == _BACKSLASH:
                escaped = position + 1
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPENING:
            depth += 1
            if depth > limit:
                return True
        elif char in _CLOSING:
            depth -= 1
    return False


_JSON_STRUCTURE = re.compile(rb'["\\\[\]{}]')
_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_OPENING = (ord("["), ord("{"))
_CLOSING = (ord("]"), ord("}"))


def _valid_id(value: Any) -> bool:
    if isinstance(value, float):
        # NaN and Infinity parse, but cannot be written back as JSON.
        return math.isfinite(value)
    return value is None or isinstance(value, str | int) and not isinstance(value, bool)


def _error_response(
    request_id: Any, code: int, message: str, error_data: Any = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if error_data is not None:
        error["data"] = error_data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# ---------------------------------------------------------------- metrics


class NodeMetrics:
    """A Prometheus collector reading the node's counters at scrape time."""

    def __init__(self, dispatcher: RpcDispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        node = self.dispatcher.node
        head = node.head()
        blocks = CounterMetricFamily(
            "yufu_blocks_produced", "Blocks this node sealed since it started."
        )
        blocks.add_metric([], node.blocks_produced)
        yield blocks
        sealed = CounterMetricFamily(
            "yufu_transactions_sealed", "Transactions this node sealed since it started."
        )
        sealed.add_metric([], node.transactions_sealed)
        yield sealed
        yield GaugeMetricFamily(
            "yufu_mempool_transactions",
            "Acknowledged transactions waiting for a block.",
            value=mempool_size(node),
        )
        yield GaugeMetricFamily(
            "yufu_head_block_number",
            "Number of the latest committed block.",
            value=head.block_number,
        )
        yield GaugeMetricFamily(
            "yufu_head_block_timestamp_seconds",
            "Timestamp of the latest committed block.",
            value=head.timestamp,
        )
        yield GaugeMetricFamily(
            "yufu_last_block_production_seconds",
            "Seconds the last block took to execute, seal and commit.",
            value=node.last_block_seconds,
        )
        requests = CounterMetricFamily(
            "yufu_rpc_requests", "JSON-RPC requests answered.", labels=["method", "outcome"]
        )
        with self.dispatcher._counts_lock:
            counts = dict(self.dispatcher.request_counts)
        for (method, outcome), count in sorted(counts.items()):
            requests.add_metric([method, outcome], count)
        yield requests


# ---------------------------------------------------------------- the HTTP app


def create_app(
    node: YufuNode, producer: BlockProducerAPI | None = None, dev: bool = False
) -> FastAPI:
    """The node's HTTP server: JSON-RPC on ``POST /``, ``GET /health`` and ``GET /metrics``.

    ``dev`` (dev-only, ``run --dev``) also serves the ``evm_`` test controls.
    """
    dispatcher = RpcDispatcher(node, producer, dev)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeMetrics(dispatcher))
    started = time.monotonic()
    app = FastAPI(title="Yufu node", version=dispatcher.version, docs_url=None, redoc_url=None)
    app.state.dispatcher = dispatcher

    @app.post("/")
    async def json_rpc(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_REQUEST_BYTES:
                return JSONResponse(
                    _error_response(
                        None, INVALID_REQUEST, f"request larger than {MAX_REQUEST_BYTES} bytes"
                    ),
                    status_code=413,
                )
        # The node's calls block (EVM, SQLite), so they run off the event loop.
        answer = await run_in_threadpool(dispatcher.handle_body, bytes(body))
        if answer is None:
            return Response(status_code=204)
        return JSONResponse(answer)

    @app.get("/health")
    def health() -> dict[str, Any]:
        head = node.head()
        producing = producer is None or (producer.is_running() and producer.last_error is None)
        return {
            "status": "ok" if producing else "degraded",
            "chainId": node.chain_id,
            "head": int(head.block_number),
            "headHash": data(head.hash),
            "headTimestamp": int(head.timestamp),
            "mempool": mempool_size(node),
            "blocksProduced": node.blocks_produced,
            "validator": validator_address(node),
            "producerRunning": producer is not None and producer.is_running(),
            "producerError": None if producer is None else producer.last_error,
            "uptimeSeconds": round(time.monotonic() - started, 3),
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
