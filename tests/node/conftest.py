"""Fixtures for the node's end-to-end tests: the Yufu node as a real process on a real port.

Bootstrapping (deploying and configuring the system contracts, about thirty transactions)
runs once per session on a node that is then stopped cleanly; every test that needs a
bootstrapped chain starts a node on a copy of that data directory. Every process a test starts
is killed in teardown, whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from web3 import Web3

from chain.config import DEFAULT_CONFIG_PATH, DevnetConfig
from chain.deploy import DeployedSystem
from chain.node.service import deployed_system

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CAST_BINARY = PROJECT_ROOT / "node_modules" / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"
# Short, so clients that wait for each receipt in turn are quick.
BLOCK_PERIOD_SECONDS = "0.05"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
_URL_LINE = re.compile(r"Yufu node serving JSON-RPC on (http://\S+)")


class RpcError(Exception):
    """A JSON-RPC error object, as the node answered it."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


class NodeProcess:
    """``python -m chain.node run`` as a child process, started and stopped by tests."""

    def __init__(self, data_dir: Path, log_path: Path, config_path: Path = DEFAULT_CONFIG_PATH):
        self.data_dir = data_dir
        self.log_path = log_path
        self.config_path = config_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.session = requests.Session()

    # ------------------------------------------------------------ life cycle

    def start(self) -> NodeProcess:
        """Start the node and wait until it serves ``/health``."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chain.node",
                    "run",
                    "--config",
                    str(self.config_path),
                    "--data-dir",
                    str(self.data_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--block-period",
                    BLOCK_PERIOD_SECONDS,
                ],
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._healthy(offset):
            if self.process.poll() is not None:
                raise RuntimeError(f"the node exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the node did not become healthy:\n{self.log()}")
            time.sleep(0.1)
        return self

    def _healthy(self, offset: int) -> bool:
        if not self.url:
            found = _URL_LINE.search(self.log_path.read_bytes()[offset:].decode(errors="replace"))
            if found is None:
                return False
            self.url = found.group(1)
        try:
            return self.session.get(self.url + "/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> int:
        """SIGTERM, and wait for a clean exit; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._forget()
        return code

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._forget()

    def _forget(self) -> None:
        self.url = ""
        self.session.close()
        self.session = requests.Session()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ------------------------------------------------------------ talking to it

    def post(self, body: Any, *, raw: bool = False) -> requests.Response:
        """POST a JSON body (or, with ``raw``, the bytes or text as given)."""
        if raw:
            return self.session.post(self.url, data=body, timeout=30)
        return self.session.post(self.url, json=body, timeout=30)

    def rpc(self, method: str, *params: Any) -> Any:
        """Call one method; an error answer raises :class:`RpcError`."""
        answer = self.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        answer.raise_for_status()
        body = answer.json()
        if "error" in body:
            raise RpcError(body["error"])
        return body["result"]

    def rpc_error(self, method: str, *params: Any) -> RpcError:
        """Call a method that must fail; returns the error it was answered with."""
        try:
            result = self.rpc(method, *params)
        except RpcError as error:
            return error
        raise AssertionError(f"{method} succeeded with {result!r}; an error was expected")

    def web3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 60}))

    def wait_for_receipt(self, tx_hash: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return dict(receipt)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no receipt for {tx_hash} within {timeout} s")
            time.sleep(0.05)


def run_bootstrap(url: str) -> str:
    """``python -m chain.node bootstrap``; returns its output (fails the test on error)."""
    done = subprocess.run(
        [sys.executable, "-m", "chain.node", "bootstrap", "--url", url],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"bootstrap failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def bootstrapped_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose chain holds the bootstrapped system (the node stopped cleanly)."""
    root = tmp_path_factory.mktemp("bootstrapped")
    node = NodeProcess(root / "data", root / "node.log")
    try:
        node.start()
        first = run_bootstrap(node.url)
        assert "Deployed the Yufu system contracts" in first
        again = run_bootstrap(node.url)
        assert "already deployed" in again
        assert node.stop() == 0
    finally:
        node.kill()
    return root / "data"


@pytest.fixture
def start_node(bootstrapped_data: Path, tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start nodes on a fresh copy of the bootstrapped chain; all are killed after the test."""
    started: list[NodeProcess] = []
    copies = 0

    def start(data_dir: Path | None = None) -> NodeProcess:
        nonlocal copies
        if data_dir is None:
            copies += 1
            data_dir = tmp_path / f"data-{copies}"
            shutil.copytree(bootstrapped_data, data_dir)
        node = NodeProcess(data_dir, tmp_path / "node.log")
        started.append(node)
        return node.start()

    yield start
    for node in started:
        node.kill()


@pytest.fixture(scope="session")
def node(
    bootstrapped_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    """One running node on the bootstrapped chain, shared by the read-mostly tests."""
    root = tmp_path_factory.mktemp("shared-node")
    shutil.copytree(bootstrapped_data, root / "data")
    running = NodeProcess(root / "data", root / "node.log")
    try:
        yield running.start()
    finally:
        running.kill()


@pytest.fixture(scope="session")
def w3(node: NodeProcess) -> Web3:
    """web3.py over HTTP to the shared node."""
    return node.web3()


@pytest.fixture(scope="session")
def system(w3: Web3, config: DevnetConfig) -> DeployedSystem:
    """The bootstrapped system, read back from the shared node."""
    return deployed_system(w3, config)


@pytest.fixture(scope="session")
def cast() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run Foundry's ``cast`` from npm."""
    if not CAST_BINARY.exists():
        pytest.fail(f"cast is not installed at {CAST_BINARY}; run `make setup`")

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CAST_BINARY), *arguments], capture_output=True, text=True, timeout=120
        )

    return run
