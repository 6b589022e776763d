"""The node as a process: it stops cleanly, restarts where it was, and loses nothing to kill -9.

"Nothing acknowledged is ever lost": a transaction whose hash the node returned is in a
committed block after any crash, because the mempool journal is committed before the hash is
returned and every block commits atomically with the journal's clean-up.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from eth_account import Account
from eth_utils import to_canonical_address
from trie import HexaryTrie
from trie.iter import NodeIterator

from chain.config import DevnetConfig
from chain.node import service
from chain.node.node import YufuNode
from chain.node.service import BlockProducer

if TYPE_CHECKING:
    from conftest import NodeProcess  # tests/node/conftest.py, which pytest loads itself

StartNode = Callable[..., "NodeProcess"]
DEAD = "0x000000000000000000000000000000000000dEaD"
MAX_FEE_PER_GAS = 50 * 10**9
PRIORITY_FEE = 10**9
# Senders of the load: members after bootstrap, one thread each.
LOAD_SENDERS = ("bank", "insurer", "operator", "bank_feed", "licence_feed", "risk_feed")
TRANSACTIONS_PER_SENDER = 80
# The node is killed once this many transactions were acknowledged: mid-way through the load.
KILL_AFTER_ACKNOWLEDGED = 200
SEAL_TIMEOUT_SECONDS = 60.0


def _transfer(config: DevnetConfig, key: str, nonce: int, value: int = 1) -> bytes:
    signed = Account.sign_transaction(
        {
            "to": DEAD,
            "value": value,
            "gas": 21_000,
            "maxFeePerGas": MAX_FEE_PER_GAS,
            "maxPriorityFeePerGas": PRIORITY_FEE,
            "nonce": nonce,
            "chainId": config.chain.chain_id,
        },
        key,
    )
    return bytes(signed.raw_transaction)


def _send(node: NodeProcess, raw: bytes) -> str:
    return str(node.rpc("eth_sendRawTransaction", "0x" + raw.hex()))


def _head(node: NodeProcess) -> dict[str, Any]:
    return dict(node.rpc("eth_getBlockByNumber", "latest", False))


def _balance(node: NodeProcess, address: str) -> int:
    return int(node.rpc("eth_getBalance", address, "latest"), 16)


def _wait_until_sealed(node: NodeProcess, hashes: list[str]) -> dict[str, dict[str, Any]]:
    """Receipts of every hash; fails after ``SEAL_TIMEOUT_SECONDS``."""
    receipts: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + SEAL_TIMEOUT_SECONDS
    while len(receipts) < len(hashes):
        for tx_hash in hashes:
            if tx_hash not in receipts:
                receipt = node.rpc("eth_getTransactionReceipt", tx_hash)
                if receipt is not None:
                    receipts[tx_hash] = receipt
        if len(receipts) < len(hashes):
            missing = [h for h in hashes if h not in receipts]
            assert time.monotonic() < deadline, f"{len(missing)} never sealed, e.g. {missing[:3]}"
            time.sleep(0.1)
    return receipts


def _assert_state_opens_at_head(config: DevnetConfig, data_dir: Path) -> None:
    """Open the data directory in process: every state trie node under the head's root exists,
    and the head's seal is a validator's."""
    node = YufuNode(config, data_dir)
    try:
        head = node.head()
        state = HexaryTrie(node.store, head.state_root)
        accounts = sum(1 for _ in NodeIterator(state).keys())
        assert accounts >= len(config.organisations) + 8  # members and the system contracts
        # Checks the signature against the validator set at the parent; raises if it fails.
        sealer = node.verify_seal(node.block_by_hash(bytes(head.hash)))
        assert sealer in node.genesis_validators
    finally:
        node.close()


def _wait_for_height(node: NodeProcess, height: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while int(node.rpc("eth_blockNumber"), 16) < height:
        assert time.monotonic() < deadline, f"height {height} not reached in {timeout} s"
        time.sleep(0.02)


def test_a_stopped_node_restarts_at_the_same_head_with_the_same_state(
    start_node: StartNode, config: DevnetConfig
) -> None:
    node = start_node()
    bank = config.organisations["bank"]
    auditor = config.organisations["auditor"]
    sealed = _send(node, _transfer(config, bank.key.private_key, 0, value=12_345))
    receipt = node.wait_for_receipt(sealed)
    assert receipt["status"] == "0x1"
    # The producer seals one trailing block after a busy one; let it, so the head stays put.
    _wait_for_height(node, int(receipt["blockNumber"], 16) + 1)
    # Acknowledged but not executable (nonce 1 waits for nonce 0): it lives in the journal.
    waiting = _send(node, _transfer(config, auditor.key.private_key, 1))

    head = _head(node)
    balances = {a: _balance(node, a) for a in (DEAD, bank.address, config.regulator.address)}
    assert balances[DEAD] == 12_345
    assert node.stop() == 0
    assert f"Yufu node stopped at block {int(head['number'], 16)}" in node.log()

    again = start_node(node.data_dir)
    restarted = _head(again)
    assert restarted["number"] == head["number"]
    assert restarted["hash"] == head["hash"]
    assert restarted["stateRoot"] == head["stateRoot"]
    assert {a: _balance(again, a) for a in balances} == balances
    assert again.rpc("yufu_getSeal", head["hash"])["signature"] == head["yufuSeal"]
    pending = again.rpc("eth_getTransactionByHash", waiting)
    assert pending is not None and pending["blockNumber"] is None

    # The chain goes on from there: the gap is filled and both are sealed.
    first = _send(again, _transfer(config, auditor.key.private_key, 0))
    assert again.wait_for_receipt(first)["status"] == "0x1"
    assert again.wait_for_receipt(waiting)["status"] == "0x1"
    assert int(_head(again)["number"], 16) > int(head["number"], 16)

    again.process.send_signal(signal.SIGINT)  # type: ignore[union-attr]
    assert again.process.wait(timeout=30) == 0  # type: ignore[union-attr]
    _assert_state_opens_at_head(config, again.data_dir)


def test_kill_9_under_load_loses_no_acknowledged_transaction(
    start_node: StartNode, config: DevnetConfig
) -> None:
    node = start_node()
    url = node.url
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(handle: str) -> None:
        key = config.organisations[handle].key.private_key
        session = requests.Session()
        for nonce in range(TRANSACTIONS_PER_SENDER):
            if stop.is_set():
                return
            body = {
                "jsonrpc": "2.0",
                "id": nonce,
                "method": "eth_sendRawTransaction",
                "params": ["0x" + _transfer(config, key, nonce).hex()],
            }
            try:
                answer = session.post(url, json=body, timeout=30).json()
            except (requests.RequestException, ValueError):
                return  # the node is gone; what it did not answer was never acknowledged
            assert "result" in answer, answer
            with lock:
                acknowledged.append(answer["result"])

    threads = [threading.Thread(target=load, args=(handle,)) for handle in LOAD_SENDERS]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + SEAL_TIMEOUT_SECONDS
    try:
        while len(acknowledged) < KILL_AFTER_ACKNOWLEDGED and any(t.is_alive() for t in threads):
            assert time.monotonic() < deadline, "the load did not get going"
            time.sleep(0.005)
        node.kill()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    with lock:
        promised = list(acknowledged)
    assert KILL_AFTER_ACKNOWLEDGED <= len(promised) < len(LOAD_SENDERS) * TRANSACTIONS_PER_SENDER

    again = start_node(node.data_dir)
    receipts = _wait_until_sealed(again, promised)
    assert all(receipt["status"] == "0x1" for receipt in receipts.values())
    # Each sender's transactions were sent in nonce order, so its sealed nonce covers them.
    for handle in LOAD_SENDERS:
        address = config.organisations[handle].address
        sent = sum(
            1
            for receipt in receipts.values()
            if to_canonical_address(receipt["from"]) == to_canonical_address(address)
        )
        assert int(again.rpc("eth_getTransactionCount", address, "latest"), 16) >= sent
    head = _head(again)
    assert _balance(again, DEAD) >= len(promised)
    assert again.rpc("yufu_getSeal", head["hash"]) is not None
    assert again.stop() == 0
    _assert_state_opens_at_head(config, again.data_dir)


# ---------------------------------------------------------------- the block producer


def _wait_for_head(node: YufuNode, number: int) -> None:
    deadline = time.monotonic() + SEAL_TIMEOUT_SECONDS
    while node.head().block_number < number:
        assert time.monotonic() < deadline, f"block {number} was never sealed"
        time.sleep(0.01)


def test_producer_seals_waiting_transactions_each_period_and_stops_cleanly(
    tmp_path: Path, config: DevnetConfig
) -> None:
    node = YufuNode(config, tmp_path, config.validators[0].key.private_key)
    producer = BlockProducer(node, period=0.05)
    producer.start()
    try:
        assert producer.is_running()
        node.send_raw_transaction(_transfer(config, config.regulator.key.private_key, 0))
        _wait_for_head(node, 1)
        assert len(node.block_by_number(1).transactions) == 1
        assert not node.has_pending()
    finally:
        producer.stop()
        node.close()
    assert not producer.is_running()


def test_producer_seals_at_once_when_a_full_block_waits(
    tmp_path: Path, config: DevnetConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_TRANSACTIONS_PER_BLOCK", 3)
    node = YufuNode(config, tmp_path, config.validators[0].key.private_key)
    # A period far longer than the test: only a full mempool can wake the producer.
    producer = BlockProducer(node, period=3_600)
    producer.start()
    try:
        for nonce in range(3):
            node.send_raw_transaction(_transfer(config, config.regulator.key.private_key, nonce))
            producer.notify_transaction()
        _wait_for_head(node, 1)
        assert len(node.block_by_number(1).transactions) == 3
    finally:
        producer.stop()
        node.close()


def test_one_trailing_block_follows_a_busy_one_then_the_chain_rests(
    start_node: StartNode, config: DevnetConfig
) -> None:
    node = start_node()
    bank = config.organisations["bank"]
    receipt = node.wait_for_receipt(_send(node, _transfer(config, bank.key.private_key, 0)))
    busy = int(receipt["blockNumber"], 16)
    _wait_for_height(node, busy + 1)
    trailing = node.rpc("eth_getBlockByNumber", hex(busy + 1), False)
    assert trailing["transactions"] == []
    time.sleep(0.5)  # ten block periods of the test node
    assert int(node.rpc("eth_blockNumber"), 16) == busy + 1
