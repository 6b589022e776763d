"""Fixtures for the auditor's tests: a real node process with a history worth auditing.

The node process helpers (``NodeProcess``, ``run_bootstrap``) are the node tests' own, loaded
from ``tests/node/conftest.py`` by path (a conftest cannot be imported by name from another
folder). Once per session a node is bootstrapped, a merchant onboarded and four plans played —
one consumed (single records and a batch) with a payout, one cancelled in cooling-off with the
refund paid, one with bonus credit terminated early, one only signed — and the node is stopped
cleanly. Every test that needs the history starts a node on its own copy of that data
directory, so tampering in one test never shows in another.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import rlp
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.vm.forks import PragueVM
from eth_account import Account
from eth_utils import keccak, to_canonical_address

from chain import messages as m
from chain.config import DevnetConfig
from chain.node.service import deployed_system
from chain.node.store import ChainStore
from chain.scenario import PlanDesk

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NODE_CONFTEST = PROJECT_ROOT / "tests" / "node" / "conftest.py"
DEAD = "0x000000000000000000000000000000000000dEaD"
# Not a validator, not a member: it signs the forged seal.
OUTSIDER_KEY = "0x" + keccak(text="yufu-test/outsider-sealer").hex()


def _load_node_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_yufu_node_process_helpers", NODE_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_node_helpers = _load_node_fixtures()
NodeProcess: Any = _node_helpers.NodeProcess
RpcError: Any = _node_helpers.RpcError
run_bootstrap: Callable[[str], str] = _node_helpers.run_bootstrap


@dataclass(frozen=True)
class History:
    """A stopped node's data directory and what happened on its chain."""

    data_dir: Path
    head: int
    transactions: int
    agreements: dict[str, bytes]
    # Blocks holding one transaction each, by what the transaction did.
    blocks: dict[str, int]


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory, config: DevnetConfig) -> History:
    root = tmp_path_factory.mktemp("audit-history")
    node = NodeProcess(root / "data", root / "node.log")
    try:
        node.start()
        run_bootstrap(node.url)
        system = deployed_system(node.web3(), config)
        desk = PlanDesk(system, config)
        demo = config.demo.merchants[0]
        merchant_key = demo.key.private_key
        consumers = [consumer.key.private_key for consumer in config.demo.consumers]
        desk.onboard(merchant_key, demo.uscc, demo.name, demo.industry)
        template = system.template_ids[("training", demo.industry)]
        agreements: dict[str, bytes] = {}
        blocks: dict[str, int] = {}

        # Consumed: one record, then a batch of two; the bank pays the merchant's upfront share.
        signed = desk.sign_agreement(
            merchant_key, consumers[0], template, units=10, unit_price=10_000
        )
        consumed, opened = desk.open(signed)
        blocks["opened"] = opened.block_number
        funded = desk.fund(consumed, signed.terms.total_paid)
        blocks["funded"] = funded.block_number
        record = desk.consume(desk.sign_record(consumed, 1, merchant_key, consumers[0], units=2))
        blocks["consumed"] = record.block_number
        desk.consume_batch(
            [
                desk.sign_record(consumed, sequence, merchant_key, consumers[0])
                for sequence in (2, 3)
            ]
        )
        upfront = system.client.get_ledger(consumed).upfront
        desk.confirm_payout(consumed, m.Payee.MERCHANT, upfront)
        agreements["consumed"] = consumed

        # Cooled off: the upfront share was still held, the whole payment is paid back.
        signed = desk.sign_agreement(
            merchant_key, consumers[1], template, units=5, unit_price=10_000
        )
        cooled, _ = desk.open(signed)
        desk.fund(cooled, signed.terms.total_paid)
        desk.cool_off(cooled, consumers[1])
        refunded = system.client.get_ledger(cooled).refunded
        desk.confirm_payout(cooled, m.Payee.CONSUMER, refunded)
        agreements["cooled_off"] = cooled

        # Terminated early with bonus credit, after some consumption.
        signed = desk.sign_agreement(
            merchant_key, consumers[2], template, units=10, unit_price=1_000, bonus=1_000
        )
        terminated, _ = desk.open(signed)
        desk.fund(terminated, signed.terms.total_paid)
        desk.consume(desk.sign_record(terminated, 1, merchant_key, consumers[2], units=3))
        desk.terminate(terminated, consumers[2])
        agreements["terminated"] = terminated

        # Only signed: never funded.
        signed = desk.sign_agreement(merchant_key, consumers[0], template, units=2, unit_price=500)
        agreements["signed"], last = desk.open(signed)

        # The producer seals one empty trailing block after the last busy one; wait for it,
        # so the head read here is the head the stopped node keeps.
        deadline = time.monotonic() + 30
        while int(node.rpc("eth_blockNumber"), 16) <= last.block_number:
            assert time.monotonic() < deadline, "no trailing block after the history"
            time.sleep(0.02)
        head = int(node.rpc("eth_blockNumber"), 16)
        transactions = sum(
            len(node.rpc("eth_getBlockByNumber", hex(number), False)["transactions"])
            for number in range(1, head + 1)
        )
        for name, number in blocks.items():
            block = node.rpc("eth_getBlockByNumber", hex(number), False)
            assert len(block["transactions"]) == 1, f"the {name} block holds one transaction"
        assert node.stop() == 0
    finally:
        node.kill()
    return History(root / "data", head, transactions, agreements, blocks)


@pytest.fixture
def copy_history(history: History, tmp_path: Path) -> Callable[[], Path]:
    """Fresh copies of the history's data directory."""
    copies = 0

    def copy() -> Path:
        nonlocal copies
        copies += 1
        target = tmp_path / f"node-data-{copies}"
        shutil.copytree(history.data_dir, target)
        return target

    return copy


@pytest.fixture(scope="session")
def new_node_process() -> Callable[[Path, Path], Any]:
    """``NodeProcess(data_dir, log_path)``, not started, for fixtures wider than one test."""
    return lambda data_dir, log_path: NodeProcess(data_dir, log_path)


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[[Path], Any]]:
    """Start node processes on given data directories; all are killed after the test."""
    started: list[Any] = []

    def start(data_dir: Path) -> Any:
        node = NodeProcess(data_dir, tmp_path / f"node-{len(started)}.log")
        started.append(node)
        return node.start()

    yield start
    for node in started:
        node.kill()


# ---------------------------------------------------------------- tampering with stored data


def _open(data_dir: Path) -> tuple[ChainStore, ChainDB]:
    store = ChainStore(data_dir / "chain.sqlite")
    return store, ChainDB(AtomicDB(store))


def _key_of(config: DevnetConfig, address: bytes) -> str:
    keys = [organisation.key.private_key for organisation in config.organisations.values()]
    keys += [merchant.key.private_key for merchant in config.demo.merchants]
    for key in keys:
        if to_canonical_address(Account.from_key(key).address) == address:
            return key
    raise LookupError(f"no configured key for 0x{address.hex()}")


def _replace_transaction(
    data_dir: Path, number: int, config: DevnetConfig, key: str | None = None
) -> bytes:
    """Swap the only transaction of block ``number`` for another one its sender (or ``key``)
    signed.

    The block's transaction trie is a single leaf stored under the header's transactions
    root; its value is rewritten in place, so the header still names the old root while the
    node now serves another transaction. Returns the forged transaction's hash.
    """
    store, chaindb = _open(data_dir)
    try:
        header = chaindb.get_canonical_block_header_by_number(number)  # type: ignore[arg-type]
        (original,) = chaindb.get_block_transactions(header, PragueVM.get_transaction_builder())
        forged = Account.sign_transaction(
            {
                "to": DEAD,
                "value": 1,
                "gas": 21_000,
                "maxFeePerGas": original.max_fee_per_gas,
                "maxPriorityFeePerGas": original.max_priority_fee_per_gas,
                "nonce": original.nonce if key is None else 0,
                "chainId": config.chain.chain_id,
            },
            _key_of(config, original.sender) if key is None else key,
        )
        path, value = rlp.decode(store[header.transaction_root])
        assert value == original.encode(), "a one-transaction trie is a single leaf"
        store[header.transaction_root] = rlp.encode([path, bytes(forged.raw_transaction)])
        store.commit()
        return bytes(forged.hash)
    finally:
        store.close()


def _rewrite_header(data_dir: Path, number: int, **changes: Any) -> None:
    """Overwrite the stored header of block ``number`` (under its old hash) with ``changes``."""
    store, chaindb = _open(data_dir)
    try:
        block_hash = chaindb.get_canonical_block_hash(number)  # type: ignore[arg-type]
        header = chaindb.get_block_header_by_hash(block_hash)
        store[block_hash] = rlp.encode(header.copy(**changes))
        store.commit()
    finally:
        store.close()


def _reseal(data_dir: Path, number: int, key: str) -> str:
    """Replace block ``number``'s seal by ``key``'s signature over its hash; returns the signer."""
    signer = Account.from_key(key)
    connection = sqlite3.connect(data_dir / "chain.sqlite")
    try:
        (block_hash,) = connection.execute(
            "SELECT block_hash FROM seals WHERE block_number = ?", (number,)
        ).fetchone()
        signature = Account.unsafe_sign_hash(bytes(block_hash), key).signature
        with connection:
            connection.execute(
                "UPDATE seals SET sealer = ?, signature = ? WHERE block_number = ?",
                (to_canonical_address(signer.address), bytes(signature), number),
            )
    finally:
        connection.close()
    return str(signer.address)


@dataclass(frozen=True)
class Tampered:
    """What was altered: the block, the field a verifier must name, and who is to blame."""

    block_number: int
    field: str
    culprit: str | None = None


TAMPERINGS: tuple[str, ...] = (
    "transaction",
    "outsider's transaction",
    "state root",
    "gas used",
    "seal",
)


@pytest.fixture
def tamper(history: History, config: DevnetConfig) -> Callable[[str, Path], Tampered]:
    """Alter a stopped node's data directory in one of the ``TAMPERINGS`` ways.

    - ``transaction``: the consumption block's transaction is swapped for another one its
      sender signed (the header keeps the old transactions root);
    - ``outsider's transaction``: the same, for a transaction by an account that is not a
      member, which the permissioning contract refuses;
    - ``state root`` / ``gas used``: a stored header is rewritten under its old hash;
    - ``seal``: a block's seal is replaced by a non-validator's signature over its hash.
    """

    def alter(kind: str, data_dir: Path) -> Tampered:
        if kind == "transaction":
            number = history.blocks["consumed"]
            _replace_transaction(data_dir, number, config)
            return Tampered(number, "transactionsRoot")
        if kind == "outsider's transaction":
            number = history.blocks["consumed"]
            _replace_transaction(data_dir, number, config, OUTSIDER_KEY)
            outsider = Account.from_key(OUTSIDER_KEY).address
            return Tampered(number, "transactions[0]", outsider)
        if kind == "state root":
            number = history.blocks["funded"]
            _rewrite_header(data_dir, number, state_root=b"\x11" * 32)
            return Tampered(number, "stateRoot")
        if kind == "gas used":
            number = history.blocks["opened"]
            _rewrite_header(data_dir, number, gas_used=21_000)
            return Tampered(number, "gasUsed")
        if kind == "seal":
            number = history.blocks["funded"]
            return Tampered(number, "sealer", _reseal(data_dir, number, OUTSIDER_KEY))
        raise ValueError(f"unknown tampering {kind!r}")

    return alter
