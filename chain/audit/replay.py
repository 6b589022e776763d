"""``yufu audit replay``: verify a node's whole history and account for every agreement's money.

:func:`replay` runs a :class:`chain.audit.follower.Follower` from genesis to the source's head
on a fresh chain of its own, feeding every verified block's logs to a
:class:`chain.audit.ledger.LedgerBook`. At the end it checks each rebuilt ledger for
conservation (deposited = frozen + released + refunded + upfront) and compares it with the
contract's ``getLedger`` and ``getAgreement``, read from the replayed state at the last
verified block. :func:`write_outputs` writes ``report.json`` and ``agreements.csv``.

The report says which checks ran on every block, how many blocks, transactions and seals were
verified and by whom, every agreement's ledger, and every violation (a block that failed, an
inconsistent event, money not conserved, a ledger that differs from the contract's). ``ok`` is
true only when there is none.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from eth_utils import to_canonical_address
from tqdm import tqdm

from chain.audit.follower import (
    AuditError,
    AuditFailure,
    BlockSource,
    Follower,
    RpcSource,
    StoreSource,
    VerifiedBlock,
)
from chain.audit.ledger import (
    CSV_COLUMNS,
    AgreementLedger,
    LedgerBook,
    LedgerViolation,
    agreement_call,
    compare_with_contract,
    decode_agreement,
    decode_ledger,
    ledger_call,
)
from chain.config import DevnetConfig
from chain.node.rpc import client_version
from chain.node.service import system_addresses

REPORT_NAME = "report.json"
AGREEMENTS_NAME = "agreements.csv"

BLOCK_CHECKS: tuple[str, ...] = (
    "the served header fields hash to the served block hash",
    "the parent hash is the previous verified block",
    "the seal is a signature over the block hash by a validator of the set at the parent "
    "(the configured validators before the Membership contract, getValidators() after)",
    "every transaction rebuilt from the served fields hashes to its served hash",
    "the permissioning contract allows every transaction at the parent state",
    "re-executing the transactions in the served header gives the served state root, "
    "transactions root, receipts root, logs bloom, gas used, base fee and block hash",
    "every served receipt (status, cumulative gas, bloom, logs) equals the re-executed one",
)
AGREEMENT_CHECKS: tuple[str, ...] = (
    "conservation: deposited = frozen + released + refunded + upfront",
    "events consistent with the contract's arithmetic (funding split, release sequence, "
    "settlement, payouts within entitlement)",
    "rebuilt ledger equals getLedger, and state and consumption equal getAgreement, at the "
    "last verified block",
)


@dataclass
class ReplayResult:
    """What a replay found."""

    report: dict[str, Any]
    agreements: list[AgreementLedger]
    failure: AuditFailure | None
    violations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def open_source(rpc: str | None = None, data_dir: Path | None = None) -> BlockSource:
    """A block source: a node's JSON-RPC URL or its data directory (exactly one)."""
    if (rpc is None) == (data_dir is None):
        raise AuditError("give exactly one of a JSON-RPC URL and a data directory")
    if rpc is not None:
        return RpcSource(rpc)
    assert data_dir is not None
    return StoreSource(data_dir)


@contextmanager
def _work_dir(path: Path | None) -> Iterator[Path]:
    if path is None:
        with tempfile.TemporaryDirectory(prefix="yufu-replay-") as temporary:
            yield Path(temporary)
        return
    if (path / "chain.sqlite").exists():
        raise AuditError(
            f"{path} already holds a chain; a replay starts from genesis in an empty directory"
        )
    path.mkdir(parents=True, exist_ok=True)
    yield path


def replay(
    config: DevnetConfig,
    source: BlockSource,
    *,
    work_dir: Path | None = None,
    progress: bool = False,
    progress_stream: TextIO | None = None,
    check_permissions: bool = True,
) -> ReplayResult:
    """Replay ``source`` from genesis to its current head and audit every agreement.

    Parameters
    ----------
    config
        The configuration the node runs.
    source
        Where the history comes from.
    work_dir
        An empty directory for the replayed chain (kept); a temporary one by default.
    progress
        Show a progress bar (on ``progress_stream``, standard error by default).
    check_permissions
        Ask the permissioning contract about every transaction at its parent block.

    Raises
    ------
    AuditError
        The source cannot be read (no node at the URL, no data directory, another chain id).
    """
    started_at = datetime.now(UTC)
    started = time.monotonic()
    addresses = system_addresses(config)
    book_address = to_canonical_address(addresses.book)
    book = LedgerBook(
        book_address,
        to_canonical_address(addresses.insurance),
        to_canonical_address(addresses.custody),
    )
    with _work_dir(work_dir) as directory:
        follower = Follower(config, directory, check_permissions=check_permissions)
        follower.listeners.append(lambda verified: _feed(book, verified))
        failure: AuditFailure | None = None
        try:
            try:
                follower.check_source(source)
                target = source.head_number()
                _sync_with_progress(follower, source, target, progress, progress_stream)
            except AuditFailure as found:
                failure = found
                target = max(follower.source_head or 0, found.block_number)
            seconds = time.monotonic() - started
            head = follower.node.head()
            violations: list[dict[str, Any]] = []
            if failure is not None:
                violations += [
                    {"kind": "block", "blockNumber": failure.block_number, **d.as_dict()}
                    for d in failure.discrepancies
                ]
            ledger_violations = list(book.violations) + book.conservation_violations()
            contract_violations = _cross_check(follower, book, book_address, head)
            violations += [
                {"kind": "ledger", **violation.as_dict()} for violation in ledger_violations
            ]
            violations += [
                {"kind": "contract", **violation.as_dict()} for violation in contract_violations
            ]
            agreements = sorted(
                book.agreements.values(), key=lambda a: (a.opened_block, a.agreement_id)
            )
            report = _report(
                config=config,
                source=source,
                follower=follower,
                book=book,
                agreements=agreements,
                failure=failure,
                violations=violations,
                target=target,
                started_at=started_at,
                seconds=seconds,
            )
        finally:
            follower.close()
    return ReplayResult(report, agreements, failure, violations)


def _sync_with_progress(
    follower: Follower,
    source: BlockSource,
    target: int,
    progress: bool,
    stream: TextIO | None,
) -> None:
    bar = tqdm(
        total=target,
        initial=follower.head_number(),
        unit="block",
        desc="replaying",
        disable=not progress,
        file=stream or sys.stderr,
        dynamic_ncols=True,
    )
    try:

        def advance(verified: VerifiedBlock) -> None:
            bar.update(1)
            bar.set_postfix(
                txs=follower.stats.transactions, block=verified.block.number, refresh=False
            )

        follower.sync(source, until=target, progress=advance)
    finally:
        bar.close()


def _feed(book: LedgerBook, verified: VerifiedBlock) -> None:
    block = verified.block
    log_index = 0
    for transaction, receipt in zip(block.transactions, verified.receipts, strict=True):
        logs = [
            (
                bytes(log.address),
                [topic.to_bytes(32, "big") for topic in log.topics],
                bytes(log.data),
            )
            for log in receipt.logs
        ]
        book.apply_logs(int(block.number), bytes(transaction.hash), logs, log_index)
        log_index += len(logs)


def _cross_check(
    follower: Follower, book: LedgerBook, book_address: bytes, head: Any
) -> list[LedgerViolation]:
    """Compare every rebuilt ledger with ``getLedger`` and ``getAgreement`` at ``head``."""
    agreements = list(book.agreements.values())
    if not agreements:
        return []
    calls: list[tuple[bytes, bytes]] = []
    for agreement in agreements:
        calls.append((book_address, ledger_call(agreement.agreement_id)))
        calls.append((book_address, agreement_call(agreement.agreement_id)))
    outputs = follower.view_calls(calls, head)
    found: list[LedgerViolation] = []
    for index, agreement in enumerate(agreements):
        ledger_output, agreement_output = outputs[2 * index], outputs[2 * index + 1]
        try:
            if isinstance(ledger_output, str) or isinstance(agreement_output, str):
                raise ValueError(
                    ledger_output if isinstance(ledger_output, str) else agreement_output
                )
            ledger = decode_ledger(ledger_output)
            stored = decode_agreement(agreement_output)
        except Exception as error:  # noqa: BLE001 - an unreadable ledger is a finding
            agreement.contract_matches = False
            found.append(
                LedgerViolation(
                    agreement.agreement_id,
                    "getLedger and getAgreement readable",
                    "their values",
                    "an error",
                    None,
                    str(error),
                )
            )
            continue
        found += compare_with_contract(agreement, ledger, stored)
    return found


def _report(
    *,
    config: DevnetConfig,
    source: BlockSource,
    follower: Follower,
    book: LedgerBook,
    agreements: list[AgreementLedger],
    failure: AuditFailure | None,
    violations: list[dict[str, Any]],
    target: int,
    started_at: datetime,
    seconds: float,
) -> dict[str, Any]:
    head = follower.node.head()
    genesis = follower.node.block_by_number(0)
    stats = follower.stats
    records = book.records()
    conserved = sum(1 for agreement in agreements if agreement.conserved())
    matching = sum(1 for agreement in agreements if agreement.contract_matches)
    return {
        "tool": "yufu audit replay",
        "version": client_version(),
        "source": source.description,
        "chainId": config.chain.chain_id,
        "genesisHash": "0x" + bytes(genesis.hash).hex(),
        "startedAt": started_at.isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "ok": not violations,
        "blocks": {
            "sourceHead": target,
            "verifiedThrough": int(head.block_number),
            "verified": stats.blocks,
            "transactions": stats.transactions,
            "sealsVerified": stats.blocks,
            "sealers": dict(sorted(stats.seals_by_sealer.items())),
            "permissionChecks": stats.permission_checks,
            "gasUsed": stats.gas_used,
            "headHash": "0x" + bytes(head.hash).hex(),
            "headStateRoot": "0x" + bytes(head.state_root).hex(),
            "checks": list(BLOCK_CHECKS),
            "stoppedAt": None if failure is None else failure.report(),
        },
        "throughput": {
            "blocksPerSecond": round(stats.blocks / seconds, 2) if seconds else None,
            "transactionsPerSecond": round(stats.transactions / seconds, 2) if seconds else None,
            "consumptionRecordsPerSecond": round(records / seconds, 2) if seconds else None,
        },
        "agreements": {
            "count": len(agreements),
            "conserved": conserved,
            "matchContract": matching,
            "consumptionRecords": records,
            "events": dict(sorted(book.event_counts.items())),
            "checks": list(AGREEMENT_CHECKS),
            "ledgers": [agreement.as_dict() for agreement in agreements],
        },
        "violations": violations,
    }


def write_outputs(result: ReplayResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``agreements.csv`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / REPORT_NAME
    report_path.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    csv_path = out_dir / AGREEMENTS_NAME
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for agreement in result.agreements:
            row = agreement.as_dict()
            writer.writerow({column: _csv_value(row[column]) for column in CSV_COLUMNS})
    return report_path, csv_path


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def summary(result: ReplayResult) -> str:
    """A few lines for the terminal."""
    blocks = result.report["blocks"]
    agreements = result.report["agreements"]
    sealers = ", ".join(f"{a} ({n})" for a, n in blocks["sealers"].items()) or "none"
    lines = [
        f"Replayed {result.report['source']} in {result.report['seconds']} s",
        f"  blocks verified: {blocks['verified']} (through block {blocks['verifiedThrough']} "
        f"of {blocks['sourceHead']}), transactions: {blocks['transactions']}, "
        f"seals verified: {blocks['sealsVerified']} by {sealers}",
        f"  agreements: {agreements['count']} rebuilt from events, {agreements['conserved']} "
        f"conserved, {agreements['matchContract']} equal to getLedger; "
        f"{agreements['consumptionRecords']} consumption records",
    ]
    if result.failure is not None:
        lines.append("  " + result.failure.describe().replace("\n", "\n  "))
    if result.ok:
        lines.append("  no violations")
    else:
        lines.append(f"  {len(result.violations)} violation(s):")
        for violation in result.violations[:20]:
            lines.append("    - " + _describe_violation(violation))
        if len(result.violations) > 20:
            lines.append(f"    ... and {len(result.violations) - 20} more in the report")
    return "\n".join(lines)


def _describe_violation(violation: dict[str, Any]) -> str:
    where = (
        f"block {violation['blockNumber']}"
        if "agreementId" not in violation
        else f"agreement {violation['agreementId']}"
    )
    what = violation.get("field") or violation.get("check")
    expected, got = violation["expected"], violation["got"]
    return f"{violation['kind']}: {where}: {what}: expected {expected}, got {got}"
