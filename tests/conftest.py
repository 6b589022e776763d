"""Shared fixtures: one chain per backend, the deployed system, and per-test isolation.

Every contract test runs three times: on eth-tester (py-evm in process, the design card's
chain), on anvil from npm (an independent EVM written in Rust), and on the Yufu node itself over
HTTP (``python -m chain.node run --dev``), to show the rules behave the same on all of them.
``-m "not anvil and not yufu_node"`` keeps the first run only. Each test starts from the same
deployed state: the chain is snapshotted before the test and reverted after it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_tester import exceptions as tester_exceptions
from hypothesis import HealthCheck, settings
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.middleware import SignAndSendRawMiddlewareBuilder

from chain.client import TxResult, YufuClient, _as_chain_error
from chain.config import DevnetConfig, load_config
from chain.deploy import DeployedSystem, configured_accounts, deploy_system, fund_accounts
from chain.errors import ContractRevert
from chain.scenario import PlanDesk

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ANVIL_BINARY = PROJECT_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"

settings.register_profile(
    "fast",
    max_examples=15,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "deep",
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("YUFU_HYPOTHESIS_PROFILE", "fast"))


# ---------------------------------------------------------------- backends


class Backend:
    """A chain to run the suite on, with the test-only controls it needs."""

    name: str
    w3: Web3
    # Whether the chain's genesis already funds the configured accounts (no fund_accounts).
    funds_accounts_itself: bool = False

    def snapshot(self) -> Any:
        raise NotImplementedError

    def revert(self, snapshot_id: Any) -> None:
        raise NotImplementedError

    def advance_time(self, seconds: int) -> None:
        """Mine a block ``seconds`` after the latest one."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class EthTesterBackend(Backend):
    name = "eth-tester"

    def __init__(self) -> None:
        self.provider = EthereumTesterProvider()
        self.w3 = Web3(self.provider)
        self.tester = self.provider.ethereum_tester

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snapshot_id: Any) -> None:
        self.tester.revert_to_snapshot(snapshot_id)

    def advance_time(self, seconds: int) -> None:
        latest = self.w3.eth.get_block("latest")["timestamp"]
        # eth-tester stamps the mined block one second before the travel target.
        self.tester.time_travel(latest + seconds + 1)


class AnvilBackend(Backend):
    name = "anvil"

    def __init__(self) -> None:
        if not ANVIL_BINARY.exists():
            raise RuntimeError(f"anvil is not installed at {ANVIL_BINARY}; run `make setup`")
        port = _free_port()
        self.process = subprocess.Popen(
            [str(ANVIL_BINARY), "--port", str(port), "--hardfork", "prague", "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.w3 = Web3(
            Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 60})
        )
        deadline = time.monotonic() + 30
        while not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("anvil did not start")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            return self.w3.is_connected()
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def snapshot(self) -> Any:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    def revert(self, snapshot_id: Any) -> None:
        self.w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]

    def advance_time(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def close(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class _FunderProvider(HTTPProvider):
    """HTTP to the Yufu node, which holds no keys: ``eth_accounts`` answers with a local funder.

    With web3's signing middleware for that funder, ``chain.deploy.fund_accounts`` (which tests
    call to give gas to accounts they create) works on the node as on the other backends.
    """

    def __init__(self, url: str, funder: str) -> None:
        super().__init__(url, request_kwargs={"timeout": 60})
        self.funder = funder

    def make_request(self, method: Any, params: Any) -> Any:
        if method == "eth_accounts":
            return {"jsonrpc": "2.0", "id": 0, "result": [self.funder]}
        return super().make_request(method, params)


class YufuNodeBackend(Backend):
    """The Yufu node as a process, started with ``--dev`` for the ``evm_`` test controls.

    Its genesis funds the configured accounts; accounts a test creates are funded by the last
    configured validator (a member the suite sends nothing else from), signed locally.
    """

    name = "yufu-node"
    funds_accounts_itself = True
    START_TIMEOUT_SECONDS = 60.0

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="yufu-node-backend-"))
        self.log_path = self.root / "node.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chain.node",
                    "run",
                    "--dev",
                    # The suite asserts that refused calls mine no block; a trailing block
                    # after the previous transaction would race with that.
                    "--no-trailing-block",
                    "--data-dir",
                    str(self.root / "data"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--block-period",
                    "0.01",
                    "--log-level",
                    "WARNING",
                ],
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        url = self._wait_for_url()
        funder = Account.from_key(load_config().validators[-1].key.private_key)
        self.w3 = Web3(_FunderProvider(url, funder.address))
        self.w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(funder), layer=0)

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + self.START_TIMEOUT_SECONDS
        while True:
            found = re.search(
                r"Yufu node serving JSON-RPC on (http://\S+)", self.log_path.read_text()
            )
            if found is not None:
                return found.group(1)
            if time.monotonic() > deadline or self.process.poll() is not None:
                log = self.log_path.read_text()
                self.close()
                raise RuntimeError(f"the Yufu node did not start:\n{log}")
            time.sleep(0.1)

    def _rpc(self, method: str, *params: Any) -> Any:
        answer = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in answer:
            raise RuntimeError(f"{method} failed: {answer['error']}")
        return answer["result"]

    def snapshot(self) -> Any:
        return self._rpc("evm_snapshot")

    def revert(self, snapshot_id: Any) -> None:
        self._rpc("evm_revert", snapshot_id)

    def advance_time(self, seconds: int) -> None:
        self._rpc("evm_increaseTime", seconds)
        self._rpc("evm_mine")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(
    scope="session",
    params=[
        "eth-tester",
        pytest.param("anvil", marks=pytest.mark.anvil),
        pytest.param("yufu-node", marks=pytest.mark.yufu_node),
    ],
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each chain the contract suite runs on."""
    chosen: Backend
    if request.param == "eth-tester":
        chosen = EthTesterBackend()
    elif request.param == "anvil":
        chosen = AnvilBackend()
    else:
        chosen = YufuNodeBackend()
    yield chosen
    chosen.close()


@pytest.fixture(scope="session")
def config() -> DevnetConfig:
    """The shipped devnet configuration."""
    return load_config()


@pytest.fixture(scope="session")
def deployed(backend: Backend, config: DevnetConfig) -> DeployedSystem:
    """The whole system deployed and configured once per backend.

    The bootstrap is left open, so tests may set up feeds and system accounts with the
    regulator key; tests/contracts/test_governance.py closes it as a real deployment does.
    """
    if not backend.funds_accounts_itself:
        fund_accounts(backend.w3, configured_accounts(config))
    return deploy_system(backend.w3, config, close_bootstrap=False)


@pytest.fixture(autouse=True)
def _isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    """Revert the chain after each test that touched it."""
    if "backend" not in request.fixturenames:
        yield
        return
    backend: Backend = request.getfixturevalue("backend")
    request.getfixturevalue("deployed")
    snapshot_id = backend.snapshot()
    yield
    backend.revert(snapshot_id)


@pytest.fixture
def desk(deployed: DeployedSystem, config: DevnetConfig) -> PlanDesk:
    """The parties of the devnet, playing against the deployed system."""
    return PlanDesk(deployed, config)


# ---------------------------------------------------------------- parties


@dataclass(frozen=True)
class Party:
    """A merchant or consumer of the devnet, with its key and address."""

    key: str
    address: str


@dataclass(frozen=True)
class OnboardedMerchant(Party):
    """An approved merchant and the template it sells under."""

    industry: str
    template_id: int


@pytest.fixture
def merchant(desk: PlanDesk, config: DevnetConfig, deployed: DeployedSystem) -> OnboardedMerchant:
    """The first demo merchant (training), admitted, licensed and approved."""
    demo = config.demo.merchants[0]
    address = desk.onboard(demo.key.private_key, demo.uscc, demo.name, demo.industry)
    template_id = deployed.template_ids[("training", demo.industry)]
    return OnboardedMerchant(demo.key.private_key, address, demo.industry, template_id)


@pytest.fixture
def consumer(config: DevnetConfig) -> Party:
    """The first demo consumer (who never sends transactions, only signs)."""
    demo = config.demo.consumers[0]
    return Party(demo.key.private_key, demo.address)


@pytest.fixture
def other_consumer(config: DevnetConfig) -> Party:
    """A second demo consumer."""
    demo = config.demo.consumers[1]
    return Party(demo.key.private_key, demo.address)


# ---------------------------------------------------------------- state machines

# Gas for every transaction of a state machine: far above the largest (a default settlement).
MACHINE_GAS = 8_000_000


@pytest.fixture
def quick_transactions(deployed: DeployedSystem, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Send the machine's transactions with a fixed gas limit after a dry run.

    eth-tester estimates gas by a binary search that runs each transaction a dozen times, most
    of the machine's time. One ``eth_call`` from the sender finds a refusal just as well (the same
    custom error, nothing sent), and a fixed limit then lets the transaction through.
    """
    client = deployed.client

    def transact(sender_key: str, function: Any, *, gas: int | None = None) -> TxResult:
        if gas is None:
            try:
                function.call({"from": Account.from_key(sender_key).address})
            except (
                ContractCustomError,
                ContractLogicError,
                tester_exceptions.TransactionFailed,
            ) as error:
                raise _as_chain_error(error) from None
            gas = MACHINE_GAS
        return YufuClient.transact(client, sender_key, function, gas=gas)

    monkeypatch.setattr(client, "transact", transact)
    yield


# ---------------------------------------------------------------- assertions


@pytest.fixture
def reverts() -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """``with reverts("AgreementBookSequenceMismatch", agreement_id, 2, 5): ...``

    Asserts the block raises :class:`ContractRevert` with that error name and, when given,
    exactly those arguments.
    """

    @contextlib.contextmanager
    def expect(error: str, *args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
        with pytest.raises(ContractRevert) as caught:
            yield caught
        assert caught.value.error == error, f"expected {error}, got {caught.value}"
        if args:
            assert caught.value.args_ == args, f"expected {error}{args}, got {caught.value}"

    return expect


@pytest.fixture(scope="session")
def anvil_binary() -> Path:
    """Where npm installed anvil."""
    if not ANVIL_BINARY.exists() and shutil.which("anvil") is None:
        pytest.fail("anvil missing: run `make setup`")
    return ANVIL_BINARY
