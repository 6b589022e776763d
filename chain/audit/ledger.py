"""Every agreement's ledger, rebuilt from the AgreementBook's events alone.

The AgreementBook keeps one ``Ledger`` per agreement (amounts in fen) and emits an event for
every change. :class:`LedgerBook` replays those events — and the InsurancePool's
``ClaimOpened``, which fixes the insured part of a default's shortfall — and rebuilds each
ledger without reading contract storage, following the contract's arithmetic:

- ``AgreementFunded``: deposited, frozen and upfront (the non-frozen share) are set.
- ``FundsReleased(Consumption)``: the amount moves from frozen to released.
- ``EntitlementReclaimed`` + ``RefundGranted`` (+ ``FundsReleased(Settlement)``): a plan ends.
  What custody paid (``fromCustody``) is the frozen part plus the reclaimed entitlement;
  frozen money not refunded is released to the merchant; the reclaimed amount comes out of
  released first, then upfront; refunded grows by ``fromCustody``.
- ``ClaimOpened``: the insured and the merchant-owed parts of a default's shortfall;
  ``ClaimCovered``: the policies' parts of the insured part, which must add up to it.
- ``PaymentInstructed`` / ``PaymentRejected`` / ``PaymentReturned``: the register of payments out
  of custody; a rejected or returned instruction is due again.
- ``PayoutConfirmed``: what the bank paid to the merchant or the consumer.

Each rebuilt ledger must conserve money — deposited = frozen + released + refunded + upfront —
and later :func:`compare_with_contract` checks it field by field against the contract's own
``getLedger`` (and the agreement's state and consumption against ``getAgreement``).
Inconsistencies between events (a settlement release that is not the frozen remainder, a
consumption sequence with a gap, a balance going negative) are recorded as violations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address

from chain import views as v
from chain.client import abi_of
from chain.messages import AgreementState, Payee

RELEASE_REASONS: tuple[str, ...] = ("Upfront", "Consumption", "Settlement")
REFUND_REASONS: tuple[str, ...] = ("CoolingOff", "Termination", "Expiry", "Default")
_UPFRONT, _CONSUMPTION, _SETTLEMENT = 0, 1, 2

LEDGER_FIELDS: tuple[str, ...] = (
    "deposited",
    "frozen",
    "released",
    "refunded",
    "upfront",
    "refund_due",
    "merchant_owed",
    "insured_shortfall",
    "paid_to_merchant",
    "paid_to_consumer",
    "instructed_to_merchant",
    "instructed_to_consumer",
    "credits_refused",
    "set_off_given",
    "set_off_covered",
)

_GET_LEDGER = function_signature_to_4byte_selector("getLedger(bytes32)")
_GET_AGREEMENT = function_signature_to_4byte_selector("getAgreement(bytes32)")
_LEDGER_TYPE = "(" + ",".join(["uint128"] * 15) + ")"
_AGREEMENT_TYPE = (
    "(address,uint64,uint8,uint16,bool,address,uint64,bytes32,uint64,uint64,uint64,uint64,"
    "uint128,uint128,uint128,uint128)"
)


# ---------------------------------------------------------------- decoding events


@dataclass(frozen=True)
class DecodedEvent:
    """One log of a watched contract, decoded by its ABI."""

    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: bytes
    log_index: int


class EventDecoder:
    """Decodes the events of chosen contracts from raw logs (address, topics, data).

    Parameters
    ----------
    contracts
        Contract name (as compiled) by address.
    """

    def __init__(self, contracts: dict[bytes, str]) -> None:
        self.contracts = dict(contracts)
        self._events: dict[tuple[bytes, bytes], tuple[str, list[dict[str, Any]]]] = {}
        for address, name in self.contracts.items():
            for entry in abi_of(name):
                if entry.get("type") != "event" or entry.get("anonymous"):
                    continue
                types = ",".join(_abi_type(item) for item in entry["inputs"])
                topic = keccak(text=f"{entry['name']}({types})")
                self._events[(address, topic)] = (entry["name"], list(entry["inputs"]))

    def decode(
        self,
        address: bytes,
        topics: Sequence[bytes],
        data: bytes,
        *,
        block_number: int = 0,
        tx_hash: bytes = b"",
        log_index: int = 0,
    ) -> DecodedEvent | None:
        """The event, None when the log is not one of a watched contract's events."""
        if not topics:
            return None
        known = self._events.get((bytes(address), bytes(topics[0])))
        if known is None:
            return None
        name, inputs = known
        indexed = [item for item in inputs if item.get("indexed")]
        plain = [item for item in inputs if not item.get("indexed")]
        args: dict[str, Any] = {}
        for item, topic in zip(indexed, topics[1:], strict=False):
            args[item["name"]] = abi_decode([_abi_type(item)], bytes(topic))[0]
        values = abi_decode([_abi_type(item) for item in plain], bytes(data))
        for item, value in zip(plain, values, strict=True):
            args[item["name"]] = value
        return DecodedEvent(
            self.contracts[bytes(address)], name, args, block_number, tx_hash, log_index
        )


def _abi_type(item: dict[str, Any]) -> str:
    if str(item["type"]).startswith("tuple"):
        inner = ",".join(_abi_type(component) for component in item["components"])
        return f"({inner}){str(item['type'])[5:]}"
    return str(item["type"])


# ---------------------------------------------------------------- ledgers


@dataclass(frozen=True)
class LedgerViolation:
    """Something wrong with an agreement's money, found by the rebuild or the cross-check."""

    agreement_id: bytes
    check: str
    expected: str
    got: str
    block_number: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "agreementId": "0x" + self.agreement_id.hex(),
            "check": self.check,
            "expected": self.expected,
            "got": self.got,
        }
        if self.block_number is not None:
            found["blockNumber"] = self.block_number
        if self.detail:
            found["detail"] = self.detail
        return found

    def __str__(self) -> str:
        where = "" if self.block_number is None else f" (block {self.block_number})"
        text = (
            f"agreement 0x{self.agreement_id.hex()}{where}: {self.check}: "
            f"expected {self.expected}, got {self.got}"
        )
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class AgreementLedger:
    """One agreement, its terms and its money in fen, as rebuilt from events."""

    agreement_id: bytes
    merchant: str
    consumer: str
    template_id: int
    units: int
    unit_price: int
    total_paid: int
    bonus: int
    expiry: int
    opened_block: int
    state: int = int(AgreementState.SIGNED)
    custody_bps: int = 0
    units_consumed: int = 0
    value_consumed: int = 0
    records: int = 0
    last_sequence: int = 0
    deposited: int = 0
    frozen: int = 0
    released: int = 0
    refunded: int = 0
    upfront: int = 0
    refund_due: int = 0
    merchant_owed: int = 0
    insured_shortfall: int = 0
    paid_to_merchant: int = 0
    paid_to_consumer: int = 0
    instructed_to_merchant: int = 0
    instructed_to_consumer: int = 0
    credits_refused: int = 0
    set_off_given: int = 0
    set_off_covered: int = 0
    upfront_released: bool = False
    funded_block: int | None = None
    closed_block: int | None = None
    # Set while a settlement's events arrive, in the order the contract emits them.
    pending_reclaimed: int = 0
    pending_settlement_release: int | None = None
    contract_matches: bool | None = None

    def conserved(self) -> bool:
        """deposited = frozen + released + refunded + upfront."""
        return self.deposited == self.frozen + self.released + self.refunded + self.upfront

    def ledger(self) -> v.Ledger:
        """The rebuilt money as the contract's ``Ledger`` record."""
        return v.Ledger(*(getattr(self, name) for name in LEDGER_FIELDS))

    def state_name(self) -> str:
        try:
            return AgreementState(self.state).name
        except ValueError:
            return str(self.state)

    def as_dict(self) -> dict[str, Any]:
        """Terms, money and checks as JSON-friendly values (amounts in fen)."""
        row: dict[str, Any] = {
            "agreement_id": "0x" + self.agreement_id.hex(),
            "merchant": self.merchant,
            "consumer": self.consumer,
            "template_id": self.template_id,
            "state": self.state_name(),
            "units": self.units,
            "units_consumed": self.units_consumed,
            "records": self.records,
            "unit_price": self.unit_price,
            "total_paid": self.total_paid,
            "bonus": self.bonus,
            "expiry": self.expiry,
            "custody_bps": self.custody_bps,
            "value_consumed": self.value_consumed,
        }
        row.update({name: getattr(self, name) for name in LEDGER_FIELDS})
        row["conserved"] = self.conserved()
        row["matches_contract"] = self.contract_matches
        row["opened_block"] = self.opened_block
        row["funded_block"] = self.funded_block
        row["closed_block"] = self.closed_block
        return row


CSV_COLUMNS: tuple[str, ...] = (
    "agreement_id",
    "merchant",
    "consumer",
    "template_id",
    "state",
    "units",
    "units_consumed",
    "records",
    "unit_price",
    "total_paid",
    "bonus",
    "expiry",
    "custody_bps",
    "value_consumed",
    *LEDGER_FIELDS,
    "conserved",
    "matches_contract",
    "opened_block",
    "funded_block",
    "closed_block",
)


@dataclass
class LedgerBook:
    """Rebuilds every agreement's ledger from the events of the AgreementBook.

    Parameters
    ----------
    book
        The AgreementBook's address.
    insurance
        The InsurancePool's address (its ``ClaimOpened`` settles a default's shortfall).
    custody
        The CustodyDesk's address (its payment instructions and payouts), if watched.
    """

    book: bytes
    insurance: bytes
    custody: bytes = b""
    agreements: dict[bytes, AgreementLedger] = field(default_factory=dict)
    # Registered payment instructions: id -> (agreement, payee, amount).
    instructions: dict[bytes, tuple[AgreementLedger, int, int]] = field(default_factory=dict)
    violations: list[LedgerViolation] = field(default_factory=list)
    event_counts: dict[str, int] = field(default_factory=dict)
    # Insurance claims: id -> (agreement, the insured part its policy parts have not covered yet).
    claims: dict[int, tuple[bytes, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        contracts = {self.book: "AgreementBook", self.insurance: "InsurancePool"}
        if self.custody:
            contracts[self.custody] = "CustodyDesk"
        self.decoder = EventDecoder(contracts)

    # ------------------------------------------------------------ feeding

    def apply_logs(
        self,
        block_number: int,
        tx_hash: bytes,
        logs: Iterable[tuple[bytes, Sequence[bytes], bytes]],
        first_log_index: int = 0,
    ) -> None:
        """Apply one transaction's logs, in order."""
        opened_before = set(self.claims)
        last: DecodedEvent | None = None
        for offset, (address, topics, data) in enumerate(logs):
            event = self.decoder.decode(
                address,
                topics,
                data,
                block_number=block_number,
                tx_hash=tx_hash,
                log_index=first_log_index + offset,
            )
            if event is not None:
                self.apply(event)
                last = event
        # A claim's policy parts are emitted in the transaction that opened it.
        for claim_id in set(self.claims) - opened_before:
            agreement_id, left = self.claims[claim_id]
            if left != 0 and last is not None:
                self._violation(
                    agreement_id,
                    last,
                    f"claim {claim_id}'s parts add up to its cover",
                    "0",
                    str(left),
                )

    def apply(self, event: DecodedEvent) -> None:
        """Apply one decoded event."""
        self.event_counts[event.name] = self.event_counts.get(event.name, 0) + 1
        handler: Callable[[DecodedEvent], None] | None = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event)

    def records(self) -> int:
        """Consumption records seen."""
        return self.event_counts.get("ConsumptionRecorded", 0)

    # ------------------------------------------------------------ events

    def _on_AgreementOpened(self, event: DecodedEvent) -> None:  # noqa: N802 - event name
        args = event.args
        agreement_id = bytes(args["agreementId"])
        if agreement_id in self.agreements:
            self._violation(agreement_id, event, "opened once", "opened once", "opened again")
            return
        self.agreements[agreement_id] = AgreementLedger(
            agreement_id=agreement_id,
            merchant=to_checksum_address(args["merchant"]),
            consumer=to_checksum_address(args["consumer"]),
            template_id=int(args["templateId"]),
            units=int(args["units"]),
            unit_price=int(args["unitPrice"]),
            total_paid=int(args["totalPaid"]),
            bonus=int(args["bonus"]),
            expiry=int(args["expiry"]),
            opened_block=event.block_number,
        )

    def _on_AgreementFunded(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        args = event.args
        deposited, frozen, upfront = (int(args[k]) for k in ("deposited", "frozen", "upfront"))
        if agreement.deposited:
            self._violation(agreement.agreement_id, event, "funded once", "once", "again")
        if deposited != agreement.total_paid:
            self._violation(
                agreement.agreement_id,
                event,
                "deposit equals the agreed payment",
                str(agreement.total_paid),
                str(deposited),
            )
        if frozen + upfront != deposited:
            self._violation(
                agreement.agreement_id,
                event,
                "frozen + upfront at funding",
                str(deposited),
                str(frozen + upfront),
            )
        agreement.deposited = deposited
        agreement.frozen = frozen
        agreement.upfront = upfront
        agreement.upfront_released = upfront == 0
        agreement.custody_bps = int(args["custodyBps"])
        agreement.state = int(AgreementState.ACTIVE)
        agreement.funded_block = event.block_number

    def _on_ConsumptionRecorded(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        sequence = int(event.args["sequence"])
        if sequence != agreement.last_sequence + 1:
            self._violation(
                agreement.agreement_id,
                event,
                "consumption sequence",
                str(agreement.last_sequence + 1),
                str(sequence),
            )
        agreement.last_sequence = sequence
        agreement.records += 1
        agreement.units_consumed += int(event.args["units"])
        agreement.value_consumed += int(event.args["amount"])
        if agreement.units_consumed > agreement.units:
            self._violation(
                agreement.agreement_id,
                event,
                "units consumed within units bought",
                f"at most {agreement.units}",
                str(agreement.units_consumed),
            )

    def _on_FundsReleased(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        reason = int(event.args["reason"])
        amount = int(event.args["amount"])
        if reason == _UPFRONT:
            if agreement.upfront_released:
                self._violation(
                    agreement.agreement_id, event, "upfront share released once", "once", "again"
                )
            agreement.upfront_released = True
            if amount != agreement.upfront:
                self._violation(
                    agreement.agreement_id,
                    event,
                    "upfront release equals the non-frozen share",
                    str(agreement.upfront),
                    str(amount),
                )
        elif reason == _CONSUMPTION:
            agreement.frozen -= amount
            agreement.released += amount
            self._check_non_negative(agreement, event)
        elif reason == _SETTLEMENT:
            expected = agreement.pending_settlement_release
            if expected is None or expected != amount:
                self._violation(
                    agreement.agreement_id,
                    event,
                    "settlement release is the frozen remainder",
                    "none" if expected is None else str(expected),
                    str(amount),
                )
            agreement.pending_settlement_release = None
        else:
            self._violation(
                agreement.agreement_id, event, "release reason", "0, 1 or 2", str(reason)
            )

    def _on_EntitlementReclaimed(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is not None:
            agreement.pending_reclaimed += int(event.args["amount"])

    def _on_RefundGranted(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        args = event.args
        refund, from_custody, shortfall = (
            int(args[k]) for k in ("refund", "fromCustody", "shortfall")
        )
        reclaimed, agreement.pending_reclaimed = agreement.pending_reclaimed, 0
        if from_custody + shortfall != refund:
            self._violation(
                agreement.agreement_id,
                event,
                "refund = from custody + shortfall",
                str(refund),
                str(from_custody + shortfall),
            )
        from_frozen = from_custody - reclaimed
        left_over = agreement.frozen - from_frozen
        if from_frozen < 0 or left_over < 0:
            self._violation(
                agreement.agreement_id,
                event,
                "refund from frozen within frozen",
                f"0 to {agreement.frozen}",
                str(from_frozen),
            )
        # As AgreementBook._settle: frozen is emptied, the rest released, the reclaimed
        # entitlement taken from released first, then from upfront.
        agreement.frozen = 0
        agreement.released += left_over
        from_released = min(reclaimed, agreement.released)
        agreement.released -= from_released
        agreement.upfront -= reclaimed - from_released
        agreement.refunded += from_custody
        agreement.refund_due = refund
        # On default this is provisional: the set-off and the insurer pay it down later.
        agreement.merchant_owed = shortfall
        agreement.pending_settlement_release = left_over if left_over > 0 else None
        self._check_non_negative(agreement, event)

    def _on_ClaimOpened(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        loss, covered = int(event.args["loss"]), int(event.args["covered"])
        if agreement.merchant_owed != loss:
            self._violation(
                agreement.agreement_id,
                event,
                "claim loss is the shortfall the set-off left",
                str(agreement.merchant_owed),
                str(loss),
            )
        agreement.insured_shortfall = covered
        agreement.merchant_owed = loss - covered
        self.claims[int(event.args["claimId"])] = (agreement.agreement_id, covered)

    def _on_ClaimCovered(self, event: DecodedEvent) -> None:  # noqa: N802
        claim_id, amount = int(event.args["claimId"]), int(event.args["amount"])
        agreement_id, left = self.claims.get(claim_id, (bytes(32), 0))
        if amount > left:
            self._violation(
                agreement_id,
                event,
                f"claim {claim_id}'s parts within its cover",
                str(left),
                str(amount),
            )
        self.claims[claim_id] = (agreement_id, left - amount)

    def _on_AgreementClosed(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        if agreement.pending_settlement_release is not None:
            self._violation(
                agreement.agreement_id,
                event,
                "settlement release emitted",
                str(agreement.pending_settlement_release),
                "none",
            )
            agreement.pending_settlement_release = None
        agreement.state = int(event.args["state"])
        agreement.closed_block = event.block_number

    def _on_PaymentInstructed(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        amount = int(event.args["amount"])
        payee = int(event.args["payee"])
        self.instructions[bytes(event.args["instructionId"])] = (agreement, payee, amount)
        if payee == Payee.MERCHANT:
            agreement.instructed_to_merchant += amount
            due = (agreement.upfront if agreement.upfront_released else 0) + agreement.released
            instructed, rule = agreement.instructed_to_merchant, "merchant instructed within due"
        else:
            agreement.instructed_to_consumer += amount
            due = agreement.refunded + agreement.credits_refused
            instructed, rule = agreement.instructed_to_consumer, "consumer instructed within refund"
        if instructed > due:
            self._violation(agreement.agreement_id, event, rule, f"at most {due}", str(instructed))

    def _on_SetOffSwept(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is not None:
            agreement.set_off_given += int(event.args["amount"])
            self._check_non_negative(agreement, event)

    def _on_SetOffApplied(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is not None:
            amount = int(event.args["amount"])
            agreement.set_off_covered += amount
            agreement.merchant_owed -= amount
            self._check_non_negative(agreement, event)

    def _on_CreditRefused(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is not None:
            agreement.credits_refused += int(event.args["amount"])

    def _on_PaymentRejected(self, event: DecodedEvent) -> None:  # noqa: N802
        self._instruction_undone(event, returned=False)

    def _on_PaymentReturned(self, event: DecodedEvent) -> None:  # noqa: N802
        self._instruction_undone(event, returned=True)

    def _instruction_undone(self, event: DecodedEvent, *, returned: bool) -> None:
        """A rejected or returned instruction's amount is due again, and not instructed."""
        known = self.instructions.get(bytes(event.args["instructionId"]))
        if known is None:
            self._violation(
                bytes(event.args["agreementId"]),
                event,
                f"{event.name} of a registered instruction",
                "registered",
                "unknown",
            )
            return
        agreement, payee, amount = known
        if payee == Payee.MERCHANT:
            agreement.instructed_to_merchant -= amount
            if returned:
                agreement.paid_to_merchant -= amount
        else:
            agreement.instructed_to_consumer -= amount
            if returned:
                agreement.paid_to_consumer -= amount
        self._check_non_negative(agreement, event)

    def _on_PayoutConfirmed(self, event: DecodedEvent) -> None:  # noqa: N802
        agreement = self._known(event)
        if agreement is None:
            return
        amount = int(event.args["amount"])
        if int(event.args["payee"]) == Payee.MERCHANT:
            agreement.paid_to_merchant += amount
            entitled = agreement.upfront + agreement.released
            if agreement.paid_to_merchant > entitled:
                self._violation(
                    agreement.agreement_id,
                    event,
                    "merchant paid within entitlement",
                    f"at most {entitled}",
                    str(agreement.paid_to_merchant),
                )
        else:
            agreement.paid_to_consumer += amount
            owed = agreement.refunded + agreement.credits_refused
            if agreement.paid_to_consumer > owed:
                self._violation(
                    agreement.agreement_id,
                    event,
                    "consumer paid within refund",
                    f"at most {owed}",
                    str(agreement.paid_to_consumer),
                )

    # ------------------------------------------------------------ checks

    def _known(self, event: DecodedEvent) -> AgreementLedger | None:
        agreement_id = bytes(event.args["agreementId"])
        agreement = self.agreements.get(agreement_id)
        if agreement is None:
            self._violation(
                agreement_id, event, f"{event.name} of an opened agreement", "opened", "unknown"
            )
        return agreement

    def _check_non_negative(self, agreement: AgreementLedger, event: DecodedEvent) -> None:
        for name in LEDGER_FIELDS:
            value = getattr(agreement, name)
            if value < 0:
                self._violation(
                    agreement.agreement_id, event, f"{name} never negative", ">= 0", str(value)
                )

    def _violation(
        self, agreement_id: bytes, event: DecodedEvent, check: str, expected: str, got: str
    ) -> None:
        self.violations.append(
            LedgerViolation(
                agreement_id,
                check,
                expected,
                got,
                event.block_number,
                f"{event.name} in transaction 0x{event.tx_hash.hex()}",
            )
        )

    def conservation_violations(self) -> list[LedgerViolation]:
        """Agreements whose rebuilt money is not conserved."""
        found: list[LedgerViolation] = []
        for agreement in self.agreements.values():
            if not agreement.conserved():
                total = agreement.frozen + agreement.released + agreement.refunded
                found.append(
                    LedgerViolation(
                        agreement.agreement_id,
                        "conservation: deposited = frozen + released + refunded + upfront",
                        str(agreement.deposited),
                        str(total + agreement.upfront),
                    )
                )
        return found


# ---------------------------------------------------------------- the contract's view


def ledger_call(agreement_id: bytes) -> bytes:
    """Call data of ``getLedger(agreement_id)``."""
    return _GET_LEDGER + abi_encode(["bytes32"], [agreement_id])


def agreement_call(agreement_id: bytes) -> bytes:
    """Call data of ``getAgreement(agreement_id)``."""
    return _GET_AGREEMENT + abi_encode(["bytes32"], [agreement_id])


def decode_ledger(output: bytes) -> v.Ledger:
    """The output of ``getLedger``."""
    return v.Ledger(*abi_decode([_LEDGER_TYPE], output)[0])


def decode_agreement(output: bytes) -> v.Agreement:
    """The output of ``getAgreement``."""
    values = list(abi_decode([_AGREEMENT_TYPE], output)[0])
    values[0] = to_checksum_address(values[0])
    values[5] = to_checksum_address(values[5])
    return v.Agreement(*values)


def compare_with_contract(
    agreement: AgreementLedger, ledger: v.Ledger, stored: v.Agreement
) -> list[LedgerViolation]:
    """Differences between the rebuilt ledger and the contract's, field by field."""
    found: list[LedgerViolation] = []
    for name in LEDGER_FIELDS:
        ours, theirs = getattr(agreement, name), getattr(ledger, name)
        if ours != theirs:
            found.append(
                LedgerViolation(
                    agreement.agreement_id,
                    f"getLedger.{name}",
                    str(ours),
                    str(theirs),
                    detail="rebuilt from events (expected) vs the contract at the head (got)",
                )
            )
    for name in ("state", "units_consumed", "value_consumed", "custody_bps"):
        ours, theirs = getattr(agreement, name), getattr(stored, name)
        if ours != theirs:
            found.append(
                LedgerViolation(
                    agreement.agreement_id,
                    f"getAgreement.{name}",
                    str(ours),
                    str(theirs),
                    detail="rebuilt from events (expected) vs the contract at the head (got)",
                )
            )
    agreement.contract_matches = not found
    return found
