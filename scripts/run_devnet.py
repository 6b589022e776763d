"""Run the Yufu devnet in the foreground: what ``make run`` does.

A small supervisor of four child processes:

1. starts the node (``python -m chain.node run``) on the devnet's JSON-RPC port (``[services]
   host`` and ``node_rpc_port`` of ``hardhat-free-devnet.toml``) with its data in ``.yufu/devnet``
   (``chain.data_dir``), and waits until ``/health`` answers;
2. deploys the system contracts if this chain does not have them yet
   (``chain.node.service.bootstrap``, the regulator's first transactions). A fresh data
   directory is bootstrapped on a throw-away node sealing every ``BOOTSTRAP_BLOCK_PERIOD``
   seconds, stopped cleanly before the real one starts: thirty-odd transactions that each wait
   for a block take seconds instead of half a minute. If that is interrupted, the chain files
   are deleted again, since a half-bootstrapped chain cannot be resumed;
3. starts the SIMULATED custody bank and licence registry (``python -m oracle.bank_simulator``,
   ``python -m oracle.licence_simulator``; data in ``simulators.data_dir``), then the oracle
   (``python -m oracle run``; data in ``oracle.data_dir``) pointed at the three;
4. prints the URLs, the system contracts' addresses and commands to try;
5. keeps running until Ctrl-C (SIGINT) or SIGTERM, which it forwards as SIGTERM to the oracle,
   the simulators and the node, in that order, waits for each to stop cleanly and exits with
   0. If any child dies on its own, the others are stopped and the supervisor exits with 1.

Each child runs in its own session, so a Ctrl-C in the terminal reaches the supervisor only,
and each is stopped once, in order. Their output is relayed with a ``[node]``, ``[bank]``,
``[registry]`` or ``[oracle]`` prefix.

Usage::

    python scripts/run_devnet.py [--config FILE] [--data-dir DIR] [--host HOST] [--port PORT]
                                 [--block-period SECONDS]

``--port 0`` lets every process pick a free port; the URL lines say which. With ``--data-dir``
the oracle's and the simulators' data go beside it (``oracle/``, ``simulators/``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from types import FrameType

import requests
from web3 import Web3

from chain.client import SystemAddresses
from chain.config import DEFAULT_CONFIG_PATH, ConfigError, DevnetConfig, load_config
from chain.errors import ChainError
from chain.node.service import bootstrap

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
CAST_BINARY: Path = PROJECT_ROOT / "node_modules" / ".bin" / "cast"
# The block period of the throw-away node that bootstraps a fresh data directory.
BOOTSTRAP_BLOCK_PERIOD: float = 0.05
START_TIMEOUT_SECONDS: float = 60.0
STOP_TIMEOUT_SECONDS: float = 30.0
HEALTH_POLL_SECONDS: float = 0.1
# The files ``chain.node.store.ChainStore`` keeps in a data directory (SQLite in WAL mode).
CHAIN_FILES: tuple[str, ...] = ("chain.sqlite", "chain.sqlite-wal", "chain.sqlite-shm")
# The line ``chain.node.service.serve`` prints once its port is bound.
URL_LINE = re.compile(r"Yufu node serving JSON-RPC on (http://\S+)")
BANK_URL_LINE = re.compile(r"Yufu bank simulator \(SIMULATOR, not a bank\) serving on (http://\S+)")
REGISTRY_URL_LINE = re.compile(
    r"Yufu licence registry simulator \(SIMULATOR, not the registry\) serving on (http://\S+)"
)
ORACLE_URL_LINE = re.compile(r"Yufu oracle serving on (http://\S+)")
# The line this script prints once the devnet is ready; tests and scripts wait for it.
READY_PREFIX = "Yufu devnet ready: JSON-RPC on "


class SupervisorError(ChainError):
    """The node could not be started, bootstrapped or stopped; the message says why."""


class StopRequested(Exception):  # noqa: N818 - a request, not an error
    """SIGINT or SIGTERM arrived."""


class ChildProcess:
    """A devnet service as a child process that prints its URL once it serves.

    Parameters
    ----------
    name
        Short name, the prefix of its relayed output lines (``[node]``, ``[bank]``, ...).
    command
        Its command line.
    url_line
        A regex whose one group is the URL, matched against its output.
    relay
        Print its output lines (prefixed); otherwise keep only the last ones, for errors.
    """

    def __init__(
        self, name: str, command: Sequence[str], url_line: re.Pattern[str], *, relay: bool = True
    ) -> None:
        self.name = name
        self._command = list(command)
        self.url_line = url_line
        self.relay = relay
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []
        self._url_found = threading.Event()
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        return self._command

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> ChildProcess:
        """Start it and wait until ``/health`` answers 200."""
        self.process = subprocess.Popen(
            self.command(),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Its own session: a terminal's Ctrl-C reaches the supervisor, which stops it.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        session = requests.Session()
        try:
            while True:
                if self.process.poll() is not None:
                    self._reader.join(timeout=5)
                    raise SupervisorError(
                        f"the {self.name} exited with {self.process.returncode} while starting:\n"
                        + self.tail()
                    )
                if time.monotonic() > deadline:
                    self.kill()
                    raise SupervisorError(
                        f"the {self.name} did not answer /health within {timeout} s:\n"
                        + self.tail()
                    )
                if self._url_found.is_set() and self._healthy(session):
                    return self
                time.sleep(HEALTH_POLL_SECONDS)
        finally:
            session.close()

    def _healthy(self, session: requests.Session) -> bool:
        try:
            return session.get(self.url + "/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.output = [*self.output[-199:], line]
            found = self.url_line.search(line)
            if found is not None and not self._url_found.is_set():
                self.url = found.group(1)
                self._url_found.set()
            if self.relay:
                print(f"[{self.name}] {line}", flush=True)

    def tail(self, lines: int = 40) -> str:
        """Its last output lines."""
        return "\n".join(self.output[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then wait for a clean exit (SIGKILL after ``timeout``); the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise SupervisorError(
                    f"the {self.name} did not stop within {timeout} s and was killed"
                ) from None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL, if still running."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def web3(self, timeout: float = 120) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": timeout}))


class NodeProcess(ChildProcess):
    """``python -m chain.node run`` as a child process.

    Parameters
    ----------
    config_path
        The devnet TOML.
    data_dir
        The node's data directory.
    host, port
        Where it listens; port 0 lets it choose.
    block_period
        Seconds between blocks; None for the configured period.
    relay
        Print the node's output lines (prefixed ``[node]``); otherwise keep only the last ones,
        for error messages.
    """

    def __init__(
        self,
        config_path: Path,
        data_dir: Path,
        host: str,
        port: int,
        block_period: float | None = None,
        *,
        relay: bool = True,
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "chain.node",
            "run",
            "--config",
            str(config_path),
            "--data-dir",
            str(data_dir),
            "--host",
            host,
            "--port",
            str(port),
        ]
        if block_period is not None:
            command += ["--block-period", str(block_period)]
        super().__init__("node", command, URL_LINE, relay=relay)
        self.data_dir = data_dir


# ---------------------------------------------------------------- the supervisor


def is_fresh(data_dir: Path) -> bool:
    """Whether the data directory holds no chain yet."""
    return not (data_dir / CHAIN_FILES[0]).exists()


def remove_chain(data_dir: Path, remove_directory: bool) -> None:
    """Delete the node's database files (only those), and the directory if this script made it."""
    for name in CHAIN_FILES:
        (data_dir / name).unlink(missing_ok=True)
    if remove_directory:
        with contextlib.suppress(OSError):
            data_dir.rmdir()


def bootstrap_fresh(config_path: Path, config: DevnetConfig, data_dir: Path, host: str) -> None:
    """Bootstrap a fresh data directory on a fast-sealing node, then stop that node."""
    print(
        f"Fresh data directory {data_dir}: deploying the system contracts "
        f"(blocks every {BOOTSTRAP_BLOCK_PERIOD} s while bootstrapping)",
        flush=True,
    )
    node = NodeProcess(config_path, data_dir, host, 0, BOOTSTRAP_BLOCK_PERIOD, relay=False)
    try:
        node.start()
        bootstrap(node.web3(), config)
        code = node.stop()
    finally:
        node.kill()
    if code != 0:
        raise SupervisorError(f"the bootstrap node exited with {code}:\n{node.tail()}")


def describe(
    config: DevnetConfig,
    url: str,
    data_dir: Path,
    addresses: SystemAddresses,
    services: Sequence[ChildProcess] = (),
) -> str:
    """What the user sees once the devnet is ready."""
    cast = str(CAST_BINARY.relative_to(PROJECT_ROOT)) if CAST_BINARY.exists() else "cast"
    membership = addresses.membership
    shown = {
        "bank": "custody bank SIMULATOR (ISO 20022)",
        "registry": "licence registry SIMULATOR",
        "oracle": "oracle (health, metrics, evidence)",
    }
    lines = [
        "",
        f"{READY_PREFIX}{url}",
        f"  chain id {config.chain.chain_id}, data in {data_dir}",
        *(f"  {shown.get(child.name, child.name):<36} {child.url}" for child in services),
        "  system contracts:",
        *(f"    {name:<17} {address}" for name, address in addresses.by_contract().items()),
        "  try:",
        f"    {cast} block-number --rpc-url {url}",
        f'    {cast} call {membership} "getValidators()(address[])" --rpc-url {url}',
        f"    curl -s {url}/health",
        *(
            f"    curl -s {child.url}/parked      # what the oracle set aside for the regulator"
            for child in services
            if child.name == "oracle"
        ),
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def simulators(
    config: DevnetConfig, host: str, state_root: Path | None, any_port: bool
) -> list[ChildProcess]:
    """The SIMULATED custody bank and licence registry, ready to start."""
    services = config.services
    data = state_root / "simulators" if state_root else config.simulators_data_path

    def port(configured: int) -> str:
        return "0" if any_port else str(configured)

    bank = ChildProcess(
        "bank",
        [
            sys.executable,
            "-m",
            "oracle.bank_simulator",
            "--data-dir",
            str(data / "bank"),
            "--host",
            host,
            "--port",
            port(services.bank_simulator_port),
            "--day-seconds",
            str(config.simulators.bank_day_seconds),
            # Its calendar moves a day every bank_day_seconds, faster than the real one; a new
            # bank starts a year back, so its statements stay dated before their reports for
            # hours of running (the chain refuses a statement dated after its report).
            "--start-date",
            (date.today() - timedelta(days=365)).isoformat(),
        ],
        BANK_URL_LINE,
    )
    registry = ChildProcess(
        "registry",
        [
            sys.executable,
            "-m",
            "oracle.licence_simulator",
            "--data-dir",
            str(data / "licence-registry"),
            "--host",
            host,
            "--port",
            port(services.licence_simulator_port),
        ],
        REGISTRY_URL_LINE,
    )
    return [bank, registry]


def oracle_process(
    config_path: Path,
    config: DevnetConfig,
    node_url: str,
    bank_url: str,
    registry_url: str,
    host: str,
    state_root: Path | None,
    any_port: bool,
) -> ChildProcess:
    oracle_data = state_root / "oracle" if state_root else config.oracle_data_path
    return ChildProcess(
        "oracle",
        [
            sys.executable,
            "-m",
            "oracle",
            "run",
            "--config",
            str(config_path),
            "--data-dir",
            str(oracle_data),
            "--rpc-url",
            node_url,
            "--bank-url",
            bank_url,
            "--registry-url",
            registry_url,
            "--host",
            host,
            "--port",
            "0" if any_port else str(config.services.oracle_metrics_port),
        ],
        ORACLE_URL_LINE,
    )


def supervise(arguments: argparse.Namespace) -> int:
    """Run the devnet until a signal; the exit code."""
    config_path: Path = arguments.config
    config = load_config(config_path)
    data_dir: Path = (arguments.data_dir or config.data_path).resolve()
    # With --data-dir, the oracle's and the simulators' state live beside the chain's.
    state_root = data_dir.parent if arguments.data_dir else None
    host: str = arguments.host or config.services.host
    port: int = config.services.node_rpc_port if arguments.port is None else arguments.port
    block_period: float | None = arguments.block_period
    created = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)

    if is_fresh(data_dir):
        try:
            bootstrap_fresh(config_path, config, data_dir, host)
        except BaseException:
            # A half-bootstrapped chain cannot be resumed; start from nothing next time.
            remove_chain(data_dir, created)
            raise

    node = NodeProcess(config_path, data_dir, host, port, block_period)
    # Started in this order, stopped in the reverse one: the oracle first, the node last.
    running: list[ChildProcess] = [node]
    try:
        node.start()
        addresses, deployed_now = bootstrap(node.web3(), config)
        if deployed_now:
            print("Deployed the Yufu system contracts.", flush=True)
        bank, registry = simulators(config, host, state_root, port == 0)
        for child in (bank, registry):
            running.append(child)
            child.start()
        oracle = oracle_process(
            config_path, config, node.url, bank.url, registry.url, host, state_root, port == 0
        )
        running.append(oracle)
        oracle.start()
        print(describe(config, node.url, data_dir, addresses, running[1:]), flush=True)
        while all(child.running() for child in running):
            time.sleep(0.2)
        died = next(child for child in running if not child.running())
        print(
            f"The {died.name} exited on its own with {died.stop()}:\n{died.tail()}",
            file=sys.stderr,
        )
        stop_all(running)
        return 1
    except StopRequested:
        print("Stopping the oracle, the simulators and the node ...", flush=True)
        return 0 if stop_all(running) else 1
    finally:
        for child in running:
            child.kill()


def stop_all(running: list[ChildProcess]) -> bool:
    """Stop the children in reverse start order; whether all stopped cleanly."""
    clean = True
    for child in reversed(running):
        ready = bool(child.url)
        try:
            code = child.stop()
        except SupervisorError as error:
            print(str(error), file=sys.stderr)
            clean = False
            continue
        # Before a child is serving, SIGTERM may still find Python's default handler.
        if code != 0 and not (code == -signal.SIGTERM and not ready):
            print(f"The {child.name} exited with {code}:\n{child.tail()}", file=sys.stderr)
            clean = False
    if clean:
        print("Stopped.", flush=True)
    return clean


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the Yufu devnet node until Ctrl-C, bootstrapping it on first use."
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="devnet TOML")
    parser.add_argument(
        "--data-dir", type=Path, help="where the chain is kept (default: chain.data_dir)"
    )
    parser.add_argument("--host", help="interface to listen on (default: services.host)")
    parser.add_argument(
        "--port", type=int, help="port, 0 for any free one (default: services.node_rpc_port)"
    )
    parser.add_argument(
        "--block-period",
        type=float,
        help="seconds between blocks (default: chain.block_period_seconds)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.block_period is not None and arguments.block_period <= 0:
        print(f"--block-period must be positive, got {arguments.block_period}", file=sys.stderr)
        return 2

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Once: a second Ctrl-C while stopping must not interrupt the clean stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise StopRequested

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        return supervise(arguments)
    except StopRequested:
        print("Stopped before the devnet was ready.", flush=True)
        return 0
    except (ConfigError, ChainError, OSError, requests.RequestException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
