"""The licence registry simulator's records, kept in one SQLite file.

One row per licence, keyed by unified social credit code. Every write is its own committed
transaction, so a record the simulator answered for survives a restart or a ``kill -9``; the
seed set goes in as one transaction, so a registry is either empty (and seeded on the next
start) or complete.

The store checks nothing about the values it is given: the app validates requests first.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

DATABASE_NAME: Final[str] = "licences.sqlite3"

# The registry is a Chinese one: its timestamps are China Standard Time.
REGISTRY_TIME_ZONE: Final[timezone] = timezone(timedelta(hours=8), "CST")

RECORD_FIELDS: Final[tuple[str, ...]] = (
    "uscc",
    "legal_name",
    "legal_representative",
    "status",
    "licensed_since",
    "business_scope",
    "registration_authority",
    "abnormal_operations",
    "dishonest_debtor",
    "updated_at",
)
_BOOLEAN_FIELDS: Final[frozenset[str]] = frozenset({"abnormal_operations", "dishonest_debtor"})

_SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS licences (
    uscc TEXT PRIMARY KEY,
    legal_name TEXT NOT NULL,
    legal_representative TEXT NOT NULL,
    status TEXT NOT NULL,
    licensed_since TEXT NOT NULL,
    business_scope TEXT NOT NULL,
    registration_authority TEXT NOT NULL,
    abnormal_operations INTEGER NOT NULL,
    dishonest_debtor INTEGER NOT NULL,
    updated_at TEXT NOT NULL
)
"""


def registry_now() -> str:
    """The current time as the registry writes it: ISO 8601, milliseconds, UTC+8."""
    return datetime.now(REGISTRY_TIME_ZONE).isoformat(timespec="milliseconds")


class LicenceStore:
    """The registry's licences in ``<data_dir>/licences.sqlite3``.

    Safe to share between the threads that serve requests: one connection, one lock.
    Records are plain dictionaries with the keys of `RECORD_FIELDS`.
    """

    def __init__(self, data_dir: Path, clock: Callable[[], str] = registry_now) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DATABASE_NAME
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        # Each commit reaches the disk before the request is answered (kill -9 loses nothing).
        self._db.execute("PRAGMA synchronous = FULL")
        with self._db:
            self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the database; the store is unusable afterwards."""
        with self._lock:
            self._db.close()

    def count(self) -> int:
        """How many licences the registry holds."""
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM licences").fetchone()
        return int(count)

    def get(self, uscc: str) -> dict[str, Any] | None:
        """The record of ``uscc``, or ``None`` when the registry has no such licence."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(RECORD_FIELDS)} FROM licences WHERE uscc = ?", (uscc,)
            ).fetchone()
        return None if row is None else _record(row)

    def seed(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Insert ``records`` if the registry is empty, all in one transaction.

        Returns how many were inserted: none when the registry already holds licences.
        """
        updated_at = self._clock()
        with self._lock, self._db:
            (count,) = self._db.execute("SELECT COUNT(*) FROM licences").fetchone()
            if count:
                return 0
            rows = [_row({**record, "updated_at": updated_at}) for record in records]
            self._db.executemany(_UPSERT, rows)
        return len(rows)

    def put(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or replace a licence; ``updated_at`` is set to now.

        Returns the stored record and whether it was created (``False``: replaced).
        """
        stored = {**record, "updated_at": self._clock()}
        with self._lock, self._db:
            existed = (
                self._db.execute(
                    "SELECT 1 FROM licences WHERE uscc = ?", (stored["uscc"],)
                ).fetchone()
                is not None
            )
            self._db.execute(_UPSERT, _row(stored))
        return _record(_row(stored)), not existed

    def update(self, uscc: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        """Change some fields of a licence; ``updated_at`` is set to now.

        Returns the record after the change, or ``None`` when there is no such licence.
        """
        unknown = set(changes) - set(RECORD_FIELDS[1:-1])
        if unknown:
            raise KeyError(f"not a changeable licence field: {', '.join(sorted(unknown))}")
        with self._lock, self._db:
            row = self._db.execute(
                f"SELECT {', '.join(RECORD_FIELDS)} FROM licences WHERE uscc = ?", (uscc,)
            ).fetchone()
            if row is None:
                return None
            stored = {**_record(row), **changes, "updated_at": self._clock()}
            self._db.execute(_UPSERT, _row(stored))
        return _record(_row(stored))


_UPSERT: Final[str] = (
    f"INSERT OR REPLACE INTO licences ({', '.join(RECORD_FIELDS)}) "
    f"VALUES ({', '.join('?' for _ in RECORD_FIELDS)})"
)


def _row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        int(record[name]) if name in _BOOLEAN_FIELDS else record[name] for name in RECORD_FIELDS
    )


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        name: bool(value) if name in _BOOLEAN_FIELDS else value
        for name, value in zip(RECORD_FIELDS, row, strict=True)
    }
