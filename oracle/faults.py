"""Crash points for the kill tests: the oracle dies here, as under ``kill -9``, when asked.

The environment variable ``YUFU_ORACLE_CRASH_AT`` names one or more points (comma-separated);
reaching one sends the process SIGKILL: no cleanup, no flush, no rollback but SQLite's own. Tests
start the oracle with it to hit the worst moments exactly (between reading and posting, between
posting and recording) and restart it without it. Unset, a crash point costs a dictionary
lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "YUFU_ORACLE_CRASH_AT"
POINTS = frozenset(
    {
        # A bank file was fetched and kept, its facts queued, but the transaction not committed.
        "bank-file-read",
        # An action's raw transaction is stored as sent but was not sent yet.
        "action-stored",
        # An action's transaction was sent; the oracle has not seen its receipt.
        "action-sent",
        # The bank accepted a pain.001; the oracle has not recorded it.
        "instruction-sent",
        # A registry response was kept and its attestation queued, not committed.
        "licence-checked",
    }
)


def crash_point(name: str) -> None:
    """Die here with SIGKILL if ``YUFU_ORACLE_CRASH_AT`` names this point."""
    assert name in POINTS, name
    wanted = os.environ.get(CRASH_ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
