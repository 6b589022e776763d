"""A child process that prints its URL once it serves: the oracle in the end-to-end tests.

Imported by module name (pytest puts tests/oracle on sys.path; ``tests`` is not a package).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0


class ServiceProcess:
    """``command`` as a child process whose output goes to ``log_path``.

    ``ready`` is a regex with one group, the URL, matched against the output.
    """

    def __init__(
        self,
        command: Sequence[str],
        ready: str,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = list(command)
        self.ready = re.compile(ready)
        self.log_path = log_path
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, *, extra_env: dict[str, str] | None = None) -> ServiceProcess:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(extra_env or {})},
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            found = self.ready.search(self.log(offset))
            if found is not None:
                self.url = found.group(1)
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.command} exited with {self.process.returncode}:\n" + self.log(offset)
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.command} did not start:\n{self.log(offset)}")
            time.sleep(0.05)

    def log(self, offset: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[offset:].decode(errors="replace")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout)
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def oracle_command(
    data_dir: Path, rpc_url: str, bank_url: str, registry_url: str, *, recheck_seconds: float
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "oracle",
        "run",
        "--data-dir",
        str(data_dir),
        "--rpc-url",
        rpc_url,
        "--bank-url",
        bank_url,
        "--registry-url",
        registry_url,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--poll-ms",
        "100",
        "--recheck-seconds",
        str(recheck_seconds),
    ]


ORACLE_READY = r"Yufu oracle serving on (http://\S+)"
