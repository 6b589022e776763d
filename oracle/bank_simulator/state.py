"""The simulated custody bank's books: accounts, bookings, the published files, in SQLite.

Everything the bank knows lives in one SQLite file (WAL, synchronous writes), so a bank that
is killed and started again carries on where it stopped: balances, entries, the file outbox,
pending misbehaviour, the business date and the message ids it has accepted. Every operation
runs in one transaction under one lock; an operation that fails changes nothing.

How the bank behaves (decision 0008):

- A consumer's payment books a credit; an accepted ``pain.001`` books a debit at once. Each
  booking gets a bank reference (``AcctSvcrRef``) ``YFB`` + business day + counter, and is
  published as a ``camt.054`` file, unless a misbehaviour says otherwise. The bank's clock
  is the business day's date at the wall clock's time of day in China: an entry is booked on
  the business day, whatever today's date.
- Every ``pain.001`` received is kept raw with the answer given, refused ones included.
- A ``pain.001`` whose ``MsgId`` was accepted before is refused with ``DU01`` and booked no
  second time; one refused before (``AM04``, ``AC01``) is considered afresh, since its
  instruction was never executed.
- Closing the day releases delayed notifications, publishes one ``camt.053`` per custody
  account, then moves the business date on by one day.
- Files form one ordered sequence (``seq``) across both types; names carry the sequence
  (``camt054-000017.xml``) or the day and account (``camt053-2026-11-25-CUST-....xml``).
- Misbehaviour is a queue: each notification takes the first pending ``drop``, ``duplicate``,
  ``delay`` or ``corrupt`` (published cut off half-way, no longer XML); each statement takes
  the first pending ``wrong_balance``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from oracle import iso20022 as iso

DATABASE_FILE = "bank.sqlite3"
BANK_REFERENCE_PREFIX = "YFB"
NOTIFICATION_MODES: tuple[str, ...] = ("drop", "duplicate", "delay", "corrupt")
STATEMENT_MODES: tuple[str, ...] = ("wrong_balance",)
# ``{seq}`` becomes the file's sequence number in the outbox.
NOTIFICATION_FILE_NAME = "camt054-{seq:06d}.xml"
# A pain.001 status report cannot name the message it answers when the message has no MsgId.
UNKNOWN_MESSAGE_ID = iso.NOT_PROVIDED

# pain.002 reason codes (ISO 20022 ExternalStatusReason1Code).
REASON_DUPLICATE = "DU01"
REASON_INSUFFICIENT_FUNDS = "AM04"
REASON_UNKNOWN_ACCOUNT = "AC01"
REASON_INVALID_FILE = "FF01"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY,
    owner_name TEXT NOT NULL,
    balance_fen INTEGER NOT NULL,
    opened_on TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    bank_reference TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (account_id),
    credit INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    booked_at TEXT NOT NULL,
    business_day TEXT NOT NULL,
    end_to_end_id TEXT,
    counterparty_name TEXT,
    counterparty_account TEXT,
    remittance TEXT,
    -- what became of its camt.054: published, duplicated, delayed, released, dropped, corrupted
    notification TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_account_day ON entries (account_id, business_day);
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    content BLOB NOT NULL,
    published_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS held_notifications (
    id INTEGER PRIMARY KEY,
    entry_id INTEGER NOT NULL REFERENCES entries (id),
    content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS misbehaviour (
    id INTEGER PRIMARY KEY,
    mode TEXT NOT NULL,
    fen INTEGER
);
CREATE TABLE IF NOT EXISTS received_instructions (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content BLOB NOT NULL,
    message_id TEXT,
    status TEXT NOT NULL,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS accepted_messages (
    message_id TEXT PRIMARY KEY,
    instruction_id INTEGER NOT NULL REFERENCES received_instructions (id),
    bank_reference TEXT NOT NULL
);
"""


# ---------------------------------------------------------------- errors


class BankSimulatorError(Exception):
    """Root of the simulator's refusals; the message names the offending value."""


class UnknownAccount(BankSimulatorError):
    """No custody account has this id."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"no custody account {account_id}")
        self.account_id = account_id


class AccountConflict(BankSimulatorError):
    """The account exists with another owner."""

    def __init__(self, account_id: str, owner_name: str) -> None:
        super().__init__(f"custody account {account_id} is already open for {owner_name!r}")


class InvalidInstruction(BankSimulatorError):
    """The request is not a usable ``pain.001`` at all (not XML, or not ISO 20022)."""


class UnknownFile(BankSimulatorError):
    """No published file has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no file named {name!r}")


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class InstructionOutcome:
    """What the bank answers a ``pain.001``: a ``pain.002`` and the HTTP status to send it with."""

    http_status: int
    report: bytes
    status: iso.PaymentStatus


@dataclass(frozen=True)
class DayClosed:
    """The business day just closed and the statements published for it."""

    business_day: date
    statements: list[str]


def china_now() -> datetime:
    """The wall-clock time in China, to the second."""
    return datetime.now(iso.CHINA_TIME).replace(microsecond=0)


def china_today() -> date:
    """Today's date in China."""
    return china_now().date()


class SimulatedBank:
    """The custody bank's books in one SQLite file.

    Parameters
    ----------
    path
        The SQLite file; created with its tables if missing.
    start_day
        The first business day of a new bank; a bank reopened from its file keeps its own date.
    """

    def __init__(self, path: Path, start_day: date) -> None:
        self.path = path
        self._lock = threading.Lock()
        # One connection shared by the server's worker threads, serialised by the lock.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        # Outside a transaction: executescript commits whatever is pending before it runs.
        self._db.executescript(_SCHEMA)
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO settings (key, value) VALUES ('business_day', ?)",
                (start_day.isoformat(),),
            )
            for counter in ("bank_reference", "message"):
                db.execute(
                    "INSERT OR IGNORE INTO settings (key, value) VALUES (?, '0')", (counter,)
                )

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back into the file)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: all of it is committed, or none of it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------ reading

    def business_day(self) -> date:
        """The business day bookings are made on now."""
        with self._transaction() as db:
            return _business_day(db)

    def account(self, account_id: str) -> dict[str, Any]:
        """An account, its balance and every entry booked on it, oldest first."""
        with self._transaction() as db:
            row = _account_row(db, account_id)
            entries = db.execute(
                "SELECT * FROM entries WHERE account_id = ? ORDER BY id", (account_id,)
            ).fetchall()
        return {
            "account_id": row["account_id"],
            "owner_name": row["owner_name"],
            "balance_fen": row["balance_fen"],
            "entries": [_entry_json(entry) for entry in entries],
        }

    def files(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` published files with a sequence number above ``after``, in order."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, name, type, sha256, size FROM files WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [dict(row) for row in rows]

    def file(self, name: str) -> bytes:
        """The bytes of the published file ``name``."""
        with self._transaction() as db:
            row = db.execute("SELECT content FROM files WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownFile(name)
        return bytes(row["content"])

    def pending_misbehaviour(self) -> list[dict[str, Any]]:
        """The misbehaviour still waiting for a notification or statement, in order."""
        with self._transaction() as db:
            return _pending(db)

    # ------------------------------------------------------------ simulator controls

    def open_account(self, account_id: str, owner_name: str) -> bool:
        """Open a custody account; ``False`` if it is already open for the same owner."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT owner_name FROM accounts WHERE account_id = ?", (account_id,)
            ).fetchone()
            if row is not None:
                if row["owner_name"] != owner_name:
                    raise AccountConflict(account_id, row["owner_name"])
                return False
            db.execute(
                "INSERT INTO accounts (account_id, owner_name, balance_fen, opened_on) "
                "VALUES (?, ?, 0, ?)",
                (account_id, owner_name, _business_day(db).isoformat()),
            )
            return True

    def receive_payment(
        self,
        account_id: str,
        amount_fen: int,
        payer: iso.Party,
        payer_reference: str,
        remittance: str,
    ) -> str:
        """Book a consumer's payment into custody as a credit; returns its bank reference."""
        with self._transaction() as db:
            _account_row(db, account_id)
            return _book(
                db,
                account_id=account_id,
                credit=True,
                amount_fen=amount_fen,
                end_to_end_id=payer_reference,
                counterparty=payer,
                remittance=remittance,
            )

    def misbehave(self, mode: str, fen: int | None) -> list[dict[str, Any]]:
        """Queue ``mode`` for the next notification or statement; ``none`` clears the queue."""
        with self._transaction() as db:
            if mode == "none":
                db.execute("DELETE FROM misbehaviour")
            else:
                db.execute("INSERT INTO misbehaviour (mode, fen) VALUES (?, ?)", (mode, fen))
            return _pending(db)

    def close_day(self) -> DayClosed:
        """Release delayed notifications, publish the day's statements, start the next day."""
        with self._transaction() as db:
            day = _business_day(db)
            now = _bank_time(day)
            for held in db.execute("SELECT * FROM held_notifications ORDER BY id").fetchall():
                _publish(db, "camt.054", NOTIFICATION_FILE_NAME, bytes(held["content"]), now)
                db.execute(
                    "UPDATE entries SET notification = 'released' WHERE id = ?",
                    (held["entry_id"],),
                )
            db.execute("DELETE FROM held_notifications")
            names = [
                _publish_statement(db, account, day, now)
                for account in db.execute("SELECT * FROM accounts ORDER BY account_id").fetchall()
            ]
            db.execute(
                "UPDATE settings SET value = ? WHERE key = 'business_day'",
                ((day + timedelta(days=1)).isoformat(),),
            )
        return DayClosed(day, names)

    # ------------------------------------------------------------ payment instructions

    def execute_pain001(self, raw: bytes) -> InstructionOutcome:
        """Answer a ``pain.001``: execute it (``ACCP``) or refuse it (``RJCT`` and a reason).

        The raw message is kept whatever the answer.

        Raises
        ------
        InvalidInstruction
            If ``raw`` is not well-formed XML in an ISO 20022 namespace; it is still kept.
        """
        try:
            iso.document_type(raw)
        except iso.MalformedMessage as error:
            self._keep_unreadable(raw)
            raise InvalidInstruction(f"not a pain.001 message: {error}") from error
        try:
            transfers = iso.parse_pain001(raw)
            if len(transfers) != 1:
                raise iso.MalformedMessage(
                    f"one credit transfer per message expected, found {len(transfers)}"
                )
        except iso.MalformedMessage as error:
            return self._refuse_file(raw, str(error))
        transfer = transfers[0]
        with self._transaction() as db:
            instruction_id = _insert_instruction(db, raw, transfer.message_id)
            accepted = db.execute(
                "SELECT bank_reference FROM accepted_messages WHERE message_id = ?",
                (transfer.message_id,),
            ).fetchone()
            account = db.execute(
                "SELECT * FROM accounts WHERE account_id = ?", (transfer.debtor.account,)
            ).fetchone()
            reason: str | None = None
            info: str | None = None
            if accepted is not None:
                reason = REASON_DUPLICATE
                info = f"MsgId already accepted and booked as {accepted['bank_reference']}"
            elif account is None:
                reason = REASON_UNKNOWN_ACCOUNT
                info = f"no custody account {transfer.debtor.account}"
            elif account["balance_fen"] < transfer.amount_fen:
                reason = REASON_INSUFFICIENT_FUNDS
                info = (
                    f"balance {iso.fen_to_amount(account['balance_fen'])} CNY is less than "
                    f"{iso.fen_to_amount(transfer.amount_fen)} CNY"
                )
            else:
                bank_reference = _book(
                    db,
                    account_id=transfer.debtor.account,
                    credit=False,
                    amount_fen=transfer.amount_fen,
                    end_to_end_id=transfer.end_to_end_id,
                    counterparty=transfer.creditor,
                    remittance=transfer.remittance,
                )
                db.execute(
                    "INSERT INTO accepted_messages (message_id, instruction_id, bank_reference) "
                    "VALUES (?, ?, ?)",
                    (transfer.message_id, instruction_id, bank_reference),
                )
                info = f"booked as {bank_reference}"
            status = iso.PaymentStatus(
                original_message_id=transfer.message_id,
                status=iso.STATUS_REJECTED if reason else iso.STATUS_ACCEPTED,
                reason=reason,
                end_to_end_id=transfer.end_to_end_id,
                additional_info=info,
            )
            db.execute(
                "UPDATE received_instructions SET status = ?, reason = ? WHERE id = ?",
                (status.status, reason, instruction_id),
            )
            report = _status_report(db, status)
        return InstructionOutcome(200, report, status)

    def _refuse_file(self, raw: bytes, problem: str) -> InstructionOutcome:
        """Refuse an invalid ``pain.001`` with ``FF01``, naming its MsgId when it has one."""
        message_id = iso.find_message_id(raw) or UNKNOWN_MESSAGE_ID
        status = iso.PaymentStatus(
            original_message_id=message_id[:35],
            status=iso.STATUS_REJECTED,
            reason=REASON_INVALID_FILE,
            end_to_end_id=None,
            additional_info=problem,
        )
        with self._transaction() as db:
            instruction_id = _insert_instruction(db, raw, message_id)
            db.execute(
                "UPDATE received_instructions SET status = ?, reason = ? WHERE id = ?",
                (status.status, REASON_INVALID_FILE, instruction_id),
            )
            report = _status_report(db, status)
        return InstructionOutcome(400, report, status)

    def _keep_unreadable(self, raw: bytes) -> None:
        """Keep a request that is not even an ISO 20022 message, as a bank keeps what it got."""
        with self._transaction() as db:
            instruction_id = _insert_instruction(db, raw, None)
            db.execute(
                "UPDATE received_instructions SET status = 'unreadable' WHERE id = ?",
                (instruction_id,),
            )


# ---------------------------------------------------------------- inside a transaction


def _business_day(db: sqlite3.Connection) -> date:
    row = db.execute("SELECT value FROM settings WHERE key = 'business_day'").fetchone()
    return date.fromisoformat(row["value"])


def _bank_time(day: date) -> datetime:
    """The bank's clock: the business day's date at the wall clock's time of day in China."""
    return datetime.combine(day, china_now().timetz())


def _next(db: sqlite3.Connection, counter: str) -> int:
    row = db.execute("SELECT value FROM settings WHERE key = ?", (counter,)).fetchone()
    value = int(row["value"]) + 1
    db.execute("UPDATE settings SET value = ? WHERE key = ?", (str(value), counter))
    return value


def _next_message_id(db: sqlite3.Connection, kind: str) -> str:
    """A bank message id: ``YFB``, a letter for the kind, and a counter shared by all kinds."""
    return f"{BANK_REFERENCE_PREFIX}{kind}{_next(db, 'message'):012d}"


def _account_row(db: sqlite3.Connection, account_id: str) -> sqlite3.Row:
    row = db.execute("SELECT * FROM accounts WHERE account_id = ?", (account_id,)).fetchone()
    if row is None:
        raise UnknownAccount(account_id)
    return row


def _insert_instruction(db: sqlite3.Connection, raw: bytes, message_id: str | None) -> int:
    cursor = db.execute(
        "INSERT INTO received_instructions (received_at, sha256, content, message_id, status) "
        "VALUES (?, ?, ?, ?, 'received')",
        (china_now().isoformat(), hashlib.sha256(raw).hexdigest(), raw, message_id),
    )
    return int(cursor.lastrowid or 0)


def _status_report(db: sqlite3.Connection, status: iso.PaymentStatus) -> bytes:
    return iso.build_pain002(status, _next_message_id(db, "P"), _bank_time(_business_day(db)))


def _book(
    db: sqlite3.Connection,
    *,
    account_id: str,
    credit: bool,
    amount_fen: int,
    end_to_end_id: str | None,
    counterparty: iso.Party | None,
    remittance: str | None,
) -> str:
    """Book an entry, move the balance, and notify it; returns the bank reference."""
    day = _business_day(db)
    entry = iso.Entry(
        bank_reference=f"{BANK_REFERENCE_PREFIX}{day:%Y%m%d}{_next(db, 'bank_reference'):08d}",
        account=account_id,
        credit=credit,
        amount_fen=amount_fen,
        # A posting is booked when it happens; its value date is the business day it counts in.
        # (The chain refuses a booking time later than the report carrying it, so the simulated
        # calendar, which runs ahead by a day at every close, must not stamp bookings.)
        booked_at=china_now(),
        value_date=day,
        end_to_end_id=end_to_end_id or None,
        counterparty=counterparty,
        remittance=remittance or None,
    )
    cursor = db.execute(
        "INSERT INTO entries (bank_reference, account_id, credit, amount_fen, booked_at, "
        "business_day, end_to_end_id, counterparty_name, counterparty_account, remittance, "
        "notification) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
        (
            entry.bank_reference,
            account_id,
            int(credit),
            amount_fen,
            iso.format_datetime(entry.booked_at),
            day.isoformat(),
            entry.end_to_end_id,
            counterparty.name if counterparty else None,
            counterparty.account if counterparty else None,
            entry.remittance,
        ),
    )
    db.execute(
        "UPDATE accounts SET balance_fen = balance_fen + ? WHERE account_id = ?",
        (amount_fen if credit else -amount_fen, account_id),
    )
    _notify(db, int(cursor.lastrowid or 0), entry)
    return entry.bank_reference


def _notify(db: sqlite3.Connection, entry_id: int, entry: iso.Entry) -> None:
    """Publish the camt.054 for one entry, as the next pending misbehaviour says."""
    now = _bank_time(entry.value_date)
    content = iso.build_camt054(
        iso.Notification(
            message_id=_next_message_id(db, "N"),
            created_at=now,
            account=entry.account,
            entries=(entry,),
        )
    )
    mode, _ = _take_misbehaviour(db, NOTIFICATION_MODES)
    name = NOTIFICATION_FILE_NAME
    if mode == "drop":
        fate = "dropped"
    elif mode == "delay":
        db.execute(
            "INSERT INTO held_notifications (entry_id, content) VALUES (?, ?)", (entry_id, content)
        )
        fate = "delayed"
    elif mode == "corrupt":
        _publish(db, "camt.054", name, content[: len(content) // 2], now)
        fate = "corrupted"
    else:
        _publish(db, "camt.054", name, content, now)
        fate = "published"
        if mode == "duplicate":
            _publish(db, "camt.054", name, content, now)
            fate = "duplicated"
    db.execute("UPDATE entries SET notification = ? WHERE id = ?", (fate, entry_id))


def _publish_statement(
    db: sqlite3.Connection, account: sqlite3.Row, day: date, now: datetime
) -> str:
    """Publish the camt.053 of one account for ``day``; returns its file name."""
    rows = db.execute(
        "SELECT * FROM entries WHERE account_id = ? AND business_day = ? ORDER BY id",
        (account["account_id"], day.isoformat()),
    ).fetchall()
    entries = tuple(_entry(row) for row in rows)
    net = sum(entry.amount_fen if entry.credit else -entry.amount_fen for entry in entries)
    closing = account["balance_fen"]
    mode, fen = _take_misbehaviour(db, STATEMENT_MODES)
    reported_closing = closing + fen if mode == "wrong_balance" else closing
    statement = iso.Statement(
        message_id=_next_message_id(db, "S"),
        statement_id=f"{account['account_id']}-{day:%Y%m%d}",
        created_at=now,
        account=account["account_id"],
        business_day=day,
        opening_balance_fen=closing - net,
        closing_balance_fen=reported_closing,
        entries=entries,
    )
    name = f"camt053-{day.isoformat()}-{account['account_id']}.xml"
    _publish(db, "camt.053", name, iso.build_camt053(statement), now)
    return name


def _publish(db: sqlite3.Connection, kind: str, name: str, content: bytes, now: datetime) -> str:
    """Append a file to the outbox; ``{seq}`` in ``name`` becomes its sequence number."""
    seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM files").fetchone()["seq"]
    name = name.format(seq=seq)
    db.execute(
        "INSERT INTO files (seq, name, type, sha256, size, content, published_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            name,
            kind,
            hashlib.sha256(content).hexdigest(),
            len(content),
            content,
            iso.format_datetime(now),
        ),
    )
    return name


def _take_misbehaviour(db: sqlite3.Connection, modes: tuple[str, ...]) -> tuple[str | None, int]:
    """Remove and return the first pending misbehaviour among ``modes`` and its fen."""
    marks = ", ".join("?" for _ in modes)
    row = db.execute(
        f"SELECT id, mode, fen FROM misbehaviour WHERE mode IN ({marks}) ORDER BY id LIMIT 1",
        modes,
    ).fetchone()
    if row is None:
        return None, 0
    db.execute("DELETE FROM misbehaviour WHERE id = ?", (row["id"],))
    return str(row["mode"]), int(row["fen"] or 0)


def _pending(db: sqlite3.Connection) -> list[dict[str, Any]]:
    pending = []
    for row in db.execute("SELECT mode, fen FROM misbehaviour ORDER BY id"):
        item: dict[str, Any] = {
            "mode": row["mode"],
            "applies_to": "statement" if row["mode"] in STATEMENT_MODES else "notification",
        }
        if row["fen"] is not None:
            item["fen"] = row["fen"]
        pending.append(item)
    return pending


def _entry(row: sqlite3.Row) -> iso.Entry:
    counterparty = None
    if row["counterparty_name"] is not None or row["counterparty_account"] is not None:
        counterparty = iso.Party(row["counterparty_name"] or "", row["counterparty_account"] or "")
    return iso.Entry(
        bank_reference=row["bank_reference"],
        account=row["account_id"],
        credit=bool(row["credit"]),
        amount_fen=row["amount_fen"],
        booked_at=iso.parse_datetime(row["booked_at"]),
        value_date=date.fromisoformat(row["business_day"]),
        end_to_end_id=row["end_to_end_id"],
        counterparty=counterparty,
        remittance=row["remittance"],
    )


def _entry_json(row: sqlite3.Row) -> dict[str, Any]:
    counterparty = None
    if row["counterparty_name"] is not None or row["counterparty_account"] is not None:
        counterparty = {"name": row["counterparty_name"], "account": row["counterparty_account"]}
    return {
        "bank_reference": row["bank_reference"],
        "credit": bool(row["credit"]),
        "amount_fen": row["amount_fen"],
        "booked_at": row["booked_at"],
        "business_day": row["business_day"],
        "end_to_end_id": row["end_to_end_id"],
        "counterparty": counterparty,
        "remittance": row["remittance"],
        "notification": row["notification"],
    }
