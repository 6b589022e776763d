"""The demo (``make demo``) plays a plan's whole life and every ledger conserves its money.

The script runs as ``make demo`` runs it: a separate process with this environment's Python, so
the test also catches a script that only works when imported.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"
# A ledger row: a shortened plan id, then the merchant, the state, five amounts and the verdict.
LEDGER_ROW = re.compile(r"^\s+0x[0-9a-f]{10}… .* (OK|FAIL)$")

Run = subprocess.CompletedProcess[str]


def run_demo(*arguments: str) -> Run:
    return subprocess.run(
        [sys.executable, str(DEMO), *arguments],
        # The demo prints arrows and ellipses; read them the same whatever the locale.
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def demo() -> Run:
    """One run of the demo, shared by the tests of this module."""
    return run_demo()


def test_demo_exits_with_success(demo: Run) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr


def test_demo_shows_every_step_of_the_story(demo: Run) -> None:
    for step in (
        "regulator admits Sunrise Tutoring",
        "licence feed attests: active, 2 of 3 signed",
        "regulator approves Sunrise Tutoring",
        "template 1 'training'",
        "insurer writes policy 1 on Minjiang Fitness",
        "bank feed reports 1,800.00 paid into custody",
        "custody ratio 30%: frozen 540.00, upfront 1,260.00 (the merchant's after cooling-off",
        "records #2–#3 in one batch",
        "refund preview after 3 of 20 lessons",
        "consumer 2 cooled off on day 3 of 7",
        "full refund 1,500.00",
        "regulator declares Minjiang Fitness in default",
        "regulator distributes the set-off: its consumers first, then insurance",
        "insurance claim 1: loss 1,750.00, covered 1,750.00",
        "bank feed confirms the insurer paid claim 1: 1,750.00",
        "bank feed confirms refund payout 750.00",
        "regulator resolves complaint 1: upheld",
        "anchored  block",
    ):
        assert step in demo.stdout, f"missing {step!r} in:\n{demo.stdout}"


def test_every_transaction_line_shows_block_gas_and_hash(demo: Run) -> None:
    steps = [line for line in demo.stdout.splitlines() if line.startswith("  #")]
    assert len(steps) > 30
    for line in steps:
        assert re.match(r"^  #\d+\s+gas\s+[\d,]+ .* 0x[0-9a-f]{64}$", line), line


def test_every_ledger_passes_the_conservation_check(demo: Run) -> None:
    rows = [line for line in demo.stdout.splitlines() if LEDGER_ROW.match(line)]
    states = [row.split()[3] for row in rows]
    assert len(rows) == 3, demo.stdout
    assert all(row.endswith(" OK") for row in rows), "\n".join(rows)
    assert states == ["active", "cooled", "defaulted"]
    assert "every ledger conserves its money" in demo.stdout


def test_quiet_demo_prints_only_the_ledgers_and_the_verdict() -> None:
    quiet = run_demo("--quiet")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "  #" not in quiet.stdout
    assert "==" in quiet.stdout
    assert "conservation" in quiet.stdout
    assert "every ledger conserves its money" in quiet.stdout
