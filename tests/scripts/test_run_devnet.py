"""``make run`` (scripts/run_devnet.py): the node starts, is bootstrapped, answers, stops cleanly.

The supervisor runs as ``make run`` runs it, a separate process, on a temporary data directory
and a free port. It is stopped with SIGTERM and must exit 0 with its node stopped; a second
start on the same directory finds the contracts where the first left them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chain.config import DevnetConfig
from chain.node.service import system_addresses

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run_devnet.py"
READY_LINE = re.compile(r"Yufu devnet ready: JSON-RPC on (http://\S+)")
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0


class Supervisor:
    """scripts/run_devnet.py as a child process whose output is collected line by line."""

    def __init__(self, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--block-period",
                "0.1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"},
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = READY_LINE.search(line)
            if found is not None:
                self.url = found.group(1)
                self.ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.ready.wait(timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._reader.join(timeout=5)
                raise AssertionError(f"the devnet never got ready:\n{self.output}")
        return self.url

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)


def rpc(url: str, method: str, *params: Any) -> Any:
    answer = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=30
    )
    answer.raise_for_status()
    body = answer.json()
    assert "error" not in body, body
    return body["result"]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def port_is_closed(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except requests.ConnectionError:
        return True
    return False


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Supervisor]]:
    """Supervisors a test starts; any still running is killed afterwards."""
    supervisors: list[Supervisor] = []
    yield supervisors
    for supervisor in supervisors:
        supervisor.kill()


def test_run_devnet_serves_a_bootstrapped_node_and_stops_on_sigterm(
    tmp_path: Path, config: DevnetConfig, started: list[Supervisor]
) -> None:
    data_dir = tmp_path / "devnet"
    membership = system_addresses(config).membership

    first = Supervisor(data_dir)
    started.append(first)
    url = first.wait_ready()
    assert int(str(rpc(url, "eth_chainId")), 16) == config.chain.chain_id
    code = str(rpc(url, "eth_getCode", membership, "latest"))
    assert len(code) > 2, "the Membership contract has no code"
    head = int(str(rpc(url, "eth_blockNumber")), 16)
    assert head > 0, "bootstrap sealed no block"
    for name, address in system_addresses(config).by_contract().items():
        assert re.search(rf"{name}\s+{address}", first.output), first.output
    assert f"block-number --rpc-url {url}" in first.output
    # Beside the node: the two simulators and the oracle, each answering its /health.
    beside = {
        label: re.search(rf"{re.escape(label)}\s+(http://\S+)", first.output)
        for label in (
            "custody bank SIMULATOR (ISO 20022)",
            "licence registry SIMULATOR",
            "oracle (health, metrics, evidence)",
        )
    }
    assert all(beside.values()), first.output
    service_urls = [found.group(1) for found in beside.values() if found is not None]
    for service_url in service_urls:
        assert requests.get(service_url + "/health", timeout=10).status_code == 200, service_url

    assert first.terminate() == 0, first.output
    assert "Stopped." in first.output
    assert port_is_closed(port_of(url)), "the node still answers after the supervisor exited"
    for service_url in service_urls:
        assert port_is_closed(port_of(service_url)), f"{service_url} still answers"

    # Started again on the same directory: no second bootstrap, same chain, same contracts.
    second = Supervisor(data_dir)
    started.append(second)
    url = second.wait_ready()
    assert "Fresh data directory" not in second.output
    assert "Deployed the Yufu system contracts" not in second.output
    assert int(str(rpc(url, "eth_blockNumber")), 16) == head
    assert len(str(rpc(url, "eth_getCode", membership, "latest"))) > 2
    assert second.terminate() == 0, second.output
