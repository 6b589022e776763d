"""The follower against a real node: it agrees with an honest one and stops at a tampered block.

Tampering is done the way an insider with disk access would: stop the node, alter its SQLite
file, start it again, so the node itself serves the altered block as if nothing happened.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account

from chain.audit.follower import AuditFailure, Follower, RpcSource, StoreSource
from chain.config import DevnetConfig
from chain.node.service import system_addresses

StartNode = Callable[[Path], Any]
Tamper = Callable[[str, Path], Any]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEAD = "0x000000000000000000000000000000000000dEaD"
FOLLOW_TIMEOUT_SECONDS = 60.0
_URL_LINE = re.compile(r"Yufu follower serving JSON-RPC on (http://\S+)")


def _transfer(node: Any, config: DevnetConfig) -> str:
    bank = config.organisations["bank"]
    signed = Account.sign_transaction(
        {
            "to": DEAD,
            "value": 7,
            "gas": 21_000,
            "maxFeePerGas": 50 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "nonce": int(node.rpc("eth_getTransactionCount", bank.address, "pending"), 16),
            "chainId": config.chain.chain_id,
        },
        bank.key.private_key,
    )
    tx_hash = str(node.rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex()))
    node.wait_for_receipt(tx_hash)
    return tx_hash


def _rpc(url: str, method: str, *params: Any) -> dict[str, Any]:
    answer = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=30
    )
    answer.raise_for_status()
    return dict(answer.json())


def test_the_follower_replays_an_honest_node_and_keeps_following(
    history: Any,
    copy_history: Callable[[], Path],
    start_node: StartNode,
    config: DevnetConfig,
    tmp_path: Path,
) -> None:
    node = start_node(copy_history())
    source = RpcSource(node.url)
    follower = Follower(config, tmp_path / "follower", upstream=node.url)
    try:
        follower.check_source(source)
        assert follower.sync(source) == history.head
        assert follower.stats.blocks == history.head
        assert follower.stats.transactions == history.transactions
        validator = config.validators[0].address
        assert follower.stats.seals_by_sealer == {validator: history.head}

        served = node.rpc("eth_getBlockByNumber", "latest", False)
        own = follower.node.head()
        assert served["hash"] == "0x" + bytes(own.hash).hex()
        assert served["stateRoot"] == "0x" + bytes(own.state_root).hex()

        # New blocks are verified as they come.
        tx_hash = _transfer(node, config)
        # Its block, then the producer's empty trailing block.
        _wait_until(lambda: int(node.rpc("eth_blockNumber"), 16) >= history.head + 2)
        assert follower.sync(source) == history.head + 2
        receipt = node.rpc("eth_getTransactionReceipt", tx_hash)
        assert follower.node.transaction_location(bytes.fromhex(tx_hash[2:])) == (
            int(receipt["blockNumber"], 16),
            0,
        )
        assert follower.node.balance(bytes.fromhex(DEAD[2:]), follower.node.head()) == 7
    finally:
        follower.close()
        source.close()


def test_the_follower_process_serves_the_verified_chain_and_refuses_transactions(
    history: Any,
    copy_history: Callable[[], Path],
    start_node: StartNode,
    config: DevnetConfig,
    tmp_path: Path,
) -> None:
    node = start_node(copy_history())
    log_path = tmp_path / "follower.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chain.cli",
                "audit",
                "follow",
                "--rpc",
                node.url,
                "--data-dir",
                str(tmp_path / "follower"),
                "--poll",
                "0.1",
            ],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_for_url(process, log_path)
        _wait_until(lambda: _audit_status(url)["verifiedHead"] >= history.head)

        for method, params in (
            ("eth_getBlockByNumber", ["latest", True]),
            ("eth_getBalance", [config.regulator.address, "latest"]),
            ("eth_getCode", [system_addresses(config).book, "latest"]),
            ("eth_getLogs", [{"fromBlock": "0x0", "address": system_addresses(config).book}]),
            ("yufu_validators", ["latest"]),
        ):
            assert _rpc(url, method, *params)["result"] == node.rpc(method, *params), method

        refused = _rpc(url, "eth_sendRawTransaction", "0x02f0")["error"]
        assert refused["code"] == -32003
        assert "read-only" in refused["message"] and node.url in refused["message"]

        # A block sealed after the follower caught up is verified and served too.
        tx_hash = _transfer(node, config)
        _wait_until(lambda: _rpc(url, "eth_getTransactionReceipt", tx_hash)["result"] is not None)
        assert _rpc(url, "eth_getTransactionReceipt", tx_hash)["result"] == node.rpc(
            "eth_getTransactionReceipt", tx_hash
        )
        # The transfer's block and the producer's empty trailing block after it.
        _wait_until(lambda: _audit_status(url)["verifiedHead"] >= history.head + 2)
        status = _audit_status(url)
        assert status["failure"] is None
        assert status["blocksVerified"] == history.head + 2

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert f"Yufu follower stopped at block {history.head + 2}" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _wait_for_url(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + FOLLOW_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = _URL_LINE.search(log_path.read_text(errors="replace"))
        if found is not None:
            return found.group(1)
        assert process.poll() is None, f"the follower exited:\n{log_path.read_text()}"
        time.sleep(0.1)
    raise TimeoutError(f"the follower never served:\n{log_path.read_text()}")


def _audit_status(url: str) -> dict[str, Any]:
    answer = requests.get(url + "/audit", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + FOLLOW_TIMEOUT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ---------------------------------------------------------------- tampered chains


def _check_failure(failure: AuditFailure, tampered: Any, validator: str) -> None:
    assert failure.block_number == tampered.block_number
    fields = {d.field: d for d in failure.discrepancies}
    assert tampered.field in fields, failure.describe()
    named = fields[tampered.field]
    assert named.expected != named.got
    if tampered.field == "sealer":
        # The forged seal is a good signature, by an account that is no validator.
        assert named.got == tampered.culprit
        assert validator in named.expected
        assert set(fields) == {"sealer"}
    elif tampered.culprit is not None:
        # A transaction from a non-member: refused at the parent state, and not executable.
        assert named.got == f"refused for sender {tampered.culprit}"
        assert "execution" in fields
    assert f"block {tampered.block_number}" in failure.describe()


@pytest.mark.parametrize(
    "kind", ["transaction", "outsider's transaction", "state root", "gas used", "seal"]
)
def test_the_follower_stops_at_a_tampered_block(
    kind: str,
    tamper: Tamper,
    copy_history: Callable[[], Path],
    start_node: StartNode,
    config: DevnetConfig,
    tmp_path: Path,
) -> None:
    data_dir = copy_history()
    tampered = tamper(kind, data_dir)
    number = tampered.block_number
    validator = config.validators[0].address

    # Served by the restarted node over JSON-RPC.
    node = start_node(data_dir)
    source = RpcSource(node.url)
    follower = Follower(config, tmp_path / "over-rpc", upstream=node.url)
    try:
        follower.check_source(source)
        with pytest.raises(AuditFailure) as caught:
            follower.sync(source)
        _check_failure(caught.value, tampered, validator)
        # Nothing of the failed block was kept; the follower stands on the block before.
        assert follower.head_number() == number - 1
        with pytest.raises(AuditFailure):
            follower.sync(source)
    finally:
        follower.close()
        source.close()
    node.stop()

    # Read straight from the data directory, the same block fails.
    store = StoreSource(data_dir)
    follower = Follower(config, tmp_path / "from-disk")
    try:
        with pytest.raises(AuditFailure) as caught:
            follower.sync(store)
        assert caught.value.block_number == number
        fields = {d.field: d for d in caught.value.discrepancies}
        assert tampered.field in fields
    finally:
        follower.close()
        store.close()


def test_the_follower_process_exits_with_a_report_at_a_block_sealed_by_an_outsider(
    tamper: Tamper,
    copy_history: Callable[[], Path],
    start_node: StartNode,
    config: DevnetConfig,
    tmp_path: Path,
) -> None:
    data_dir = copy_history()
    tampered = tamper("seal", data_dir)
    node = start_node(data_dir)
    report_path = tmp_path / "failure.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chain.cli",
            "audit",
            "follow",
            "--rpc",
            node.url,
            "--data-dir",
            str(tmp_path / "follower"),
            "--report",
            str(report_path),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=FOLLOW_TIMEOUT_SECONDS,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"block {tampered.block_number}" in done.stdout
    assert tampered.culprit in done.stdout
    report = json.loads(report_path.read_text())
    assert report["blockNumber"] == tampered.block_number
    (sealer,) = report["discrepancies"]
    assert sealer["field"] == "sealer" and sealer["got"] == tampered.culprit
    assert config.validators[0].address in sealer["expected"]
    assert f"Yufu follower stopped at block {tampered.block_number - 1}" in done.stdout
