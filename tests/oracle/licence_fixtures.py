"""The licence registry simulator as a real process, for the oracle's tests.

``licence_simulator`` starts ``python -m oracle.licence_simulator`` on a fresh data directory
and a free port, waits for the line announcing its URL, and stops it after the test.
`LicenceSimulator.restart` brings it back on the same data directory and the same port, so a
client keeps its URL across a crash (`LicenceSimulator.kill`) or a clean stop.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

PROJECT_ROOT: Final[Path] = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS: Final[float] = 30.0
STOP_TIMEOUT_SECONDS: Final[float] = 15.0
ANNOUNCEMENT: Final = re.compile(
    r"^Yufu licence registry simulator \(SIMULATOR, not the registry\) serving on "
    r"(http://(\S+):(\d+))$"
)


class LicenceSimulator:
    """One licence registry simulator process on ``data_dir``.

    Attributes
    ----------
    url
        ``http://127.0.0.1:<port>`` of the running simulator; unchanged by `restart`.
    data_dir
        Where the simulator keeps its SQLite registry.
    stdout
        What the current (or last) process printed.
    """

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def stdout(self) -> str:
        return self._stdout_path.read_text(encoding="utf-8") if self._starts else ""

    @property
    def stderr(self) -> str:
        return self._stderr_path.read_text(encoding="utf-8") if self._starts else ""

    @property
    def _stdout_path(self) -> Path:
        return self.log_dir / f"licence-simulator-{self._starts}.out"

    @property
    def _stderr_path(self) -> Path:
        return self.log_dir / f"licence-simulator-{self._starts}.err"

    def start(self) -> None:
        """Start the process (on the port of the previous start, if any) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the licence simulator is already running")
        self._starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "oracle.licence_simulator",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with self._stdout_path.open("wb") as out, self._stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.url = self._wait_for_url()
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Ask the process to stop (SIGTERM by default) and return its exit status."""
        process = self._running()
        process.send_signal(signum)
        try:
            return process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"the licence simulator ignored signal {signum}:\n{self.stderr}"
            ) from None

    def kill(self) -> None:
        """Kill the process with SIGKILL: no chance to finish anything."""
        process = self._running()
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def restart(self) -> None:
        """Stop the process if it runs, then start it again on the same data and port."""
        if self.process is not None and self.process.poll() is None:
            self.stop()
        self.start()

    def close(self) -> None:
        """Stop the process if it still runs; kill it if it does not stop."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.stop()
        except RuntimeError:
            pass

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("the licence simulator is not running")
        return self.process

    def _wait_for_url(self) -> str:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            first_line, newline, _ = self.stdout.partition("\n")
            if newline:
                found = ANNOUNCEMENT.match(first_line)
                if found is not None:
                    return found.group(1)
            if newline or self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(
                    f"the licence simulator did not start (exit status {self.process.poll()}):\n"
                    f"{self.stdout}{self.stderr}"
                )
            time.sleep(0.05)


@pytest.fixture
def licence_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LicenceSimulator]:
    """A running licence registry simulator with a freshly seeded registry of its own."""
    root = tmp_path_factory.mktemp("licence-simulator")
    simulator = LicenceSimulator(root / "data", root / "logs")
    simulator.start()
    yield simulator
    simulator.close()
