"""The transaction outbox: chain actions the oracle owes, each sent exactly once.

A feed reader does not talk to the chain. It writes the actions a fact implies (``add``) in the
same SQLite transaction that keeps the fact's evidence and moves the feed's cursor. The
:class:`Outbox` of the feed's submitting account then works the queue in order:

1. **pending → sent**: sign the report with the feed's signers, build the transaction with the
   next nonce, store the raw transaction and its hash, *commit*, and only then send it. When
   nothing earlier is still in flight it is first tried with ``eth_estimateGas``: a revert that
   means "already on chain" (a bank reference used before) settles it as done; any other
   revert parks it for the regulator with the contract's reason. Actions queued behind one in
   flight are sent at once with a fixed gas limit, since the head state does not show their
   predecessors yet.
2. **sent → done**: a receipt with status 1. A receipt with status 0 (the state moved under it)
   puts it back to pending, to be tried again against the new head.

After a crash a sent action is resent with its stored raw transaction — same nonce, same hash —
so the chain sees it once whatever moment the process died. See
docs/decisions/0008-oracle-and-bank-simulator.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound, Web3RPCError

from chain import messages as m
from chain.client import YufuClient
from chain.deploy import feed_id
from chain.errors import ChainError, ContractRevert
from oracle.faults import crash_point
from oracle.store import OracleStore

log = logging.getLogger("yufu.oracle.outbox")

# Gas limit of an action sent behind another still in flight (no estimate possible yet).
BLIND_GAS: int = 1_500_000
# Actions of one account in flight at once, at most: what a 30 M gas block takes blind.
MAX_IN_FLIGHT: int = 16
# A report refused for its timing or signer set is signed afresh this many times, then parked.
MAX_ATTEMPTS: int = 20
# Reverts that say the report, not the fact, is wrong now: sign it again later.
RETRY_ERRORS: frozenset[str] = frozenset(
    {
        "OracleHubStaleReport",
        "OracleHubReportFromFuture",
        "OracleHubConfigVersionMismatch",
        "OracleHubSequenceNotIncreasing",
    }
)
# Node refusals that pass: the pool is full, fees moved. The action is tried again later.
TRANSIENT_REFUSALS: tuple[str, ...] = ("pending transactions", "mempool", "fee", "underpriced")
# How far behind the wall clock a report's issue time is put, so no block sees it as future.
ISSUE_LAG_SECONDS: int = 2

Builder = Callable[[YufuClient, Any, m.OracleReport, list[bytes]], Any]


@dataclass(frozen=True)
class ActionKind:
    """How one kind of action becomes a contract call."""

    name: str
    feed: str  # the oracle organisation's handle, e.g. "bank_feed"
    message: type[Any]
    subject: Callable[[Any], bytes]
    build: Builder
    # Reverts meaning the fact is on chain already: the action is done, not parked.
    already_done: frozenset[str] = frozenset()
    # Sent only once every earlier action of the account is settled (mined or parked), and
    # tried against the head first: for facts that sum up the ones before them.
    barrier: bool = False
    # The earliest issue time a report of this payload may carry (a funding report cannot be
    # issued before the booking it reports); None for no bound.
    issued_not_before: Callable[[Any], int] | None = None


def encode_message(message: Any) -> str:
    """A report payload as JSON (bytes as 0x-hex)."""
    values = {
        field.name: ("0x" + value.hex() if isinstance(value, bytes | bytearray) else value)
        for field in dataclasses.fields(message)
        for value in [getattr(message, field.name)]
    }
    return json.dumps(values, sort_keys=True)


def decode_message(message_type: type[Any], text: str) -> Any:
    """The inverse of :func:`encode_message`, guided by the message's Solidity types."""
    values = json.loads(text)
    solidity_types = dict((name, kind) for kind, name in message_type.FIELDS)
    arguments: dict[str, Any] = {}
    for field in dataclasses.fields(message_type):
        value = values[field.name]
        solidity_name = _solidity_name(field.name)
        if solidity_types.get(solidity_name, "").startswith("bytes"):
            value = bytes(HexBytes(value))
        arguments[field.name] = value
    return message_type(**arguments)


def _solidity_name(python_name: str) -> str:
    head, *rest = python_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class Outbox:
    """Sends one submitting account's queued actions, in order, each exactly once."""

    def __init__(
        self,
        store: OracleStore,
        client: YufuClient,
        *,
        sender_key: str,
        signer_keys: Sequence[str],
        kinds: Sequence[ActionKind],
    ) -> None:
        self.store = store
        self.client = client
        self.sender_key = sender_key
        self.sender = Account.from_key(sender_key).address
        self.signer_keys = list(signer_keys)
        self.kinds = {kind.name: kind for kind in kinds}
        self._placeholders = ",".join("?" for _ in self.kinds)

    # ------------------------------------------------------------ queueing

    @staticmethod
    def add(db: sqlite3.Connection, key: str, kind: ActionKind, payload: Any) -> bool:
        """Queue an action inside the caller's transaction; a repeated key is ignored.

        Returns whether it was new.
        """
        now = time.time()
        cursor = db.execute(
            "INSERT OR IGNORE INTO actions (key, kind, params, state, created_at, updated_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?)",
            (key, kind.name, encode_message(payload), now, now),
        )
        return cursor.rowcount == 1

    def counts(self) -> dict[str, int]:
        rows = self.store.query(
            f"SELECT state, COUNT(*) AS n FROM actions WHERE kind IN ({self._placeholders}) "
            "GROUP BY state",
            *self.kinds,
        )
        return {row["state"]: row["n"] for row in rows}

    def in_flight(self) -> int:
        return self.counts().get("sent", 0)

    # ------------------------------------------------------------ working the queue

    def pump(self, limit: int = 64) -> int:
        """Settle sent actions, then send pending ones; returns how many changed state."""
        changed = self._settle()
        pending = self.store.query(
            f"SELECT * FROM actions WHERE state = 'pending' AND kind IN ({self._placeholders}) "
            "ORDER BY id LIMIT ?",
            *self.kinds,
            limit,
        )
        for row in pending:
            changed += 1
            if not self._send(row):
                break
        return changed

    def _settle(self) -> int:
        changed = 0
        sent = self.store.query(
            f"SELECT * FROM actions WHERE state = 'sent' AND kind IN ({self._placeholders}) "
            "ORDER BY nonce",
            *self.kinds,
        )
        for row in sent:
            try:
                receipt = self.client.w3.eth.get_transaction_receipt(row["tx_hash"])
            except TransactionNotFound:
                self._resend(row)
                continue
            changed += 1
            if receipt["status"] == 1:
                self._set(row["id"], state="done", block_number=receipt["blockNumber"])
                log.info("action %s done in block %s", row["key"], receipt["blockNumber"])
            else:
                # Sent blind and the state moved under it: back to the queue, where it is tried
                # against the head (and done, parked or sent) once nothing is in flight.
                log.warning("action %s reverted; will try again", row["key"])
                self._requeue(row)
        return changed

    def _resend(self, row: sqlite3.Row) -> None:
        """A sent action the node has no receipt for: send the very same bytes again."""
        try:
            self.client.w3.eth.get_transaction(row["tx_hash"])
            return  # known to the node, waiting for a block
        except TransactionNotFound:
            pass
        try:
            self.client.w3.eth.send_raw_transaction(bytes(row["raw_tx"]))
            log.info("action %s resent as %s", row["key"], row["tx_hash"])
        except Web3RPCError as error:
            self._refused(row, error)

    def _send(self, row: sqlite3.Row) -> bool:
        """Sign, store, send one pending action; False stops this pump (try again later).

        Network failures propagate (the feed loop retries the round); a payload the chain can
        never take is parked, so one bad row cannot stall the queue behind it.
        """
        kind = self.kinds[row["kind"]]
        nonce, in_flight = self._next_nonce()
        if in_flight >= MAX_IN_FLIGHT or (in_flight and (row["attempts"] or kind.barrier)):
            # A retried action, or a barrier, waits until it can be tried against the head.
            return False
        try:
            payload = decode_message(kind.message, row["params"])
            with self.store.transaction() as db:
                sequence = self._next_sequence(db, kind.feed)
            report, signatures = self.client.make_report(
                feed_id(kind.feed),
                kind.subject(payload),
                payload,
                self.signer_keys,
                sequence=sequence,
                issued_at=max(
                    self._issue_time(),
                    kind.issued_not_before(payload) if kind.issued_not_before else 0,
                ),
            )
            function = kind.build(self.client, payload, report, signatures)
            tx = self.client.build(
                self.sender, function, nonce=nonce, gas=BLIND_GAS if in_flight else None
            )
        except ContractRevert as revert:
            if revert.error in kind.already_done:
                self._set(row["id"], state="done", note=f"already on chain: {revert}")
                log.info("action %s already on chain (%s)", row["key"], revert.error)
                return True
            if revert.error in RETRY_ERRORS and row["attempts"] + 1 < MAX_ATTEMPTS:
                log.warning("action %s refused for now (%s); will sign again", row["key"], revert)
                self._set(row["id"], attempts=row["attempts"] + 1)
                return False
            self._park(row, revert.error, str(revert))
            return True
        except (OSError, Web3RPCError):
            raise
        except (ChainError, ValueError, TypeError, KeyError) as error:
            self._park(row, "unsendable", f"{type(error).__name__}: {error}")
            return True
        signed = Account.sign_transaction(tx, self.sender_key)
        tx_hash = "0x" + bytes(signed.hash).hex()
        self._set(
            row["id"],
            state="sent",
            nonce=nonce,
            tx_hash=tx_hash,
            raw_tx=bytes(signed.raw_transaction),
        )
        crash_point("action-stored")
        try:
            self.client.w3.eth.send_raw_transaction(signed.raw_transaction)
            crash_point("action-sent")
        except Web3RPCError as error:
            self._refused(row, error)
            return False
        except OSError as error:  # the node is down: the stored bytes go out on the next pump
            log.warning("node unreachable while sending %s: %s", row["key"], error)
            return False
        log.info("action %s sent as %s (nonce %d)", row["key"], tx_hash, nonce)
        return True

    def _refused(self, row: sqlite3.Row, error: Exception) -> None:
        """The node refused a stored transaction: decide whether it ever can take it."""
        text = str(error).lower()
        if "already" in text or "nonce too low" in text:
            return  # known, or mined meanwhile: the next settle finds its receipt
        if any(word in text for word in TRANSIENT_REFUSALS) and row["attempts"] + 1 < MAX_ATTEMPTS:
            log.warning("node refused %s for now: %s", row["key"], error)
            self._requeue(row)
            return
        self._park(row, "refused", f"the node refused the transaction: {error}")

    def _issue_time(self) -> int:
        """A report's issue time: now (a little behind), never before the head's time."""
        return max(self.client.latest_timestamp(), int(time.time()) - ISSUE_LAG_SECONDS)

    def _next_nonce(self) -> tuple[int, int]:
        """The next nonce, and how many earlier actions of ours are still in flight."""
        chain_next = self.client.w3.eth.get_transaction_count(self.sender, "pending")
        row = self.store.one(
            "SELECT MAX(nonce) AS top, COUNT(*) AS n FROM actions "
            f"WHERE state = 'sent' AND kind IN ({self._placeholders})",
            *self.kinds,
        )
        top = row["top"] if row is not None and row["top"] is not None else -1
        in_flight = int(row["n"]) if row is not None else 0
        return max(chain_next, top + 1), in_flight

    @staticmethod
    def _next_sequence(db: sqlite3.Connection, feed: str) -> int:
        """A report sequence above every one this feed used: milliseconds, kept increasing."""
        key = f"sequence:{feed}"
        row = db.execute("SELECT position FROM cursors WHERE feed = ?", (key,)).fetchone()
        last = int(row["position"]) if row is not None else 0
        sequence = max(int(time.time() * 1000), last + 1)
        OracleStore.move_cursor(db, key, str(sequence))
        return sequence

    def _park(self, row: sqlite3.Row, reason: str, detail: str) -> None:
        log.warning("action %s parked for the regulator: %s", row["key"], detail)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE actions SET state = 'parked', note = ?, nonce = NULL, updated_at = ? "
                "WHERE id = ?",
                (detail, time.time(), row["id"]),
            )
            OracleStore.park(
                db,
                f"action:{row['key']}",
                feed=self.kinds[row["kind"]].feed,
                reason=reason,
                detail={"action": row["kind"], "params": json.loads(row["params"]), "why": detail},
            )

    def _requeue(self, row: sqlite3.Row) -> None:
        """Back to the queue, its transaction forgotten (its nonce is free again)."""
        self._set(
            row["id"],
            state="pending",
            attempts=row["attempts"] + 1,
            nonce=None,
            tx_hash=None,
            raw_tx=None,
        )

    def _set(self, action_id: int, **values: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.store.transaction() as db:
            db.execute(
                f"UPDATE actions SET {columns}, updated_at = ? WHERE id = ?",
                (*values.values(), time.time(), action_id),
            )
