"""``yufu audit replay`` end to end, and the ledger rebuild on its own.

The history (see conftest) is replayed over JSON-RPC from a running node, then from the data
directory of the stopped node: both must verify every block, rebuild the four agreements'
ledgers from events, find money conserved and equal to the contract's ``getLedger``, and agree
with each other. A tampered data directory makes the command exit 1 with the block named.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chain import views as v
from chain.audit.ledger import DecodedEvent, LedgerBook, compare_with_contract
from chain.cli import main as yufu_main
from chain.config import DevnetConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATES = {
    "consumed": "ACTIVE",
    "cooled_off": "COOLED_OFF",
    "terminated": "TERMINATED",
    "signed": "SIGNED",
}


@dataclass(frozen=True)
class Replayed:
    code: int
    output: str
    report: dict[str, Any]
    rows: list[dict[str, str]]

    def ledgers(self) -> dict[str, dict[str, Any]]:
        return {ledger["agreement_id"]: ledger for ledger in self.report["agreements"]["ledgers"]}


def yufu(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The installed ``yufu`` command (``python -m chain.cli`` when the script is missing)."""
    script = Path(sys.executable).parent / "yufu"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "chain.cli"]
    return subprocess.run(
        [*command, *arguments], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


def replay_to(out: Path, *source: str) -> Replayed:
    done = yufu("audit", "replay", *source, "--out", str(out), "--no-progress")
    output = done.stdout + done.stderr
    assert (out / "report.json").exists(), output
    report = json.loads((out / "report.json").read_text())
    with (out / "agreements.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return Replayed(done.returncode, output, report, rows)


@pytest.fixture(scope="module")
def replays(
    history: Any,
    new_node_process: Callable[[Path, Path], Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Replayed, Replayed]:
    """The history replayed over JSON-RPC (node running), then from the stopped node's disk."""
    root = tmp_path_factory.mktemp("replays")
    data_dir = root / "data"
    shutil.copytree(history.data_dir, data_dir)
    node = new_node_process(data_dir, root / "node.log")
    try:
        node.start()
        over_rpc = replay_to(root / "over-rpc", "--rpc", node.url)
        assert node.stop() == 0
    finally:
        node.kill()
    from_disk = replay_to(root / "from-disk", "--data-dir", str(data_dir))
    return over_rpc, from_disk


def _hex(agreement_id: bytes) -> str:
    return "0x" + agreement_id.hex()


def test_a_replay_over_json_rpc_verifies_every_block_and_seal(
    replays: tuple[Replayed, Replayed], history: Any, config: DevnetConfig
) -> None:
    replayed, _ = replays
    assert replayed.code == 0, replayed.output
    report = replayed.report
    assert report["ok"] is True and report["violations"] == []
    assert report["source"].startswith("JSON-RPC http://")
    blocks = report["blocks"]
    assert blocks["verified"] == blocks["verifiedThrough"] == blocks["sourceHead"] == history.head
    assert blocks["transactions"] == history.transactions
    assert blocks["sealsVerified"] == history.head
    assert blocks["sealers"] == {config.validators[0].address: history.head}
    assert blocks["permissionChecks"] == history.transactions
    assert blocks["stoppedAt"] is None
    assert any("seal" in check for check in blocks["checks"])
    assert "no violations" in replayed.output
    assert "report.json" in replayed.output and "agreements.csv" in replayed.output


def test_every_agreement_is_rebuilt_conserved_and_equal_to_the_contract(
    replays: tuple[Replayed, Replayed], history: Any
) -> None:
    replayed, _ = replays
    agreements = replayed.report["agreements"]
    assert agreements["count"] == agreements["conserved"] == agreements["matchContract"] == 4
    assert agreements["consumptionRecords"] == 4
    ledgers = replayed.ledgers()
    assert set(ledgers) == {_hex(agreement) for agreement in history.agreements.values()}
    for name, agreement_id in history.agreements.items():
        ledger = ledgers[_hex(agreement_id)]
        assert ledger["state"] == STATES[name], name
        assert ledger["conserved"] is True and ledger["matches_contract"] is True, name
        assert ledger["deposited"] == (
            ledger["frozen"] + ledger["released"] + ledger["refunded"] + ledger["upfront"]
        )

    consumed = ledgers[_hex(history.agreements["consumed"])]
    assert (consumed["records"], consumed["units_consumed"]) == (3, 4)
    assert consumed["deposited"] == 100_000 and consumed["released"] > 0
    assert consumed["paid_to_merchant"] == consumed["upfront"]

    cooled = ledgers[_hex(history.agreements["cooled_off"])]
    assert cooled["frozen"] == 0 and cooled["refund_due"] == cooled["total_paid"]
    # The upfront share waits out the cooling-off period: custody refunds everything.
    assert cooled["merchant_owed"] == 0 and cooled["paid_to_merchant"] == 0
    assert cooled["paid_to_consumer"] == cooled["refunded"] == cooled["total_paid"]

    terminated = ledgers[_hex(history.agreements["terminated"])]
    assert terminated["frozen"] == 0 and terminated["refunded"] > 0
    assert terminated["units_consumed"] == 3

    signed = ledgers[_hex(history.agreements["signed"])]
    assert signed["deposited"] == 0 and signed["funded_block"] is None

    rows = {row["agreement_id"]: row for row in replayed.rows}
    assert set(rows) == set(ledgers)
    for agreement_id, row in rows.items():
        assert row["conserved"] == row["matches_contract"] == "yes"
        for field in ("deposited", "frozen", "released", "refunded", "upfront"):
            assert int(row[field]) == ledgers[agreement_id][field]


def test_a_replay_from_the_data_directory_agrees_with_the_one_over_json_rpc(
    replays: tuple[Replayed, Replayed],
) -> None:
    over_rpc, from_disk = replays
    assert from_disk.code == 0, from_disk.output
    assert from_disk.report["source"].startswith("data directory ")
    assert from_disk.report["ok"] is True
    for key in ("verified", "transactions", "sealers", "headHash", "headStateRoot"):
        assert from_disk.report["blocks"][key] == over_rpc.report["blocks"][key], key
    assert from_disk.report["genesisHash"] == over_rpc.report["genesisHash"]
    assert from_disk.ledgers() == over_rpc.ledgers()
    assert from_disk.rows == over_rpc.rows


def test_a_tampered_history_fails_the_replay(
    tamper: Callable[[str, Path], Any], copy_history: Callable[[], Path], tmp_path: Path
) -> None:
    data_dir = copy_history()
    tampered = tamper("state root", data_dir)
    replayed = replay_to(tmp_path / "out", "--data-dir", str(data_dir))
    assert replayed.code == 1, replayed.output
    report = replayed.report
    assert report["ok"] is False
    assert report["blocks"]["stoppedAt"]["blockNumber"] == tampered.block_number
    assert report["blocks"]["verifiedThrough"] == tampered.block_number - 1
    named = [
        violation
        for violation in report["violations"]
        if violation["kind"] == "block" and violation["field"] == "stateRoot"
    ]
    assert named and named[0]["blockNumber"] == tampered.block_number
    assert f"block {tampered.block_number}" in replayed.output


def test_a_replay_that_cannot_run_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    missing = yufu_main(["audit", "replay", "--data-dir", str(tmp_path / "none"), "--out", out])
    assert missing == 2
    assert "does not exist" in capsys.readouterr().err
    # Nothing listens on port 9 (discard) of the loopback interface here.
    unreachable = yufu_main(["audit", "replay", "--rpc", "http://127.0.0.1:9", "--out", out])
    assert unreachable == 2
    assert "no usable answer" in capsys.readouterr().err


def test_yufu_is_the_entry_point_and_delegates_node_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name="yufu")
    assert entry.value == "chain.cli:main"
    with pytest.raises(SystemExit) as exited:
        yufu_main(["node", "bootstrap", "--help"])
    assert exited.value.code == 0
    assert "--url" in capsys.readouterr().out


# ---------------------------------------------------------------- the rebuild on its own

BOOK = b"\xb0" * 20
INSURANCE = b"\x1e" * 20
AGREEMENT = b"\xa9" * 32
MERCHANT = "0x" + "11" * 20
CONSUMER = "0x" + "22" * 20


def _event(name: str, block: int = 1, **args: Any) -> DecodedEvent:
    return DecodedEvent("AgreementBook", name, {"agreementId": AGREEMENT, **args}, block, b"", 0)


def _opened_and_funded(book: LedgerBook, frozen: int, upfront: int) -> None:
    book.apply(
        _event(
            "AgreementOpened",
            merchant=MERCHANT,
            consumer=CONSUMER,
            templateId=1,
            units=10,
            unitPrice=1_000,
            totalPaid=10_000,
            bonus=0,
            expiry=2**40,
            documentHash=b"\0" * 32,
        )
    )
    book.apply(
        _event(
            "AgreementFunded",
            block=2,
            bankReference=b"\1" * 32,
            merchant=MERCHANT,
            deposited=10_000,
            frozen=frozen,
            upfront=upfront,
            custodyBps=3_000,
        )
    )


def test_the_rebuild_follows_the_contract_arithmetic() -> None:
    book = LedgerBook(BOOK, INSURANCE)
    _opened_and_funded(book, frozen=3_000, upfront=7_000)
    book.apply(_event("FundsReleased", merchant=MERCHANT, reason=0, amount=7_000))
    book.apply(_event("ConsumptionRecorded", sequence=1, merchant=MERCHANT, units=2, amount=2_000))
    book.apply(_event("FundsReleased", merchant=MERCHANT, reason=1, amount=600))
    # Terminate: refund 8,000; custody pays the 2,400 frozen and reclaims 5,600 unpaid upfront.
    book.apply(_event("EntitlementReclaimed", merchant=MERCHANT, amount=5_600))
    book.apply(
        _event(
            "RefundGranted",
            consumer=CONSUMER,
            reason=1,
            refund=8_000,
            fromCustody=8_000,
            shortfall=0,
        )
    )
    book.apply(_event("AgreementClosed", state=5))
    ledger = book.agreements[AGREEMENT]
    assert (ledger.frozen, ledger.released, ledger.refunded, ledger.upfront) == (0, 0, 8_000, 2_000)
    assert ledger.conserved() and book.violations == [] and book.conservation_violations() == []


def test_the_rebuild_reports_money_that_is_not_conserved() -> None:
    book = LedgerBook(BOOK, INSURANCE)
    _opened_and_funded(book, frozen=3_000, upfront=6_000)  # 1,000 fen went nowhere
    checks = {violation.check for violation in book.violations}
    assert "frozen + upfront at funding" in checks
    (lost,) = book.conservation_violations()
    assert (lost.expected, lost.got) == ("10000", "9000")
    assert lost.agreement_id == AGREEMENT


def test_the_rebuild_reports_a_gap_in_consumption_and_an_overpaid_merchant() -> None:
    book = LedgerBook(BOOK, INSURANCE)
    _opened_and_funded(book, frozen=3_000, upfront=7_000)
    book.apply(_event("ConsumptionRecorded", sequence=2, merchant=MERCHANT, units=1, amount=1_000))
    book.apply(
        _event(
            "PayoutConfirmed",
            bankReference=b"\2" * 32,
            payee=0,
            amount=9_000,
            instructionId=b"\3" * 32,
        )
    )
    found = {violation.check: violation for violation in book.violations}
    assert (found["consumption sequence"].expected, found["consumption sequence"].got) == ("1", "2")
    assert found["merchant paid within entitlement"].got == "9000"


def test_a_ledger_that_differs_from_the_contract_is_reported() -> None:
    book = LedgerBook(BOOK, INSURANCE)
    _opened_and_funded(book, frozen=3_000, upfront=7_000)
    agreement = book.agreements[AGREEMENT]
    on_chain = v.Ledger(10_000, 3_000, 500, 0, 7_000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    stored = v.Agreement(
        MERCHANT, 1, 2, 3_000, False, CONSUMER, 2**40, b"\0" * 32, 10, 0, 1, 0, 1_000, 10_000, 0, 0
    )
    (differs,) = compare_with_contract(agreement, on_chain, stored)
    assert (differs.check, differs.expected, differs.got) == ("getLedger.released", "0", "500")
    assert agreement.contract_matches is False


def test_the_rebuild_settles_a_default_with_the_insurance_claim() -> None:
    book = LedgerBook(BOOK, INSURANCE)
    _opened_and_funded(book, frozen=3_000, upfront=7_000)
    book.apply(
        _event(
            "PayoutConfirmed",
            bankReference=b"\2" * 32,
            payee=0,
            amount=7_000,
            instructionId=b"\3" * 32,
        )
    )
    # Default: custody refunds the 3,000 frozen; the 7,000 already paid out is the shortfall.
    book.apply(
        _event(
            "RefundGranted",
            consumer=CONSUMER,
            reason=3,
            refund=10_000,
            fromCustody=3_000,
            shortfall=7_000,
        )
    )
    book.apply(_event("AgreementClosed", state=7))
    book.apply(
        _event(
            "ClaimOpened",
            claimId=1,
            merchant=MERCHANT,
            policyId=1,
            consumer=CONSUMER,
            loss=7_000,
            covered=5_000,
        )
    )
    ledger = book.agreements[AGREEMENT]
    assert ledger.ledger() == v.Ledger(
        10_000, 0, 0, 3_000, 7_000, 10_000, 2_000, 5_000, 7_000, 0, 0, 0, 0, 0, 0
    )
    assert ledger.state_name() == "DEFAULTED"
    assert ledger.conserved() and book.violations == []


def test_the_rebuild_reports_claim_parts_beyond_the_claims_cover() -> None:
    book = LedgerBook(BOOK, INSURANCE)
    _opened_and_funded(book, frozen=3_000, upfront=7_000)
    book.apply(
        _event(
            "RefundGranted",
            consumer=CONSUMER,
            reason=3,
            refund=10_000,
            fromCustody=3_000,
            shortfall=7_000,
        )
    )
    book.apply(
        _event(
            "ClaimOpened",
            claimId=1,
            merchant=MERCHANT,
            policyId=1,
            consumer=CONSUMER,
            loss=7_000,
            covered=5_000,
        )
    )
    book.apply(_event("ClaimCovered", claimId=1, policyId=1, amount=4_000))
    assert book.violations == []
    book.apply(_event("ClaimCovered", claimId=1, policyId=2, amount=2_000))
    (beyond,) = book.violations
    assert (beyond.check, beyond.expected, beyond.got) == (
        "claim 1's parts within its cover",
        "1000",
        "2000",
    )
