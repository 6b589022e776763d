"""The oracle's memory on disk: one SQLite database and a folder of evidence files.

Everything the oracle must not forget across a crash lives here: the position reached in each
feed (cursors), the chain actions it owes (the outbox, see :mod:`oracle.outbox`), the payment
instructions it sent the bank, who paid into each agreement (refunds go back there), the
merchants whose licences it watches, reports parked for the regulator, and an index of the
evidence files. A caller groups its writes in :meth:`OracleStore.transaction`, so a fact and
the cursor that moved past it are committed together or not at all.

Evidence files are kept byte for byte under ``evidence/<sha256>``: a court holding an on-chain
hash asks for the original with that name and checks the hash itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    feed TEXT PRIMARY KEY,
    position TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at REAL NOT NULL,
    refs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    nonce INTEGER,
    tx_hash TEXT,
    raw_tx BLOB,
    block_number INTEGER,
    note TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_by_state ON actions (state, id);
CREATE TABLE IF NOT EXISTS instructions (
    instruction_id TEXT PRIMARY KEY,
    end_to_end_id TEXT NOT NULL UNIQUE,
    agreement_id TEXT NOT NULL,
    merchant TEXT NOT NULL,
    payee INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    debtor_account TEXT NOT NULL,
    creditor_name TEXT NOT NULL,
    creditor_account TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    status_reason TEXT,
    bank_reference TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instructions_by_state ON instructions (state, created_at);
CREATE TABLE IF NOT EXISTS upfront_due (
    agreement_id TEXT PRIMARY KEY,
    instruction_id TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    queued INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS bank_entries (
    bank_reference TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    credit INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    first_seen_in TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payers (
    agreement_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    account TEXT NOT NULL,
    bank_reference TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS merchants (
    address TEXT PRIMARY KEY,
    uscc TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    industry TEXT NOT NULL,
    custody_account TEXT NOT NULL,
    receiving_account TEXT NOT NULL,
    last_finding TEXT,
    checked_at REAL
);
CREATE TABLE IF NOT EXISTS parked (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    feed TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    evidence TEXT,
    parked_at REAL NOT NULL
);
"""


class StoreInUse(RuntimeError):
    """Another oracle process holds this data directory."""


@dataclass(frozen=True)
class EvidenceRecord:
    """One kept original: its hash, what it is, where it came from."""

    sha256: str
    kind: str
    source: str
    name: str
    size: int
    received_at: float
    refs: dict[str, Any]


class OracleStore:
    """The oracle's SQLite database and evidence folder under ``data_dir``.

    One connection, shared by the oracle's threads under a lock; SQLite in WAL mode with
    ``synchronous=FULL``, so a committed transaction survives a power cut.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.evidence_dir = data_dir / "evidence"
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        # One oracle per data directory: two would spend the same nonces and cursors.
        self._lock_file = (data_dir / "oracle.lock").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreInUse(f"another oracle is using {data_dir}") from None
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            data_dir / "oracle.sqlite", isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lock_file.close()

    # ------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Everything written inside commits together, or not at all on an exception."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        rows = self.query(sql, *args)
        return rows[0] if rows else None

    # ------------------------------------------------------------ cursors

    def cursor(self, feed: str, default: str) -> str:
        row = self.one("SELECT position FROM cursors WHERE feed = ?", feed)
        return default if row is None else str(row["position"])

    @staticmethod
    def move_cursor(db: sqlite3.Connection, feed: str, position: str) -> None:
        db.execute(
            "INSERT INTO cursors (feed, position) VALUES (?, ?) "
            "ON CONFLICT (feed) DO UPDATE SET position = excluded.position",
            (feed, position),
        )

    # ------------------------------------------------------------ evidence

    def keep(
        self,
        data: bytes,
        *,
        kind: str,
        source: str,
        name: str,
        refs: dict[str, Any] | None = None,
        db: sqlite3.Connection | None = None,
    ) -> str:
        """Keep ``data`` as evidence; returns its SHA-256 (hex). Keeping it twice is harmless.

        The file is written and synced before its index row, so an indexed hash always has
        its original on disk. Pass ``db`` to index it inside the caller's transaction.
        """
        digest = hashlib.sha256(data).hexdigest()
        path = self.evidence_path(digest)
        if not path.exists():
            partial = path.with_suffix(".partial")
            with partial.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
            # The rename itself must survive a power cut before the index names the file.
            directory = os.open(self.evidence_dir, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        row = (digest, kind, source, name, len(data), time.time(), json.dumps(refs or {}))
        sql = (
            "INSERT OR IGNORE INTO evidence (sha256, kind, source, name, size, received_at, refs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        if db is not None:
            db.execute(sql, row)
        else:
            with self.transaction() as own:
                own.execute(sql, row)
        return digest

    def evidence_path(self, digest: str) -> Path:
        return self.evidence_dir / digest

    def evidence(self, digest: str) -> tuple[EvidenceRecord, bytes] | None:
        """The index entry and the original bytes of a kept file, or None if unknown."""
        row = self.one("SELECT * FROM evidence WHERE sha256 = ?", digest.lower())
        if row is None:
            return None
        record = _evidence_record(row)
        return record, self.evidence_path(record.sha256).read_bytes()

    def evidence_index(self, limit: int = 1000) -> list[EvidenceRecord]:
        rows = self.query("SELECT * FROM evidence ORDER BY received_at DESC LIMIT ?", limit)
        return [_evidence_record(row) for row in rows]

    # ------------------------------------------------------------ parked reports

    @staticmethod
    def park(
        db: sqlite3.Connection,
        key: str,
        *,
        feed: str,
        reason: str,
        detail: dict[str, Any],
        evidence: str | None = None,
    ) -> None:
        """Set a report aside for the regulator instead of dropping it (once per key)."""
        db.execute(
            "INSERT OR IGNORE INTO parked (key, feed, reason, detail, evidence, parked_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, feed, reason, json.dumps(detail, sort_keys=True), evidence, time.time()),
        )

    def parked(self) -> list[dict[str, Any]]:
        return [
            {
                "key": r["key"],
                "feed": r["feed"],
                "reason": r["reason"],
                "detail": json.loads(r["detail"]),
                "evidence": r["evidence"],
                "parked_at": r["parked_at"],
            }
            for r in self.query("SELECT * FROM parked ORDER BY id")
        ]


def _evidence_record(row: sqlite3.Row) -> EvidenceRecord:
    return EvidenceRecord(
        sha256=row["sha256"],
        kind=row["kind"],
        source=row["source"],
        name=row["name"],
        size=row["size"],
        received_at=row["received_at"],
        refs=json.loads(row["refs"]),
    )
