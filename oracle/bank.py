"""The bank oracle: custody-bank facts to the chain, chain entitlements to the bank.

Three duties, each driven by a durable cursor (see docs/decisions/0008):

- **Bank files → chain.** The bank's files (camt.054 notifications, camt.053 statements) are read
  strictly in the bank's order. Each is kept as evidence; each booked entry is handled once by
  its bank reference (``AcctSvcrRef``): a credit carrying ``YUFU-AGR:0x…`` becomes a funding
  report, a debit whose ``EndToEndId`` is one of our instructions becomes a payout confirmation.
  A statement first handles any of its entries never notified (a dropped notification), then
  queues the custody reconciliation of its account's merchant. Whatever cannot be matched is
  parked for the regulator.
- **Chain → bank.** The chain is the register of payment instructions (decision 0010). A
  ``FundsReleased``, ``RefundGranted``, ``CreditRefused`` or ``SetOffApplied`` event, or a
  funded plan's upfront share once its cooling-off period is over, makes the oracle ask the
  custody desk to register an instruction
  (``instructPayment``, id from the event: :func:`instruction_id`); only a ``PaymentInstructed``
  event read back from the chain becomes a ``pain.001``, with the amount the chain registered.
  A settlement can therefore never take back money already on its way to the bank. The bank
  refuses a repeated message id, so resending after a crash never pays twice; an instruction the
  bank rejects is reported back (``reportInstructionOutcome``), which makes its amount due again.
- The chain actions go through the bank feed's :class:`~oracle.outbox.Outbox`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import requests
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3RPCError

from chain import messages as m
from chain.client import YufuClient
from chain.errors import ContractRevert
from oracle import iso20022 as iso
from oracle.faults import crash_point
from oracle.outbox import ActionKind, Outbox
from oracle.store import OracleStore

log = logging.getLogger("yufu.oracle.bank")

FEED = "bank_feed"
AGREEMENT_REFERENCE = re.compile(r"YUFU-AGR:0x([0-9a-fA-F]{64})")
EPOCH = date(1970, 1, 1)
ZERO_ADDRESS = "0x" + "00" * 20
HTTP_TIMEOUT = 10.0
# Events read from the chain per eth_getLogs call, at most.
LOG_WINDOW_BLOCKS = 2_000
SECONDS_PER_DAY = 86_400


def bank_reference_hash(reference: str) -> bytes:
    """The chain's ``bankReference`` of a booked entry: SHA-256 of its ``AcctSvcrRef``."""
    return hashlib.sha256(reference.encode()).digest()


def instruction_id(tx_hash: bytes, log_index: int) -> bytes:
    """The id of the entitlement an event created: keccak256(txHash ‖ uint256 logIndex)."""
    return keccak(bytes(tx_hash) + log_index.to_bytes(32, "big"))


def end_to_end_id(instruction: bytes) -> str:
    """The pain.001 ``MsgId``/``EndToEndId`` of an instruction: 35 characters."""
    return "YF" + instruction.hex()[:33]


def custody_account(uscc: str) -> str:
    """The custody account the bank keeps for a merchant."""
    return f"CUST-{uscc}"


def business_day_number(day: date) -> int:
    """Days since 1970-01-01: how the chain names a statement's business day."""
    return (day - EPOCH).days


FUNDING = ActionKind(
    name="confirm_funding",
    feed=FEED,
    message=m.FundingReport,
    subject=lambda funding: funding.agreement_id,
    build=lambda client, funding, report, sigs: client.book.functions.confirmFunding(
        funding.as_abi(), report.as_abi(), sigs
    ),
    already_done=frozenset({"AgreementBookDuplicateBankReference"}),
    # The chain refuses a booking time after the report's issue time; a booking of the last
    # seconds is reported as issued then (a block before it refuses it as from the future,
    # and the outbox signs again).
    issued_not_before=lambda funding: funding.paid_at,
)
PAYOUT = ActionKind(
    name="confirm_payout",
    feed=FEED,
    message=m.PayoutReport,
    subject=lambda payout: payout.agreement_id,
    build=lambda client, payout, report, sigs: client.custody.functions.confirmPayout(
        payout.as_abi(), report.as_abi(), sigs
    ),
    already_done=frozenset({"CustodyDeskDuplicateBankReference"}),
)
RECONCILIATION = ActionKind(
    name="reconcile_custody",
    feed=FEED,
    message=m.CustodyReconciliation,
    subject=lambda r: m.address_subject(r.merchant),
    build=lambda client, r, report, sigs: client.custody.functions.reconcileCustody(
        r.as_abi(), report.as_abi(), sigs
    ),
    already_done=frozenset({"CustodyDeskAlreadyReconciled"}),
    # The statement sums up every posting before it: those must be on chain first, even one
    # that reverted and was queued again.
    barrier=True,
)
INSTRUCTION = ActionKind(
    name="instruct_payment",
    feed=FEED,
    message=m.PaymentInstruction,
    subject=lambda instruction: instruction.agreement_id,
    build=lambda client, instruction, report, sigs: client.custody.functions.instructPayment(
        instruction.as_abi(), report.as_abi(), sigs
    ),
    # Registered before a crash; or nothing is due any more (a settlement took the entitlement
    # back before the instruction, or an earlier instruction covered it): nothing to pay.
    already_done=frozenset({"CustodyDeskInstructionExists", "AgreementBookNothingToInstruct"}),
)
OUTCOME = ActionKind(
    name="report_instruction_outcome",
    feed=FEED,
    message=m.InstructionOutcome,
    subject=lambda outcome: outcome.instruction_id,
    build=lambda client, outcome, report, sigs: client.custody.functions.reportInstructionOutcome(
        outcome.as_abi(), report.as_abi(), sigs
    ),
    already_done=frozenset({"CustodyDeskInstructionNotOutstanding"}),
)
BANK_KINDS = (FUNDING, PAYOUT, RECONCILIATION, INSTRUCTION, OUTCOME)


@dataclass(frozen=True)
class BankEndpoints:
    """Where the custody bank's host-to-host interface is."""

    url: str
    # The bank account the oracle's instructions debit is the merchant's custody account;
    # this is the ordering party's name on them.
    ordering_party: str = "Yufu custody platform"


class BankOracle:
    """Moves custody facts between the bank and the chain; one call of :meth:`step` a poll."""

    def __init__(
        self,
        store: OracleStore,
        client: YufuClient,
        outbox: Outbox,
        bank: BankEndpoints,
        *,
        http: requests.Session | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.outbox = outbox
        self.bank = bank
        self.http = http or requests.Session()
        self._topics = [
            Web3.keccak(text="FundsReleased(bytes32,address,uint8,uint128)"),
            Web3.keccak(text="RefundGranted(bytes32,address,uint8,uint128,uint128,uint128)"),
            Web3.keccak(
                text="AgreementFunded(bytes32,bytes32,address,uint128,uint128,uint128,uint16)"
            ),
            Web3.keccak(text="PaymentInstructed(bytes32,bytes32,uint8,uint128,address)"),
            Web3.keccak(text="CreditRefused(bytes32,bytes32,uint128,bytes32)"),
            Web3.keccak(text="SetOffApplied(bytes32,address,uint128)"),
        ]
        self._addresses = [client.book.address, client.custody.address]
        self._window = LOG_WINDOW_BLOCKS

    def step(self) -> None:
        """One round: bank files, chain events, instructions, then the outbox.

        Each stage runs even if an earlier one failed (the bank down must not stop postings
        to the chain, nor the node down instructions to the bank); the first failure is
        raised at the end, for the loop to count.
        """
        failure: Exception | None = None
        for stage in (
            self.read_bank_files,
            self.read_chain_events,
            self.queue_due_upfronts,
            self.send_instructions,
            self.outbox.pump,
        ):
            try:
                stage()
            except Exception as error:  # noqa: BLE001 - isolate the stages
                failure = failure or error
        if failure is not None:
            raise failure

    # ------------------------------------------------------------ bank files → chain

    def read_bank_files(self, limit: int = 100) -> int:
        """Handle the bank's new files, in order, each to the end; returns how many."""
        after = int(self.store.cursor("bank:files", "0"))
        listing = self.http.get(
            f"{self.bank.url}/files", params={"after": after, "limit": limit}, timeout=HTTP_TIMEOUT
        )
        listing.raise_for_status()
        handled = 0
        for item in listing.json()["files"]:
            raw = self.http.get(f"{self.bank.url}/files/{item['name']}", timeout=HTTP_TIMEOUT)
            raw.raise_for_status()
            self.handle_file(int(item["seq"]), item["name"], raw.content)
            handled += 1
        return handled

    def handle_file(self, seq: int, name: str, data: bytes) -> None:
        """Keep one bank file as evidence, queue what it implies and move the cursor, at once.

        The file is read and the chain asked about its agreements first; the store's
        transaction then holds no network call.
        """
        entries: tuple[iso.Entry, ...] = ()
        statement: iso.Statement | None = None
        problem: iso.MalformedMessage | None = None
        try:
            kind = iso.document_type(data)
            if kind.startswith("camt.054"):
                entries = iso.parse_camt054(data).entries
            elif kind.startswith("camt.053"):
                statement = iso.parse_camt053(data)
                entries = statement.entries
            else:
                raise iso.MalformedMessage(f"unexpected document type {kind} in the feed")
        except iso.MalformedMessage as error:
            problem = error
        merchants = self._agreement_merchants(entries)
        with self.store.transaction() as db:
            digest = self.store.keep(
                data, kind="bank-file", source=self.bank.url, name=name, refs={"seq": seq}, db=db
            )
            if problem is not None:
                log.error("bank file %s is malformed: %s", name, problem)
                OracleStore.park(
                    db,
                    f"file:{digest}",
                    feed=FEED,
                    reason="malformed bank file",
                    detail={"file": name, "problem": str(problem)},
                    evidence=digest,
                )
            for entry in entries:
                self._handle_entry(db, entry, name, merchants)
            if statement is not None:
                self._reconcile(db, statement, digest, name)
            OracleStore.move_cursor(db, "bank:files", str(seq))
            crash_point("bank-file-read")

    def _agreement_merchants(self, entries: tuple[iso.Entry, ...]) -> dict[bytes, str]:
        """The merchant of each agreement the credits name (the zero address if unknown)."""
        merchants: dict[bytes, str] = {}
        for entry in entries:
            match = AGREEMENT_REFERENCE.search(entry.remittance or "") if entry.credit else None
            if match is not None:
                agreement_id = bytes.fromhex(match.group(1))
                if agreement_id not in merchants:
                    try:
                        merchant = self.client.get_agreement(agreement_id).merchant
                    except ContractRevert:  # unknown: the funding report is parked with why
                        merchant = ZERO_ADDRESS
                    merchants[agreement_id] = to_checksum_address(merchant)
        return merchants

    def _handle_entry(
        self,
        db: sqlite3.Connection,
        entry: iso.Entry,
        file_name: str,
        merchants: dict[bytes, str],
    ) -> None:
        seen = db.execute(
            "SELECT 1 FROM bank_entries WHERE bank_reference = ?", (entry.bank_reference,)
        ).fetchone()
        if seen is not None:
            return
        outcome = self._credit(db, entry, merchants) if entry.credit else self._debit(db, entry)
        db.execute(
            "INSERT INTO bank_entries (bank_reference, account, credit, amount_fen, "
            "first_seen_in, outcome) VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.bank_reference,
                entry.account,
                int(entry.credit),
                entry.amount_fen,
                file_name,
                outcome,
            ),
        )

    def _credit(self, db: sqlite3.Connection, entry: iso.Entry, merchants: dict[bytes, str]) -> str:
        match = AGREEMENT_REFERENCE.search(entry.remittance or "")
        if match is None:
            OracleStore.park(
                db,
                f"entry:{entry.bank_reference}",
                feed=FEED,
                reason="credit without an agreement reference",
                detail=_entry_detail(entry),
            )
            return "parked"
        agreement_id = bytes.fromhex(match.group(1))
        owner = db.execute(
            "SELECT custody_account FROM merchants WHERE address = ?",
            (merchants.get(agreement_id, ""),),
        ).fetchone()
        if owner is not None and owner["custody_account"] != entry.account:
            # Paid into another merchant's custody: funding the plan would leave its money
            # where its releases cannot be paid from.
            OracleStore.park(
                db,
                f"entry:{entry.bank_reference}",
                feed=FEED,
                reason="credit for an agreement of another merchant's custody account",
                detail={**_entry_detail(entry), "expected_account": owner["custody_account"]},
            )
            return "parked"
        if entry.counterparty is not None:
            db.execute(
                "INSERT OR IGNORE INTO payers (agreement_id, name, account, bank_reference) "
                "VALUES (?, ?, ?, ?)",
                (
                    "0x" + agreement_id.hex(),
                    entry.counterparty.name,
                    entry.counterparty.account,
                    entry.bank_reference,
                ),
            )
        funding = m.FundingReport(
            agreement_id=agreement_id,
            amount=entry.amount_fen,
            bank_reference=bank_reference_hash(entry.bank_reference),
            # The booking time starts the cooling-off period and the consumption log; a bank
            # clock ahead of ours cannot book a payment in our future.
            paid_at=min(int(entry.booked_at.timestamp()), int(time.time())),
        )
        Outbox.add(db, f"funding:{entry.bank_reference}", FUNDING, funding)
        return "funding"

    def _debit(self, db: sqlite3.Connection, entry: iso.Entry) -> str:
        row = None
        if entry.end_to_end_id:
            row = db.execute(
                "SELECT * FROM instructions WHERE end_to_end_id = ?", (entry.end_to_end_id,)
            ).fetchone()
        if row is None:
            OracleStore.park(
                db,
                f"entry:{entry.bank_reference}",
                feed=FEED,
                reason="debit from custody that Yufu did not instruct",
                detail=_entry_detail(entry),
            )
            return "parked"
        payout = m.PayoutReport(
            agreement_id=bytes.fromhex(row["agreement_id"][2:]),
            payee=int(row["payee"]),
            amount=entry.amount_fen,
            bank_reference=bank_reference_hash(entry.bank_reference),
            instruction_id=bytes.fromhex(row["instruction_id"][2:]),
        )
        Outbox.add(db, f"payout:{entry.bank_reference}", PAYOUT, payout)
        db.execute(
            "UPDATE instructions SET state = 'paid', bank_reference = ?, updated_at = ? "
            "WHERE instruction_id = ?",
            (entry.bank_reference, time.time(), row["instruction_id"]),
        )
        return "payout"

    def _reconcile(
        self, db: sqlite3.Connection, statement: iso.Statement, digest: str, file_name: str
    ) -> None:
        merchant = db.execute(
            "SELECT address FROM merchants WHERE custody_account = ?", (statement.account,)
        ).fetchone()
        if merchant is None or statement.closing_balance_fen < 0:
            OracleStore.park(
                db,
                f"statement:{digest}",
                feed=FEED,
                reason=(
                    "statement of an account of no known merchant"
                    if merchant is None
                    else "custody account overdrawn"
                ),
                detail={
                    "file": file_name,
                    "account": statement.account,
                    "business_day": statement.business_day.isoformat(),
                    "closing_balance_fen": statement.closing_balance_fen,
                },
                evidence=digest,
            )
            return
        reconciliation = m.CustodyReconciliation(
            merchant=merchant["address"],
            business_day=business_day_number(statement.business_day),
            statement_balance=statement.closing_balance_fen,
            statement_hash=bytes.fromhex(digest),
        )
        key = f"reconcile:{statement.account}:{statement.business_day.isoformat()}"
        Outbox.add(db, key, RECONCILIATION, reconciliation)

    # ------------------------------------------------------------ chain → bank

    def read_chain_events(self) -> int:
        """Read new entitlements and registered instructions; returns instructions registered.

        An entitlement (a release, a refund, a funded plan's upfront share) is asked of the chain
        as an instruction; a registered instruction (``PaymentInstructed``) becomes a row the
        next stage sends to the bank as a ``pain.001``.
        """
        head = self.client.w3.eth.block_number
        start = int(self.store.cursor("chain:entitlements", "0")) + 1
        if start > head:
            return 0
        end = min(head, start + self._window - 1)
        try:
            logs = self.client.w3.eth.get_logs(
                {
                    "fromBlock": start,
                    "toBlock": end,
                    "address": self._addresses,
                    "topics": [self._topics],
                }
            )
        except Web3RPCError:
            # Too many logs in the window (the node caps an answer): ask for less next time.
            self._window = max(1, self._window // 2)
            raise
        self._window = min(LOG_WINDOW_BLOCKS, self._window * 2)
        events = [
            (event, log_entry)
            for log_entry in logs
            for event in self.client.decode_logs([log_entry])
        ]
        # Ask the chain before taking the store's lock: the transaction holds no network call.
        agreements = {
            agreement_id: self.client.get_agreement(agreement_id)
            for agreement_id in {bytes(event.args["agreementId"]) for event, _ in events}
        }
        merchants = {to_checksum_address(a.merchant) for a in agreements.values()}
        receiving_hash: dict[str, bytes] = {
            merchant: bytes(self.client.get_merchant(merchant).receiving_account_hash)
            for merchant in merchants
        }
        funded_times = {
            int(log_entry["blockNumber"]): int(
                self.client.w3.eth.get_block(log_entry["blockNumber"])["timestamp"]
            )
            for event, log_entry in events
            if event.name == "AgreementFunded"
        }
        cooling_off_days = {
            agreement.template_id: self.client.get_template(agreement.template_id).cooling_off_days
            for agreement in agreements.values()
        }
        registered = 0
        with self.store.transaction() as db:
            for event, log_entry in events:
                agreement = agreements[bytes(event.args["agreementId"])]
                if event.name == "PaymentInstructed":
                    registered += self._registered(db, event, log_entry, receiving_hash)
                elif event.name == "AgreementFunded":
                    self._upfront_due(
                        db,
                        event,
                        log_entry,
                        funded_times[int(log_entry["blockNumber"])],
                        cooling_off_days[agreement.template_id],
                    )
                else:
                    self._entitlement(db, event, log_entry)
            OracleStore.move_cursor(db, "chain:entitlements", str(end))
        return registered

    def _entitlement(self, db: sqlite3.Connection, event: Any, log_entry: Any) -> None:
        """Ask the chain to register a release, a refund or a refused credit as an instruction."""
        args = event.args
        if event.name == "FundsReleased":
            payee, amount = m.Payee.MERCHANT, int(args["amount"])
        elif event.name in ("CreditRefused", "SetOffApplied"):
            # A payment the plan could not accept goes back to the payer in full; a defaulted
            # merchant's set-off pays its consumer's shortfall.
            payee, amount = m.Payee.CONSUMER, int(args["amount"])
        else:
            payee, amount = m.Payee.CONSUMER, int(args["fromCustody"])
        if amount == 0:
            return
        ident = instruction_id(bytes(log_entry["transactionHash"]), int(log_entry["logIndex"]))
        request = m.PaymentInstruction(
            instruction_id=ident,
            agreement_id=bytes(args["agreementId"]),
            payee=payee,
            amount=amount,
        )
        Outbox.add(db, f"instruct:0x{ident.hex()}", INSTRUCTION, request)

    def _upfront_due(
        self,
        db: sqlite3.Connection,
        event: Any,
        log_entry: Any,
        funded_at: int,
        cooling_off_days: int,
    ) -> None:
        """Remember a funded plan's upfront share, to instruct once cooling-off is over."""
        upfront = int(event.args["upfront"])
        if upfront == 0:
            return
        ident = instruction_id(bytes(log_entry["transactionHash"]), int(log_entry["logIndex"]))
        db.execute(
            "INSERT OR IGNORE INTO upfront_due (agreement_id, instruction_id, amount_fen, due_at) "
            "VALUES (?, ?, ?, ?)",
            (
                "0x" + bytes(event.args["agreementId"]).hex(),
                "0x" + ident.hex(),
                upfront,
                funded_at + cooling_off_days * SECONDS_PER_DAY + 1,
            ),
        )

    def queue_due_upfronts(self) -> int:
        """Ask for the upfront shares whose cooling-off period is over, by the chain's clock.

        The chain releases the share at this request (unless a consumption or a settlement did
        before; then there is nothing left to ask and the request settles as done).
        """
        now = int(self.client.w3.eth.get_block("latest")["timestamp"])
        queued = 0
        with self.store.transaction() as db:
            for row in db.execute(
                "SELECT * FROM upfront_due WHERE queued = 0 AND due_at < ?", (now,)
            ).fetchall():
                request = m.PaymentInstruction(
                    instruction_id=bytes.fromhex(row["instruction_id"][2:]),
                    agreement_id=bytes.fromhex(row["agreement_id"][2:]),
                    payee=m.Payee.MERCHANT,
                    amount=int(row["amount_fen"]),
                )
                Outbox.add(db, f"instruct:{row['instruction_id']}", INSTRUCTION, request)
                db.execute(
                    "UPDATE upfront_due SET queued = 1 WHERE agreement_id = ?",
                    (row["agreement_id"],),
                )
                queued += 1
        return queued

    def _registered(
        self,
        db: sqlite3.Connection,
        event: Any,
        log_entry: Any,
        receiving_hash: dict[str, bytes],
    ) -> int:
        """A payment instruction the chain registered: ready to send to the bank."""
        args = event.args
        agreement_id = bytes(args["agreementId"])
        ident = bytes(args["instructionId"])
        payee, amount = int(args["payee"]), int(args["amount"])
        event_ref = f"{bytes(log_entry['transactionHash']).hex()}:{int(log_entry['logIndex'])}"
        merchant_row = db.execute(
            "SELECT * FROM merchants WHERE address = ?", (to_checksum_address(args["merchant"]),)
        ).fetchone()
        creditor = None
        if payee == m.Payee.MERCHANT:
            if merchant_row is not None:
                on_chain = receiving_hash[merchant_row["address"]]
                account = merchant_row["receiving_account"]
                if hashlib.sha256(account.encode()).digest() == on_chain:
                    creditor = (merchant_row["name"], account)
        else:
            payer = db.execute(
                "SELECT * FROM payers WHERE agreement_id = ?", ("0x" + agreement_id.hex(),)
            ).fetchone()
            creditor = None if payer is None else (payer["name"], payer["account"])
        if merchant_row is None or creditor is None:
            OracleStore.park(
                db,
                f"instruction:0x{ident.hex()}",
                feed=FEED,
                reason=(
                    "instruction for a merchant whose custody account the oracle does not know"
                    if merchant_row is None
                    else "release to a receiving account that is not the one on chain"
                    if payee == m.Payee.MERCHANT
                    else "refund with no known paying account"
                ),
                detail={
                    "instruction_id": "0x" + ident.hex(),
                    "agreement_id": "0x" + agreement_id.hex(),
                    "payee": payee,
                    "amount_fen": amount,
                },
            )
            return 0
        now = time.time()
        cursor = db.execute(
            "INSERT OR IGNORE INTO instructions (instruction_id, end_to_end_id, agreement_id, "
            "merchant, payee, amount_fen, debtor_account, creditor_name, creditor_account, "
            "event, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'new', ?, ?)",
            (
                "0x" + ident.hex(),
                end_to_end_id(ident),
                "0x" + agreement_id.hex(),
                merchant_row["address"],
                payee,
                amount,
                merchant_row["custody_account"],
                creditor[0],
                creditor[1],
                event_ref,
                now,
                now,
            ),
        )
        return cursor.rowcount

    def send_instructions(self) -> int:
        """Send every instruction not yet accepted by the bank, one pain.001 each."""
        sent = 0
        for row in self.store.query(
            "SELECT * FROM instructions WHERE state = 'new' ORDER BY created_at, instruction_id"
        ):
            ident = row["end_to_end_id"]
            transfer = iso.CreditTransfer(
                message_id=ident,
                created_at=datetime.fromtimestamp(row["created_at"], UTC),
                debtor=iso.Party(name=self.bank.ordering_party, account=row["debtor_account"]),
                creditor=iso.Party(name=row["creditor_name"], account=row["creditor_account"]),
                amount_fen=row["amount_fen"],
                end_to_end_id=ident,
                remittance=(
                    f"YUFU-{'RELEASE' if row['payee'] == m.Payee.MERCHANT else 'REFUND'}:"
                    f"{row['agreement_id']}"
                ),
                requested_date=datetime.fromtimestamp(row["created_at"], UTC).date(),
            )
            try:
                document = iso.build_pain001(transfer)
            except (iso.MalformedMessage, ValueError) as problem:
                # A creditor the bank's format cannot carry: the regulator sorts it out; the
                # instructions behind it go on.
                with self.store.transaction() as db:
                    db.execute(
                        "UPDATE instructions SET state = 'rejected', status_reason = ?, "
                        "updated_at = ? WHERE instruction_id = ?",
                        ("invalid", time.time(), row["instruction_id"]),
                    )
                    # Nothing will be paid: the chain makes the amount due again.
                    self._report_rejected(db, row, "FF01")
                    OracleStore.park(
                        db,
                        f"instruction:{row['instruction_id']}",
                        feed=FEED,
                        reason="instruction the bank's format cannot carry",
                        detail={**{key: row[key] for key in row.keys()}, "problem": str(problem)},
                    )
                continue
            self.store.keep(
                document,
                kind="pain.001",
                source="oracle",
                name=f"pain001-{ident}.xml",
                refs={"instruction_id": row["instruction_id"]},
            )
            answer = self.http.post(
                f"{self.bank.url}/pain001",
                data=document,
                headers={"Content-Type": "application/xml"},
                timeout=HTTP_TIMEOUT,
            )
            crash_point("instruction-sent")
            status = iso.parse_pain002(answer.content)
            if status.original_message_id != ident:
                raise iso.MalformedMessage(
                    f"the bank answered instruction {ident} about {status.original_message_id}"
                )
            self.store.keep(
                answer.content,
                kind="pain.002",
                source=self.bank.url,
                name=f"pain002-{ident}.xml",
                refs={"instruction_id": row["instruction_id"]},
            )
            accepted = status.status == "ACCP" or status.reason == "DU01"
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE instructions SET state = ?, status_reason = ?, updated_at = ? "
                    "WHERE instruction_id = ? AND state = 'new'",
                    (
                        "accepted" if accepted else "rejected",
                        status.reason,
                        time.time(),
                        row["instruction_id"],
                    ),
                )
                if not accepted:
                    OracleStore.park(
                        db,
                        f"instruction:{row['instruction_id']}",
                        feed=FEED,
                        reason=f"bank rejected the instruction ({status.reason})",
                        detail={key: row[key] for key in row.keys()},
                    )
                    self._report_rejected(db, row, status.reason or "NARR")
            sent += 1
        return sent


    @staticmethod
    def _report_rejected(db: sqlite3.Connection, row: sqlite3.Row, reason: str) -> None:
        """Tell the chain the bank will not pay this instruction: its amount is due again."""
        outcome = m.InstructionOutcome(
            instruction_id=bytes.fromhex(row["instruction_id"][2:]),
            outcome=m.InstructionState.REJECTED,
            bank_reference=hashlib.sha256(f"pain.002:{row['end_to_end_id']}".encode()).digest(),
            reason_code=m.label(reason[:32]),
        )
        Outbox.add(db, f"rejected:{row['instruction_id']}", OUTCOME, outcome)


def _entry_detail(entry: iso.Entry) -> dict[str, Any]:
    return {
        "bank_reference": entry.bank_reference,
        "account": entry.account,
        "credit": entry.credit,
        "amount_fen": entry.amount_fen,
        "booked_at": entry.booked_at.isoformat(),
        "end_to_end_id": entry.end_to_end_id,
        "remittance": entry.remittance,
        "counterparty": None
        if entry.counterparty is None
        else {"name": entry.counterparty.name, "account": entry.counterparty.account},
    }
