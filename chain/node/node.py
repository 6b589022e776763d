"""The Yufu node's core: a permissioned py-evm chain that persists, seals and serves reads.

``YufuNode`` owns one py-evm ``MiningChain`` on a :class:`chain.node.store.ChainStore`. It
accepts raw transactions into a mempool after asking the permissioning contract, as Besu does;
it produces blocks by executing many transactions at once (``mine_all``), seals each block with
its validator key, indexes the block's logs, and commits block, seal, index and journal
changes in one SQLite transaction. Everything the JSON-RPC layer serves comes from here.

Only the core lives here; the HTTP server is ``chain.node.rpc`` and the process entry point is
``chain.node.__main__``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import rlp
from eth._utils.headers import compute_gas_limit_bounds
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI
from eth.chains.base import MiningChain
from eth.constants import BLANK_ROOT_HASH, CREATE_CONTRACT_ADDRESS, ZERO_ADDRESS
from eth.db.atomic import AtomicDB
from eth.db.schema import SchemaV1
from eth.exceptions import (
    CanonicalHeadNotFound,
    HeaderNotFound,
    Revert,
    TransactionNotFound,
    VMError,
)
from eth.rlp.sedes import chain_gaps
from eth.vm.forks import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_typing import BlockNumber, Hash32
from eth_utils import function_signature_to_4byte_selector, to_canonical_address
from eth_utils.exceptions import ValidationError

from chain.config import DevnetConfig
from chain.deploy import contract_address
from chain.messages import recover_signer
from chain.node.errors import (
    ExecutionReverted,
    InvalidParams,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    TransactionRejected,
)
from chain.node.store import ChainStore, JournalEntry, LogRecord, Seal

logger = logging.getLogger(__name__)

# Every configured account starts with this much ether for gas; gas is how the chain meters
# work, money itself lives in the bank.
GENESIS_BALANCE_WEI: int = 10**24
# Fixed, so every node built from the same config has the same genesis block.
GENESIS_TIMESTAMP: int = 1_767_225_600  # 2026-01-01T00:00:00Z
GENESIS_EXTRA_DATA: bytes = b"yufu devnet genesis"
MAX_TRANSACTIONS_PER_BLOCK: int = 2_000
MAX_PENDING_PER_SENDER: int = 512
MAX_PENDING_TOTAL: int = 50_000
# A replacement must raise both fee caps by at least this share (geth's rule).
REPLACEMENT_BUMP_PERCENT: int = 10
MAX_LOGS_PER_QUERY: int = 10_000
PRIORITY_FEE_WEI: int = 1_000_000_000

_TRANSACTION_ALLOWED = function_signature_to_4byte_selector(
    "transactionAllowed(address,address,uint256,uint256,uint256,bytes)"
)
_GET_VALIDATORS = function_signature_to_4byte_selector("getValidators()")


@dataclass
class _Pending:
    transaction: SignedTransactionAPI
    raw: bytes
    received: float


@dataclass
class Mempool:
    """Acknowledged transactions waiting for a block, by sender and nonce."""

    by_sender: dict[bytes, dict[int, _Pending]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.by_sender.values())

    def get(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        for queue in self.by_sender.values():
            for pending in queue.values():
                if pending.transaction.hash == tx_hash:
                    return pending.transaction
        return None

    def highest_nonce(self, sender: bytes) -> int | None:
        queue = self.by_sender.get(sender)
        return max(queue) if queue else None


class YufuNode:
    """A Yufu validator node.

    Parameters
    ----------
    config
        The devnet configuration (chain id, gas limit, validators, organisations).
    data_dir
        Where the node keeps ``chain.sqlite``; created when missing.
    validator_key
        The private key this node seals blocks with; it must belong to a configured validator.
        None for a node that only reads (a follower).
    """

    def __init__(self, config: DevnetConfig, data_dir: Path, validator_key: str | None = None):
        self.config = config
        self.chain_id = config.chain.chain_id
        self.store = ChainStore(Path(data_dir) / "chain.sqlite")
        self.lock = threading.RLock()
        self.validator_key = validator_key
        self.regulator = to_canonical_address(config.regulator.address)
        # The permissioning contract is the regulator's first deployment (decision 0005).
        self.membership = contract_address(self.regulator, 0)
        self.genesis_validators = [to_canonical_address(v.address) for v in config.validators]
        if validator_key is not None:
            sealer = to_canonical_address(Account.from_key(validator_key).address)
            if sealer not in self.genesis_validators:
                raise ValueError("the validator key is not one of the configured validators")
        self.chain_class = MiningChain.configure(
            __name__="YufuChain",
            chain_id=self.chain_id,
            vm_configuration=((0, PragueVM),),
        )
        self.chain = self._open_chain()
        self.mempool = Mempool()
        self.blocks_produced = 0
        self.transactions_sealed = 0
        self.last_block_seconds = 0.0
        # Dev-only (``run --dev``): seconds added to block timestamps by ``evm_increaseTime``,
        # and the offset in force at each ``evm_snapshot`` (restored by ``evm_revert``).
        self.dev_time_offset = 0
        self.dev_snapshots: dict[int, int] = {}
        self._restore_journal()

    # ------------------------------------------------------------ opening

    def _open_chain(self) -> MiningChain:
        base_db = AtomicDB(self.store)
        try:
            chain = self.chain_class(base_db)
            chain.get_canonical_head()
            return chain
        except (CanonicalHeadNotFound, HeaderNotFound, KeyError):
            self.store.discard()
        genesis_state = {
            to_canonical_address(address): {
                "balance": GENESIS_BALANCE_WEI,
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for address in self._funded_accounts()
        }
        params = {
            "coinbase": ZERO_ADDRESS,
            "difficulty": 0,
            "gas_limit": self.config.chain.gas_limit,
            "extra_data": GENESIS_EXTRA_DATA,
            "timestamp": GENESIS_TIMESTAMP,
            "mix_hash": b"\0" * 32,
            "nonce": b"\0" * 8,
            "receipt_root": BLANK_ROOT_HASH,
            "transaction_root": BLANK_ROOT_HASH,
        }
        chain = cast(
            MiningChain,
            self.chain_class.from_genesis(base_db, cast(Any, params), cast(Any, genesis_state)),
        )
        self.store.commit()
        return chain

    def _funded_accounts(self) -> list[str]:
        accounts = [organisation.address for organisation in self.config.organisations.values()]
        accounts += [merchant.address for merchant in self.config.demo.merchants]
        accounts += [validator.address for validator in self.config.validators]
        return accounts

    def _restore_journal(self) -> None:
        restored = dropped = 0
        for entry in self.store.journaled_transactions():
            try:
                self._admit(entry.raw, journal=False)
                restored += 1
            except TransactionRejected as error:
                # Already sealed before the crash, or no longer valid: nothing to keep.
                logger.info("journal entry 0x%s dropped: %s", entry.tx_hash.hex(), error)
                self.store.drop_journaled([entry.tx_hash])
                dropped += 1
        if restored or dropped:
            logger.info("mempool journal: %d restored, %d dropped", restored, dropped)

    # ------------------------------------------------------------ heads and blocks

    def head(self) -> BlockHeaderAPI:
        """The latest committed block's header."""
        with self.lock:
            return self.chain.get_canonical_head()

    def block_by_number(self, number: int) -> BlockAPI:
        """A committed block by number."""
        with self.lock:
            try:
                return self.chain.get_canonical_block_by_number(BlockNumber(number))
            except HeaderNotFound:
                raise NotFound(f"no block {number}") from None

    def block_by_hash(self, block_hash: bytes) -> BlockAPI:
        """A committed block by hash."""
        with self.lock:
            try:
                return self.chain.get_block_by_hash(Hash32(block_hash))
            except (HeaderNotFound, KeyError):
                raise NotFound(f"no block 0x{block_hash.hex()}") from None

    def receipts(self, block: BlockAPI) -> tuple[ReceiptAPI, ...]:
        """The receipts of a committed block."""
        with self.lock:
            return tuple(block.get_receipts(self.chain.chaindb))

    def transaction_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(block number, index) of a sealed transaction, None if not sealed."""
        with self.lock:
            try:
                number, index = self.chain.chaindb.get_transaction_index(Hash32(tx_hash))
            except TransactionNotFound:
                return None
            return int(number), int(index)

    def pending_transaction(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        """An acknowledged transaction still waiting for a block."""
        with self.lock:
            return self.mempool.get(tx_hash)

    def seal(self, block_hash: bytes) -> Seal | None:
        """A committed block's seal."""
        return self.store.seal_of(block_hash)

    # ------------------------------------------------------------ state reads

    def _vm_at(self, header: BlockHeaderAPI) -> Any:
        return self.chain.get_vm(header)

    def balance(self, address: bytes, header: BlockHeaderAPI) -> int:
        with self.lock:
            return int(self._vm_at(header).state.get_balance(address))

    def nonce(self, address: bytes, header: BlockHeaderAPI) -> int:
        with self.lock:
            return int(self._vm_at(header).state.get_nonce(address))

    def pending_nonce(self, address: bytes) -> int:
        """The next nonce counting transactions waiting in the mempool."""
        with self.lock:
            highest = self.mempool.highest_nonce(address)
            state_nonce = self.nonce(address, self.head())
            return state_nonce if highest is None else max(state_nonce, highest + 1)

    def code(self, address: bytes, header: BlockHeaderAPI) -> bytes:
        with self.lock:
            return bytes(self._vm_at(header).state.get_code(address))

    def storage(self, address: bytes, slot: int, header: BlockHeaderAPI) -> int:
        with self.lock:
            return int(self._vm_at(header).state.get_storage(address, slot))

    def call(self, params: dict[str, Any], header: BlockHeaderAPI) -> bytes:
        """Run a call on top of ``header``'s state and discard it (``eth_call``)."""
        with self.lock:
            transaction = self._spoof(params, header)
            try:
                return bytes(self.chain.get_transaction_result(cast(Any, transaction), header))
            except Revert as error:
                data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
                raise ExecutionReverted("execution reverted", "0x" + data.hex()) from None
            except VMError as error:
                raise ExecutionReverted(f"execution failed: {error}") from None

    def estimate_gas(self, params: dict[str, Any], header: BlockHeaderAPI) -> int:
        """The gas a transaction needs on top of ``header``'s state."""
        with self.lock:
            transaction = self._spoof(params, header)
            try:
                return int(self.chain.estimate_gas(cast(Any, transaction), header))
            except Revert as error:
                data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
                raise ExecutionReverted("execution reverted", "0x" + data.hex()) from None
            except VMError as error:
                raise ExecutionReverted(f"execution failed: {error}") from None

    def _spoof(self, params: dict[str, Any], header: BlockHeaderAPI) -> SpoofTransaction:
        sender = params.get("from") or ZERO_ADDRESS
        vm = self._vm_at(header)
        unsigned = vm.create_unsigned_transaction(
            nonce=vm.state.get_nonce(sender),
            gas_price=0,
            gas=int(params.get("gas") or header.gas_limit),
            to=params.get("to") or CREATE_CONTRACT_ADDRESS,
            value=int(params.get("value") or 0),
            data=params.get("data") or b"",
        )
        return SpoofTransaction(unsigned, from_=sender)

    def base_fee_next(self) -> int:
        """The base fee the next block will charge."""
        with self.lock:
            return int(self.chain.header.base_fee_per_gas or 0)

    # ------------------------------------------------------------ permissioning

    def membership_deployed(self, header: BlockHeaderAPI) -> bool:
        """Whether the permissioning contract exists at ``header``."""
        return bool(self.code(self.membership, header))

    def transaction_allowed(
        self, transaction: SignedTransactionAPI, header: BlockHeaderAPI
    ) -> bool:
        """Besu's question, asked of the permissioning contract at ``header``.

        Before the contract exists (the bootstrap blocks), only the regulator may send.
        """
        if not self.membership_deployed(header):
            return transaction.sender == self.regulator
        target = transaction.to if transaction.to != CREATE_CONTRACT_ADDRESS else ZERO_ADDRESS
        payload = _TRANSACTION_ALLOWED + abi_encode(
            ["address", "address", "uint256", "uint256", "uint256", "bytes"],
            [
                transaction.sender,
                target,
                transaction.value,
                transaction.max_fee_per_gas,
                transaction.gas,
                transaction.data,
            ],
        )
        output = self.call({"to": self.membership, "data": payload}, header)
        return bool(abi_decode(["bool"], output)[0])

    def validators(self, header: BlockHeaderAPI) -> list[bytes]:
        """The validator set at ``header``: the contract's, or the configured one before it."""
        if not self.membership_deployed(header):
            return list(self.genesis_validators)
        output = self.call({"to": self.membership, "data": _GET_VALIDATORS}, header)
        return [to_canonical_address(a) for a in abi_decode(["address[]"], output)[0]]

    # ------------------------------------------------------------ transactions in

    def send_raw_transaction(self, raw: bytes) -> bytes:
        """Validate, permission-check and journal a signed transaction; returns its hash.

        The hash is returned only after the journal entry is committed to disk.
        """
        with self.lock:
            return self._admit(raw, journal=True)

    def _admit(self, raw: bytes, journal: bool) -> bytes:
        transaction = self._decode(raw)
        head = self.chain.get_canonical_head()
        sender = transaction.sender
        if transaction.chain_id != self.chain_id:
            raise TransactionRejected(
                f"chain id {transaction.chain_id} is not this chain's {self.chain_id}"
            )
        state_nonce = self.nonce(sender, head)
        if transaction.nonce < state_nonce:
            raise TransactionRejected(f"nonce too low: {transaction.nonce} < {state_nonce}")
        if transaction.gas > head.gas_limit:
            raise TransactionRejected(
                f"gas limit {transaction.gas} above block gas limit {head.gas_limit}"
            )
        if transaction.gas < transaction.intrinsic_gas:
            raise TransactionRejected(
                f"intrinsic gas too low: {transaction.gas} < {transaction.intrinsic_gas}"
            )
        if transaction.max_fee_per_gas < self.base_fee_next():
            raise TransactionRejected(
                f"max fee per gas {transaction.max_fee_per_gas} "
                f"below base fee {self.base_fee_next()}"
            )
        if not self.transaction_allowed(transaction, head):
            raise PermissionDenied(
                f"account 0x{sender.hex()} is not permitted to send this transaction "
                f"(permissioning contract 0x{self.membership.hex()})"
            )
        cost = transaction.gas * transaction.max_fee_per_gas + transaction.value
        if self.balance(sender, head) < cost:
            raise TransactionRejected(f"insufficient funds for gas * price + value: {cost}")
        queue = self.mempool.by_sender.setdefault(sender, {})
        replaced = queue.get(transaction.nonce)
        if replaced is not None:
            if replaced.transaction.hash == transaction.hash:
                return bytes(transaction.hash)
            old = replaced.transaction
            bump = 100 + REPLACEMENT_BUMP_PERCENT
            if (
                transaction.max_fee_per_gas * 100 < old.max_fee_per_gas * bump
                or transaction.max_priority_fee_per_gas * 100 < old.max_priority_fee_per_gas * bump
            ):
                raise TransactionRejected("replacement transaction underpriced")
        elif len(queue) >= MAX_PENDING_PER_SENDER:
            raise TransactionRejected(
                f"sender has {len(queue)} pending transactions, the most allowed"
            )
        elif len(self.mempool) >= MAX_PENDING_TOTAL:
            raise TransactionRejected("mempool full")
        if journal:
            self.store.journal_transaction(
                JournalEntry(bytes(transaction.hash), sender, transaction.nonce, raw)
            )
            if replaced is not None:
                self.store.drop_journaled([bytes(replaced.transaction.hash)])
        queue[transaction.nonce] = _Pending(transaction, raw, time.monotonic())
        return bytes(transaction.hash)

    def _decode(self, raw: bytes) -> SignedTransactionAPI:
        builder = self.chain.get_vm().get_transaction_builder()
        try:
            transaction = builder.decode(raw)
            transaction.validate()
            transaction.sender  # noqa: B018 - recovers the signer, refusing bad signatures
        except (ValidationError, rlp.DecodingError, ValueError, TypeError, IndexError) as error:
            raise InvalidParams(f"invalid raw transaction: {error}") from None
        return transaction

    # ------------------------------------------------------------ block production

    def has_pending(self) -> bool:
        with self.lock:
            return len(self.mempool) > 0

    def _select(self, head: BlockHeaderAPI) -> list[SignedTransactionAPI]:
        """Executable transactions in nonce order per sender, oldest sender first."""
        chosen: list[SignedTransactionAPI] = []
        gas_left = head.gas_limit
        base_fee = self.base_fee_next()
        senders = sorted(
            self.mempool.by_sender.items(),
            key=lambda item: min(p.received for p in item[1].values()) if item[1] else 0.0,
        )
        for sender, queue in senders:
            nonce = self.nonce(sender, head)
            balance = self.balance(sender, head)
            while nonce in queue and len(chosen) < MAX_TRANSACTIONS_PER_BLOCK:
                transaction = queue[nonce].transaction
                cost = transaction.gas * transaction.max_fee_per_gas + transaction.value
                if (
                    transaction.gas > gas_left
                    or transaction.max_fee_per_gas < base_fee
                    or cost > balance
                ):
                    break
                chosen.append(transaction)
                gas_left -= transaction.gas
                balance -= cost
                nonce += 1
        return chosen

    def produce_block(
        self, timestamp: int | None = None, allow_empty: bool = False
    ) -> BlockAPI | None:
        """Seal one block of waiting transactions; None when nothing was executable.

        The block, its seal, its log index and the journal's clean-up commit together.
        """
        if self.validator_key is None:
            raise RuntimeError("this node has no validator key and cannot seal blocks")
        with self.lock:
            started = time.monotonic()
            head = self.chain.get_canonical_head()
            transactions = self._select(head)
            # allow_empty: the producer's trailing block, and dev-only ``evm_mine``.
            if not transactions and not self.config.chain.empty_blocks and not allow_empty:
                self._forget_stale(head)
                return None
            now = int(time.time()) + self.dev_time_offset  # the offset is 0 unless --dev
            stamp = max(head.timestamp + 1, now if timestamp is None else timestamp)
            # Execute in the header that gets sealed: contracts must see the header's timestamp
            # (else a replay computes another state root), and the gas limit stays at the
            # configured one (py-evm's default lets it decay 1/1024 a block towards 5,000).
            self.chain.header = self.chain.create_header_from_parent(
                head, timestamp=stamp, gas_limit=self._next_gas_limit(head)
            )
            try:
                result, receipts, _ = self.chain.mine_all(transactions)
            except Exception:
                self.store.discard()
                self.chain = self._reopen()
                raise
            block = result.imported_block
            self._stage_records(block, receipts)
            self.store.commit()
            self._forget_sealed(transactions)
            self.blocks_produced += 1
            self.transactions_sealed += len(transactions)
            self.last_block_seconds = time.monotonic() - started
            return block

    def _next_gas_limit(self, parent: BlockHeaderAPI) -> int:
        """The configured gas limit, moved towards within the 1/1024 step a block allows."""
        lowest, highest = compute_gas_limit_bounds(parent.gas_limit)
        return min(max(self.config.chain.gas_limit, lowest), highest)

    def _reopen(self) -> MiningChain:
        return self.chain_class(AtomicDB(self.store))

    def _stage_records(self, block: BlockAPI, receipts: Iterable[ReceiptAPI]) -> None:
        assert self.validator_key is not None
        block_hash = bytes(block.hash)
        signature = Account.unsafe_sign_hash(block_hash, self.validator_key).signature
        sealer = to_canonical_address(Account.from_key(self.validator_key).address)
        logs: list[LogRecord] = []
        log_index = 0
        for tx_index, (transaction, receipt) in enumerate(
            zip(block.transactions, receipts, strict=True)
        ):
            for log in receipt.logs:
                logs.append(
                    LogRecord(
                        block_number=block.number,
                        log_index=log_index,
                        tx_index=tx_index,
                        tx_hash=bytes(transaction.hash),
                        block_hash=block_hash,
                        address=bytes(log.address),
                        topics=tuple(t.to_bytes(32, "big") for t in log.topics),
                        data=bytes(log.data),
                    )
                )
                log_index += 1
        self.store.stage_block_records(
            Seal(block_hash, block.number, sealer, bytes(signature)),
            logs,
            [bytes(t.hash) for t in block.transactions],
        )

    def _forget_sealed(self, transactions: Iterable[SignedTransactionAPI]) -> None:
        for transaction in transactions:
            queue = self.mempool.by_sender.get(transaction.sender, {})
            queue.pop(transaction.nonce, None)
        self._forget_stale(self.chain.get_canonical_head())

    def _forget_stale(self, head: BlockHeaderAPI) -> None:
        """Drop waiting transactions whose nonce the chain has passed."""
        stale: list[bytes] = []
        for sender, queue in list(self.mempool.by_sender.items()):
            nonce = self.nonce(sender, head)
            for pending_nonce in [n for n in queue if n < nonce]:
                stale.append(bytes(queue.pop(pending_nonce).transaction.hash))
            if not queue:
                del self.mempool.by_sender[sender]
        if stale:
            self.store.drop_journaled(stale)

    # ------------------------------------------------------------ logs and seals

    def logs(
        self,
        from_block: int,
        to_block: int,
        addresses: list[bytes],
        topics: list[list[bytes] | None],
    ) -> list[LogRecord]:
        """Logs from the index; refuses queries with more than ``MAX_LOGS_PER_QUERY`` results."""
        found = self.store.query_logs(from_block, to_block, addresses, topics, MAX_LOGS_PER_QUERY)
        if len(found) > MAX_LOGS_PER_QUERY:
            raise LimitExceeded(
                f"query returns more than {MAX_LOGS_PER_QUERY} logs; narrow the range"
            )
        return found

    def verify_seal(self, block: BlockAPI) -> bytes:
        """The sealer of a committed block, checked against the validators at its parent."""
        seal = self.seal(bytes(block.hash))
        if seal is None:
            raise NotFound(f"block {block.number} has no seal")
        signer = to_canonical_address(recover_signer(bytes(block.hash), seal.signature))
        parent = self.block_by_hash(bytes(block.header.parent_hash)).header
        if signer not in self.validators(parent):
            raise NotFound(f"block {block.number} sealed by 0x{signer.hex()}, not a validator")
        return signer

    # ------------------------------------------------------------ dev-only (run --dev)
    # Test controls for running the contract suite over HTTP (``evm_snapshot``, ``evm_revert``,
    # ``evm_increaseTime``, ``evm_mine``). Served only by a node started with ``--dev``.

    def dev_snapshot(self) -> int:
        """Dev-only: remember the time offset at the head; the head's number is the id."""
        with self.lock:
            number = int(self.chain.get_canonical_head().block_number)
            self.dev_snapshots[number] = self.dev_time_offset
            return number

    def dev_revert(self, block_number: int) -> None:
        """Dev-only: rewind the canonical chain to ``block_number``.

        The blocks above it leave the canonical chain (number lookups, transaction lookups),
        their seals and log index rows are deleted, the mempool and its journal are emptied,
        all in one commit; the time offset returns to what it was at the snapshot.
        """
        with self.lock:
            head = self.chain.get_canonical_head()
            if not 0 <= block_number <= head.block_number:
                raise NotFound(f"no block {block_number} to revert to (head {head.block_number})")
            chaindb = self.chain.chaindb
            db = chaindb.db
            try:
                target = chaindb.get_canonical_block_header_by_number(BlockNumber(block_number))
                for number in range(block_number + 1, head.block_number + 1):
                    header = chaindb.get_canonical_block_header_by_number(BlockNumber(number))
                    for tx_hash in chaindb.get_block_transaction_hashes(header):
                        db.delete(SchemaV1.make_transaction_hash_to_block_lookup_key(tx_hash))
                    db.delete(SchemaV1.make_block_number_to_hash_lookup_key(BlockNumber(number)))
                db[SchemaV1.make_canonical_head_hash_lookup_key()] = target.hash
                # py-evm tracks the tip of the (gap-free) header and block chains; move it back,
                # else the next block at a dropped number is checked against the dropped one.
                tip = rlp.encode(((), block_number + 1), sedes=chain_gaps)
                db[SchemaV1.make_header_chain_gaps_lookup_key()] = tip
                db[SchemaV1.make_chain_gaps_lookup_key()] = tip
                self.store.stage_rewind(block_number)
                self.store.commit()
            except Exception:
                self.store.discard()
                raise
            finally:
                self.mempool = Mempool()
                self.chain = self._reopen()
            self.dev_time_offset = self.dev_snapshots.get(block_number, 0)
            for number in [n for n in self.dev_snapshots if n > block_number]:
                del self.dev_snapshots[number]

    def dev_increase_time(self, seconds: int) -> int:
        """Dev-only: move the producer's clock forward; returns the total offset.

        The next block is stamped at least ``seconds`` after the head, even when the head is
        already ahead of the wall clock (blocks are at least a second apart).
        """
        with self.lock:
            head = self.chain.get_canonical_head()
            behind = int(head.timestamp) - int(time.time())
            self.dev_time_offset = max(self.dev_time_offset, behind) + seconds
            return self.dev_time_offset

    def close(self) -> None:
        """Close the store."""
        with self.lock:
            self.store.close()
