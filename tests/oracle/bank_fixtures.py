"""The custody bank simulator as a real process on a real port, for the oracle's tests.

``bank_simulator()`` starts ``python -m oracle.bank_simulator`` on a fresh data directory and
returns a :class:`BankSimulator` whose ``url`` serves it; ``stop()``, ``kill()`` and
``restart()`` drive its life cycle (a restart keeps the data directory and the port, so the URL
stays the same). Every process a test starts is killed in teardown, whatever happened.

Imported by module name from ``conftest.py`` (pytest puts tests/oracle on ``sys.path``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
HTTP_TIMEOUT_SECONDS = 10.0
# A business day far from today, so tests never depend on the calendar.
START_DATE = "2026-11-25"
_URL_LINE = re.compile(r"Yufu bank simulator \(SIMULATOR, not a bank\) serving on (http://\S+)")


class BankSimulator:
    """``python -m oracle.bank_simulator`` as a child process, started and stopped by tests."""

    def __init__(
        self, data_dir: Path, log_path: Path, start_date: str | None, bank_name: str | None
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.start_date = start_date
        self.bank_name = bank_name
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0
        self.session = requests.Session()

    # ------------------------------------------------------------ life cycle

    def start(self) -> BankSimulator:
        """Start the simulator and wait for its ``serving on`` line and ``/health``."""
        command = [
            sys.executable,
            "-m",
            "oracle.bank_simulator",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.start_date is not None:
            command += ["--start-date", self.start_date]
        if self.bank_name is not None:
            command += ["--bank-name", self.bank_name]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._healthy(offset):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the bank simulator exited with {self.process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the bank simulator did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def _healthy(self, offset: int) -> bool:
        if not self.url:
            found = _URL_LINE.search(self.log_path.read_bytes()[offset:].decode(errors="replace"))
            if found is None:
                return False
            self.url = found.group(1)
            self.port = int(self.url.rsplit(":", 1)[1])
        try:
            return self.session.get(self.url + "/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> int:
        """SIGTERM, and wait for a clean exit; returns the exit code."""
        assert self.process is not None, "the bank simulator is not running"
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

    def restart(self) -> BankSimulator:
        """Stop it if it runs (SIGTERM), then start it again on the same data and port."""
        if self.process is not None and self.process.poll() is None:
            self.stop()
        return self.start()

    def _forget(self) -> None:
        self.process = None
        self.url = ""
        self.session.close()
        self.session = requests.Session()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ------------------------------------------------------------ talking to it

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=HTTP_TIMEOUT_SECONDS, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=HTTP_TIMEOUT_SECONDS, **kwargs)

    def open_account(self, account_id: str, owner_name: str = "Demo Merchant") -> None:
        answer = self.post(
            "/simulator/accounts", json={"account_id": account_id, "owner_name": owner_name}
        )
        assert answer.status_code in (200, 201), answer.text

    def pay(self, account_id: str, amount_fen: int, **fields: str) -> str:
        """A consumer's payment into custody; returns its bank reference."""
        body = {
            "account_id": account_id,
            "amount_fen": amount_fen,
            "payer_name": "Zhang San",
            "payer_account": "6222020200112233445",
            "payer_reference": "PAY-0001",
            "remittance": "YUFU-AGR:0x" + "ab" * 32,
            **fields,
        }
        answer = self.post("/simulator/payments", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["bank_reference"])

    def send_pain001(self, document: bytes) -> requests.Response:
        return self.post("/pain001", data=document, headers={"Content-Type": "application/xml"})

    def account(self, account_id: str) -> dict[str, Any]:
        answer = self.get(f"/simulator/accounts/{account_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def files(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        answer = self.get("/files", params={"after": after, "limit": limit})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["files"])

    def file(self, name: str) -> bytes:
        answer = self.get(f"/files/{name}")
        assert answer.status_code == 200, answer.text
        return answer.content

    def close_day(self) -> dict[str, Any]:
        answer = self.post("/simulator/close-day")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def misbehave(self, mode: str, fen: int | None = None) -> None:
        body: dict[str, Any] = {"mode": mode}
        if fen is not None:
            body["fen"] = fen
        answer = self.post("/simulator/misbehave", json=body)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def bank_simulator(tmp_path: Path) -> Iterator[Callable[..., BankSimulator]]:
    """``bank_simulator(start_date=..., bank_name=...)`` starts a simulator on a fresh data dir.

    The first business day defaults to ``START_DATE``; ``start_date=None`` lets the simulator
    choose (today in China). ``data_dir`` reopens an existing bank.
    """
    started: list[BankSimulator] = []

    def start(
        start_date: str | None = START_DATE,
        bank_name: str | None = None,
        data_dir: Path | None = None,
    ) -> BankSimulator:
        number = len(started)
        simulator = BankSimulator(
            data_dir or tmp_path / f"bank-{number}",
            tmp_path / f"bank-{number}.log",
            start_date,
            bank_name,
        )
        started.append(simulator)
        return simulator.start()

    yield start
    for simulator in started:
        simulator.kill()
