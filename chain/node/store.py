"""Durable storage for the Yufu node, on SQLite.

py-evm 0.12 keeps its chain in a key-value database (``DatabaseAPI``). ``ChainStore`` is that
database on a SQLite file, with one difference that makes blocks atomic: writes made while a
block is built are buffered in memory and reach the file in one SQLite transaction, together
with the node's own records of that block (its seal, its log index entries, and the removal of
its transactions from the mempool journal). A crash before that transaction commits leaves the
file at the previous block; a crash after leaves it at the new one. Nothing in between exists.

The mempool journal is written and committed before the node acknowledges a transaction, so
a transaction whose hash the node returned is either in a committed block or in the journal.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from eth.db.backends.base import BaseDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mempool (
    tx_hash BLOB PRIMARY KEY, sender BLOB NOT NULL, nonce INTEGER NOT NULL,
    raw BLOB NOT NULL, received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seals (
    block_hash BLOB PRIMARY KEY, block_number INTEGER NOT NULL, sealer BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    block_number INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL, block_hash BLOB NOT NULL, address BLOB NOT NULL,
    topic0 BLOB, topic1 BLOB, topic2 BLOB, topic3 BLOB, data BLOB NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS logs_by_address ON logs (address, block_number);
CREATE INDEX IF NOT EXISTS logs_by_topic0 ON logs (topic0, block_number);
CREATE INDEX IF NOT EXISTS logs_by_topic1 ON logs (topic1, block_number);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

_DELETED = object()


@dataclass(frozen=True)
class LogRecord:
    """One log as the index keeps it."""

    block_number: int
    log_index: int
    tx_index: int
    tx_hash: bytes
    block_hash: bytes
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class JournalEntry:
    """A transaction the node acknowledged and has not yet sealed."""

    tx_hash: bytes
    sender: bytes
    nonce: int
    raw: bytes


@dataclass(frozen=True)
class Seal:
    """A validator's signature over a block hash."""

    block_hash: bytes
    block_number: int
    sealer: bytes
    signature: bytes


class ChainStore(BaseDB):
    """py-evm's key-value database on SQLite, with block-atomic commits.

    Parameters
    ----------
    path
        The SQLite file; created with its tables when missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection shared by the producer and the RPC threads, guarded by a lock.
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._pending: dict[bytes, object] = {}
        self._pending_logs: list[LogRecord] = []
        self._pending_seals: list[Seal] = []
        self._pending_meta: dict[str, bytes] = {}
        self._sealed_transactions: list[bytes] = []
        # Dev-only (``run --dev``, ``evm_revert``): drop node records above this block.
        self._pending_rewind: int | None = None

    # ------------------------------------------------------------ DatabaseAPI

    def __getitem__(self, key: bytes) -> bytes:
        with self._lock:
            value = self._pending.get(key)
            if value is _DELETED:
                raise KeyError(key)
            if value is not None:
                return value  # type: ignore[return-value]
            row = self._connection.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._pending[bytes(key)] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        with self._lock:
            if not self._exists(key):
                raise KeyError(key)
            self._pending[bytes(key)] = _DELETED

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError("ChainStore does not iterate its keys")

    def __len__(self) -> int:
        raise NotImplementedError("ChainStore does not count its keys")

    # ------------------------------------------------------------ block commits

    def stage_block_records(
        self,
        seal: Seal | None,
        logs: Iterable[LogRecord],
        sealed_transactions: Iterable[bytes],
        meta: dict[str, bytes] | None = None,
    ) -> None:
        """Add the node's records of the block being built to the next commit."""
        with self._lock:
            if seal is not None:
                self._pending_seals.append(seal)
            self._pending_logs.extend(logs)
            self._sealed_transactions.extend(sealed_transactions)
            self._pending_meta.update(meta or {})

    def commit(self) -> None:
        """Write everything buffered in one SQLite transaction (all or nothing)."""
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                if self._pending_rewind is not None:  # dev-only: evm_revert
                    self._apply_rewind(cursor, self._pending_rewind)
                writes = [(k, v) for k, v in self._pending.items() if v is not _DELETED]
                deletes = [(k,) for k, v in self._pending.items() if v is _DELETED]
                cursor.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", writes)
                cursor.executemany("DELETE FROM kv WHERE key = ?", deletes)
                cursor.executemany(
                    "INSERT INTO seals (block_hash, block_number, sealer, signature) "
                    "VALUES (?, ?, ?, ?)",
                    [
                        (s.block_hash, s.block_number, s.sealer, s.signature)
                        for s in self._pending_seals
                    ],
                )
                cursor.executemany(
                    "INSERT INTO logs (block_number, log_index, tx_index, tx_hash, block_hash, "
                    "address, topic0, topic1, topic2, topic3, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_log_row(log) for log in self._pending_logs],
                )
                cursor.executemany(
                    "DELETE FROM mempool WHERE tx_hash = ?",
                    [(tx_hash,) for tx_hash in self._sealed_transactions],
                )
                cursor.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    list(self._pending_meta.items()),
                )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                self.discard()

    def discard(self) -> None:
        """Forget everything buffered since the last commit."""
        with self._lock:
            self._pending = {}
            self._pending_logs = []
            self._pending_seals = []
            self._pending_meta = {}
            self._sealed_transactions = []
            self._pending_rewind = None

    # ------------------------------------------------------------ dev-only: rewinding

    def stage_rewind(self, block_number: int) -> None:
        """Dev-only (``evm_revert``): with the next commit, drop the seals and log index rows
        of every block above ``block_number`` and empty the mempool journal."""
        with self._lock:
            self._pending_rewind = block_number

    @staticmethod
    def _apply_rewind(cursor: sqlite3.Cursor, block_number: int) -> None:
        cursor.execute("DELETE FROM seals WHERE block_number > ?", (block_number,))
        cursor.execute("DELETE FROM logs WHERE block_number > ?", (block_number,))
        cursor.execute("DELETE FROM mempool")

    # ------------------------------------------------------------ mempool journal

    def journal_transaction(self, entry: JournalEntry) -> None:
        """Durably record an acknowledged transaction, before its hash is returned."""
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO mempool (tx_hash, sender, nonce, raw, received_at) "
                "VALUES (?, ?, ?, ?, julianday('now'))",
                (entry.tx_hash, entry.sender, entry.nonce, entry.raw),
            )

    def drop_journaled(self, tx_hashes: Iterable[bytes]) -> None:
        """Remove transactions from the journal (replaced or no longer valid)."""
        with self._lock:
            self._connection.executemany(
                "DELETE FROM mempool WHERE tx_hash = ?", [(h,) for h in tx_hashes]
            )

    def journaled_transactions(self) -> list[JournalEntry]:
        """Every acknowledged, unsealed transaction, oldest first."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT tx_hash, sender, nonce, raw FROM mempool ORDER BY received_at, nonce"
            ).fetchall()
        return [JournalEntry(bytes(a), bytes(b), int(c), bytes(d)) for a, b, c, d in rows]

    # ------------------------------------------------------------ reads of node records

    def seal_of(self, block_hash: bytes) -> Seal | None:
        """The seal of a committed block."""
        with self._lock:
            row = self._connection.execute(
                "SELECT block_hash, block_number, sealer, signature FROM seals "
                "WHERE block_hash = ?",
                (block_hash,),
            ).fetchone()
        if row is None:
            return None
        return Seal(bytes(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))

    def query_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: list[bytes],
        topics: list[list[bytes] | None],
        limit: int,
    ) -> list[LogRecord]:
        """Logs in [from_block, to_block] matching addresses and topic positions, from the index.

        ``topics[i]`` is None (any value) or a list of accepted values for topic ``i``.
        """
        clauses = ["block_number BETWEEN ? AND ?"]
        params: list[object] = [from_block, to_block]
        if addresses:
            clauses.append(f"address IN ({','.join('?' * len(addresses))})")
            params.extend(addresses)
        for position, accepted in enumerate(topics[:4]):
            if accepted:
                clauses.append(f"topic{position} IN ({','.join('?' * len(accepted))})")
                params.extend(accepted)
        sql = (
            "SELECT block_number, log_index, tx_index, tx_hash, block_hash, address, "
            "topic0, topic1, topic2, topic3, data FROM logs WHERE "
            + " AND ".join(clauses)
            + " ORDER BY block_number, log_index LIMIT ?"
        )
        params.append(limit + 1)
        with self._lock:
            rows = self._connection.execute(sql, params).fetchall()
        return [_log_from_row(row) for row in rows]

    def meta(self, key: str) -> bytes | None:
        """A committed node setting."""
        with self._lock:
            row = self._connection.execute(
                "SELECT value FROM meta WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self._connection.close()


def _log_row(log: LogRecord) -> tuple[object, ...]:
    topics = list(log.topics[:4]) + [None] * (4 - min(len(log.topics), 4))
    return (
        log.block_number,
        log.log_index,
        log.tx_index,
        log.tx_hash,
        log.block_hash,
        log.address,
        *topics,
        log.data,
    )


def _log_from_row(row: tuple[object, ...]) -> LogRecord:
    topics = tuple(bytes(cast(bytes, t)) for t in row[6:10] if t is not None)
    return LogRecord(
        block_number=int(row[0]),  # type: ignore[call-overload]
        log_index=int(row[1]),  # type: ignore[call-overload]
        tx_index=int(row[2]),  # type: ignore[call-overload]
        tx_hash=bytes(row[3]),  # type: ignore[call-overload]
        block_hash=bytes(row[4]),  # type: ignore[call-overload]
        address=bytes(row[5]),  # type: ignore[call-overload]
        topics=topics,
        data=bytes(row[10]),  # type: ignore[call-overload]
    )
