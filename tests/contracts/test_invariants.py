"""Stateful (invariant) test of the AgreementBook: random life-cycles across many agreements.

A Hypothesis ``RuleBasedStateMachine`` plays the parties against the deployed system on
eth-tester: merchants sell plans under their templates, the bank feed reports payments (booked
now or up to two days before the report: the funding time is the booking time), payouts and
their rejections or returns, merchant and consumer sign consumptions (alone, in batches, across
plans), consumers cool off and terminate by signed requests (binding the least refund, with a
nonce they can revoke), time runs and plans expire, the regulator raises risk tiers and declares
merchants in default, the insurer writes policies and defaults are settled in two steps. Alongside,
a Python model of the rules predicts each agreement's state and money, including where a refund
comes from (the frozen share, then the merchant's entitlement no payment instruction has claimed;
on default the shortfall is paid from the merchant's set-off pool, then by insurance, else it is
the merchant's debt). The upfront share is held until the first consumption, the end of the
cooling-off period (an instruction to the merchant then releases it) or a settlement; every payout
is first registered as an instruction at the custody desk, and some instructions stay unpaid for a
while (their amount is no longer the merchant's to lose) or are rejected or returned (due again).

A payment the plan cannot accept (funded or closed already, expired, wrong amount, merchant no
longer selling) is recorded all the same: CreditRefused with the reason, in custody, owed back to
the consumer (creditsRefused), the plan left as it was. A default is settled in two steps:
settleDefault closes or settles each plan (its shortfall owed for now) and moves the merchant's
uninstructed entitlement from every plan, in any state, into its set-off pool; once every plan of
the merchant is settled, distributeSetOff pays each listed plan's shortfall from the pool (in list
order), then opens an insurance claim for the rest. A defaulted merchant's instruction rejected or
returned after its plan was settled goes to the pool too.

Some rules try a forbidden action and check that the contract refuses it with the expected
custom error and arguments and that nothing changed (no block mined; the model, which the rule
leaves alone, still matches the chain): a plan outside its template or its own rules, funding
a credit quoting a used bank reference (of a credit, payout or return) or booked after its
report, a replayed, malformed or misdirected consumption record (alone or spoiling a batch), a
record on an unfunded or closed plan, ending a closed plan or one of a merchant in default,
expiring early, a bad consumer request (for another action, expired, valid more than seven days,
revoked, wrongly signed, asking more refund than the plan now gives), cooling off a used plan or
too late, settling a healthy merchant, distributing a set-off early or for a plan not awaiting it,
instructing when nothing is due (or paying a merchant in default), paying more than an instruction
claimed, reusing a bank reference for a payout.

After every step, for every agreement the machine created, the invariants read the chain:

- money is conserved: deposited = frozen + released + refunded + upfront;
- while Active, released is the derived counter (deposited - upfront) x valueConsumed
  / (totalPaid + bonus), rounded down, exactly (so never more);
- paid <= instructed, instructed to the merchant + set-off given <= upfront + released, paid and
  instructed to the consumer <= refunded + credits refused + set-off covered, refund due <= total
  paid, nothing frozen in a terminal state; a settled refund is accounted for (refund due =
  refunded + set-off covered + insured shortfall + merchant owed), and a shortfall exists only
  once the merchant's whole entitlement was instructed or set aside (unless an instruction came
  back after the settlement); once settled on default nothing is left to the merchant;
- terminal states stay terminal;
- Completed means every unit was used and the whole frozen share released;
- the model matches the chain, field for field (agreement and ledger);
- custody: a merchant's account holds Σ (deposited + credits refused) − Σ paid over its plans;
- set-off: a merchant's pool is Σ set-off given − Σ set-off covered over its plans, and it counts
  its plans settled and distributed as the model does;
- insurance: a claim covers at most its loss, as the model expects, and a policy's reservations
  equal its claims' cover and never exceed its limit.

The machine runs on eth-tester only; every Hypothesis example starts from one snapshot (the three
demo merchants onboarded) and reverts to it afterwards. Example and step counts come from the
Hypothesis profile (``YUFU_HYPOTHESIS_PROFILE``: "fast" by default, or "deep").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from eth_account import Account
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chain import messages as m
from chain import views as v
from chain.client import TxResult
from chain.config import DevnetConfig
from chain.deploy import DeployedSystem
from chain.errors import ChainError, ContractRevert
from chain.scenario import SECONDS_PER_DAY, PlanDesk, SignedAgreement, SignedRecord, sha256

DAY = SECONDS_PER_DAY
HOUR = 3_600
# Each transaction moves the chain one second on; a rule sends a handful. Closer than this to a
# time boundary (expiry, end of cooling-off) the model predicts nothing and the rule does nothing.
TIME_MARGIN = HOUR
# Bound the chain reads the invariants make after every step.
MAX_PLANS = 10
MAX_POLICIES = 4

State = m.AgreementState
SIGNED_OR_ACTIVE = (State.SIGNED, State.ACTIVE)
SETTLED_STATES = (State.COOLED_OFF, State.TERMINATED, State.EXPIRED, State.DEFAULTED)
OPEN_FAULTS = (
    "maxAmount",
    "maxUnits",
    "maxTermDays",
    "industry",
    "value",
    "expiry",
    "consumer",
    "overflow",
    "exists",
)
FUND_FAULTS = ("fund amount", "fund reference", "fund again", "paid after report")
REQUEST_FAULTS = (
    "deadline",
    "deadline too far",
    "signer",
    "other action",
    "wrong action",
    "used",
    "refund below agreed",
    "revoked nonce",
)
# Where a plan of a defaulted merchant stands in the two steps of its default.
NOT_SETTLED, SETTLED, DISTRIBUTED = 0, 1, 2
RECORD_FAULTS = (
    "replay",
    "closed plan",
    "too many units",
    "no units",
    "sequence gap",
    "amount",
    "future",
    "before funding",
    "signer",
)


# ---------------------------------------------------------------- the model


@dataclass
class MerchantModel:
    """A demo merchant as the machine expects the registry to hold it."""

    key: str
    address: str
    industry: str
    template_ids: tuple[int, ...]
    status: m.MerchantStatus = m.MerchantStatus.APPROVED
    tier: m.RiskTier = m.RiskTier.LOW
    policy_ids: list[int] = field(default_factory=list)
    plan_count: int = 0
    # The set-off after a default: entitlement set aside, plans settled and distributed.
    pool: int = 0
    settled: int = 0
    distributed: int = 0

    @property
    def can_sell(self) -> bool:
        # The licence stays valid: it is 400 days old at onboarding, time only runs forward,
        # and the feed checks it again before a check expires (PlanDesk.renew_licence_checks).
        return self.status == m.MerchantStatus.APPROVED and self.tier != m.RiskTier.BLOCKED

    @property
    def serving(self) -> bool:
        return self.status in (m.MerchantStatus.APPROVED, m.MerchantStatus.SUSPENDED)


@dataclass
class PolicyModel:
    policy_id: int
    coverage_limit: int
    start: int
    end: int
    reserved: int = 0


@dataclass
class ClaimModel:
    policy_id: int  # the first part's policy, 0 if nothing covered
    loss: int
    covered: int
    parts: list[tuple[int, int]] = field(default_factory=list)  # (policy id, amount)


@dataclass
class LedgerModel:
    """Field for field as ``IAgreementBook.Ledger``."""

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


@dataclass
class PendingInstruction:
    """A payment instruction registered and not yet reported paid."""

    plan: PlanModel
    instruction_id: bytes
    payee: m.Payee
    amount: int


@dataclass
class PlanModel:
    """One agreement as the model expects it."""

    signed: SignedAgreement
    agreement_id: bytes
    merchant: MerchantModel
    consumer_key: str
    template: v.Template
    state: State = State.SIGNED
    custody_bps: int = 0
    upfront_released: bool = False
    funded_at: int = 0
    units_consumed: int = 0
    next_sequence: int = 1
    value_consumed: int = 0
    ledger: LedgerModel = field(default_factory=LedgerModel)
    accepted_records: list[SignedRecord] = field(default_factory=list)
    claim: ClaimModel | None = None
    opened_at: int = 0
    default_stage: int = NOT_SETTLED
    # A merchant instruction was rejected or returned after a settlement left a shortfall (and
    # before any default sweep): the merchant is due that money again.
    reopened: bool = False

    @property
    def terms(self) -> m.AgreementTerms:
        return self.signed.terms

    @property
    def units_left(self) -> int:
        return self.terms.units - self.units_consumed

    def expected_agreement(self) -> v.Agreement:
        terms = self.terms
        return v.Agreement(
            merchant=terms.merchant,
            template_id=terms.template_id,
            state=self.state,
            custody_bps=self.custody_bps,
            upfront_released=self.upfront_released,
            consumer=terms.consumer,
            expiry=terms.expiry,
            document_hash=terms.document_hash,
            units=terms.units,
            units_consumed=self.units_consumed,
            next_sequence=self.next_sequence,
            funded_at=self.funded_at,
            unit_price=terms.unit_price,
            total_paid=terms.total_paid,
            bonus=terms.bonus,
            value_consumed=self.value_consumed,
        )

    @property
    def cooling_off_ends_at(self) -> int:
        return self.funded_at + self.template.cooling_off_days * DAY

    def releases_upfront_at(self, now: int) -> bool | None:
        """Whether an instruction to the merchant at ``now`` (the latest block) releases a held
        upfront share first: the cooling-off period is over. None when too close to tell."""
        if self.upfront_released or self.state != State.ACTIVE:
            return False
        if self.units_consumed or now > self.cooling_off_ends_at:
            return True
        if now + TIME_MARGIN <= self.cooling_off_ends_at:
            return False
        return None

    def outstanding(self, payee: m.Payee, now: int) -> int | None:
        """What an instruction to ``payee`` at ``now`` can claim: due and not instructed yet
        (None when too close to the end of cooling-off to tell)."""
        ledger = self.ledger
        if payee == m.Payee.CONSUMER:
            owed = ledger.refunded + ledger.credits_refused + ledger.set_off_covered
            return owed - ledger.instructed_to_consumer
        releases = self.releases_upfront_at(now)
        if releases is None:
            return None
        upfront = ledger.upfront if self.upfront_released or releases else 0
        return upfront + ledger.released - ledger.instructed_to_merchant - ledger.set_off_given

    def uninstructed_to_merchant(self) -> int:
        """The merchant's entitlement no instruction has claimed and no set-off has taken."""
        ledger = self.ledger
        return (
            ledger.upfront + ledger.released - ledger.instructed_to_merchant - ledger.set_off_given
        )


def frozen_share(paid: int, custody_bps: int) -> int:
    """The frozen part of a payment, rounded up (in the consumer's favour)."""
    return math.ceil(Fraction(paid * custody_bps, 10_000))


def earned_release(plan: PlanModel) -> int:
    """The part of the frozen-at-funding share earned by the value consumed, rounded down."""
    frozen_at_funding = plan.ledger.deposited - plan.ledger.upfront
    total = plan.terms.total_paid + plan.terms.bonus
    return math.floor(Fraction(frozen_at_funding * plan.value_consumed, total))


def refund_owed(template: v.Template, paid: int, bonus: int, consumed: int) -> int:
    """The refund of a plan ended early, by the template's rule (PRODUCT.md, step 8)."""
    # Consumed face value converts at paid / (paid + bonus).
    by_conversion = math.ceil(Fraction(paid) - Fraction(consumed * paid, paid + bonus))
    by_face_value = max(paid - consumed, 0)
    if template.refund_rule == m.RefundRule.BONUS_CONVERSION:
        refund = by_conversion
    elif template.refund_rule == m.RefundRule.FACE_VALUE:
        refund = by_face_value
    else:  # no agreed formula: the consumer's reading wins
        refund = max(by_conversion, by_face_value)
    rounding = template.refund_rounding_fen
    return min(math.ceil(Fraction(refund, rounding)) * rounding, paid)


def refund_sources(ledger: LedgerModel, refund: int) -> tuple[int, int, int]:
    """Where a refund comes from: the frozen share, the merchant's entitlement no instruction
    has claimed, nobody."""
    from_frozen = min(refund, ledger.frozen)
    uninstructed = (
        ledger.upfront + ledger.released - ledger.instructed_to_merchant - ledger.set_off_given
    )
    reclaimed = min(refund - from_frozen, uninstructed)
    return from_frozen, reclaimed, refund - from_frozen - reclaimed


def _normalised(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    return value


def _args_match(got: tuple[Any, ...], expected: tuple[Any, ...]) -> bool:
    """Custom-error arguments are equal; ``...`` in ``expected`` matches anything."""
    return len(got) == len(expected) and all(
        want is Ellipsis or _normalised(have) == _normalised(want)
        for have, want in zip(got, expected, strict=True)
    )


def _diff(name: str, expected: object, got: object) -> str:
    lines = [
        f"  {f.name}: model {getattr(expected, f.name)!r} != chain {getattr(got, f.name)!r}"
        for f in dataclasses.fields(got)  # type: ignore[arg-type]
        if getattr(expected, f.name) != getattr(got, f.name)
    ]
    return f"{name}: model and chain differ\n" + "\n".join(lines)


# ---------------------------------------------------------------- the machine


class AgreementBookMachine(RuleBasedStateMachine):
    """Random life-cycles of many agreements, checked against a model after every step."""

    def __init__(
        self,
        backend: Any,
        desk: PlanDesk,
        config: DevnetConfig,
        merchants: list[MerchantModel],
        templates: dict[int, v.Template],
        floors: dict[m.RiskTier, int],
    ) -> None:
        super().__init__()
        self.backend = backend
        self.snapshot_id = backend.snapshot()
        self.desk = desk
        self.client = desk.client
        self.w3 = desk.client.w3
        self.domain = self.client.book_domain()
        self.templates = templates
        self.floors = floors
        self.merchants = [dataclasses.replace(mm, policy_ids=[]) for mm in merchants]
        self.consumer_keys = [consumer.key.private_key for consumer in config.demo.consumers]
        self.auditor_key = config.organisations["auditor"].key.private_key
        self.plans: list[PlanModel] = []
        self.policies: dict[int, PolicyModel] = {}
        # Bank references of credits (accepted or refused), payouts and returns: one register,
        # the custody desk's.
        self.bank_references: list[bytes] = []
        self.pending: list[PendingInstruction] = []
        self.paid: list[PendingInstruction] = []
        self.seen_terminal: dict[bytes, State] = {}
        self.counter = 0

    def teardown(self) -> None:
        self.backend.revert(self.snapshot_id)

    # ------------------------------------------------------------ helpers

    def _fresh(self, label: str) -> bytes:
        self.counter += 1
        return sha256(f"invariants:{label}:{self.counter}")

    def _latest(self) -> int:
        return self.client.latest_timestamp()

    def _block_time(self, result: TxResult) -> int:
        return int(self.w3.eth.get_block(result.block_number)["timestamp"])

    def _refused(self, action: Callable[[], object], error: str, *args: Any) -> None:
        """``action`` reverts with ``error(*args)`` and mines nothing."""
        before = self.w3.eth.block_number
        with pytest.raises(ChainError) as caught:
            action()
        got = caught.value
        assert isinstance(got, ContractRevert), f"expected {error}{args}, got {got!r}"
        assert got.error == error, f"expected {error}{args}, got {got}"
        assert _args_match(got.args_, args), f"expected {error}{args}, got {got}"
        assert self.w3.eth.block_number == before, "a refused action mined a block"

    def _plans_in(self, *states: State) -> list[PlanModel]:
        return [plan for plan in self.plans if plan.state in states]

    def _sellers(self) -> list[MerchantModel]:
        return [merchant for merchant in self.merchants if merchant.can_sell]

    def _consumable(self) -> list[PlanModel]:
        return [
            plan
            for plan in self._plans_in(State.ACTIVE)
            if plan.merchant.serving and plan.funded_at <= plan.terms.expiry
        ]

    def _payable(self) -> list[tuple[PlanModel, m.Payee]]:
        """What can be instructed now: nothing more to a merchant in default."""
        now = self._latest()
        return [
            (plan, payee)
            for plan in self.plans
            for payee in m.Payee
            if (plan.outstanding(payee, now) or 0) > 0
            and not (
                payee == m.Payee.MERCHANT and plan.merchant.status == m.MerchantStatus.DEFAULTED
            )
        ]

    def _sign_record(
        self,
        plan: PlanModel,
        sequence: int,
        units: int,
        *,
        amount: int | None = None,
        consumed_at: int | None = None,
        consumer_key: str | None = None,
    ) -> SignedRecord:
        if consumed_at is None:
            # Now, or the expiry if it has passed (a late record of a session delivered in time).
            consumed_at = max(min(self._latest(), plan.terms.expiry), plan.funded_at)
        record = m.ConsumptionRecord(
            agreement_id=plan.agreement_id,
            sequence=sequence,
            units=units,
            amount=units * plan.terms.unit_price if amount is None else amount,
            consumed_at=consumed_at,
            receipt_hash=self._fresh("receipt"),
        )
        return SignedRecord(
            record,
            record.sign(plan.merchant.key, self.domain),
            record.sign(consumer_key or plan.consumer_key, self.domain),
        )

    def _record_error(
        self, plan: PlanModel, signed: SignedRecord, consumer_key: str | None
    ) -> tuple[Any, ...] | None:
        """The error the book must refuse ``signed`` with, in the contract's order of checks."""
        record, agreement_id = signed.record, plan.agreement_id
        if plan.state != State.ACTIVE:
            return ("AgreementBookInvalidState", agreement_id, plan.state)
        if not plan.merchant.serving:
            return ("AgreementBookMerchantStopped", plan.merchant.address, plan.merchant.status)
        if record.sequence != plan.next_sequence:
            return (
                "AgreementBookSequenceMismatch",
                agreement_id,
                plan.next_sequence,
                record.sequence,
            )
        if record.units == 0 or record.units > plan.units_left:
            return ("AgreementBookInsufficientBalance", agreement_id, plan.units_left, record.units)
        expected_amount = record.units * plan.terms.unit_price
        if record.amount != expected_amount:
            return ("AgreementBookAmountMismatch", agreement_id, expected_amount, record.amount)
        if (
            record.consumed_at < plan.funded_at
            or record.consumed_at > self._latest()
            or record.consumed_at > plan.terms.expiry
        ):
            return ("AgreementBookInvalidConsumptionTime", agreement_id, record.consumed_at)
        if consumer_key not in (None, plan.consumer_key):
            return (
                "AgreementBookInvalidSignature",
                record.digest(self.domain),
                plan.terms.consumer,
                Account.from_key(consumer_key).address,
            )
        return None

    # ------------------------------------------------------------ model effects

    def _open(self, data: st.DataObject, merchant: MerchantModel, fund: bool) -> None:
        template_id = data.draw(st.sampled_from(merchant.template_ids), label="template")
        template = self.templates[template_id]
        consumer_key = data.draw(st.sampled_from(self.consumer_keys), label="consumer")
        units = data.draw(st.integers(1, template.max_units or 50), label="units")
        unit_price = data.draw(st.integers(1, 2 * template.max_amount // units), label="price")
        face = units * unit_price
        lowest_bonus = max(0, face - template.max_amount)
        bonus = data.draw(
            st.one_of(st.just(lowest_bonus), st.integers(lowest_bonus, face - 1)), label="bonus"
        )
        term_days = data.draw(st.integers(1, template.max_term_days), label="term days")
        signed = self.desk.sign_agreement(
            merchant.key,
            consumer_key,
            template_id,
            units=units,
            unit_price=unit_price,
            bonus=bonus,
            term_days=term_days,
            salt=self._fresh("salt"),
        )
        agreement_id, result = self.desk.open(signed)
        assert agreement_id == signed.terms.digest(self.domain)
        merchant.plan_count += 1
        assert self.client.agreement_count(merchant.address) == merchant.plan_count
        plan = PlanModel(signed, agreement_id, merchant, consumer_key, template)
        plan.opened_at = self._block_time(result)
        self.plans.append(plan)
        if fund:
            self._fund(data, plan)

    def _fund(self, data: st.DataObject, plan: PlanModel) -> None:
        """The bank reports the payment, booked now (the latest block) or a little earlier (a
        next-day report), never before the plan was signed; the funding time is the booking
        time. The upfront share waits out the cooling-off period."""
        reference = self.desk.next_bank_reference()
        paid = plan.terms.total_paid
        latest = self._latest()
        earlier = data.draw(st.one_of(st.just(0), st.integers(1, 2 * DAY)), label="booked early")
        paid_at = max(latest - earlier, plan.opened_at)
        result = self.desk.fund(plan.agreement_id, paid, bank_reference=reference, paid_at=paid_at)
        self.bank_references.append(reference)
        assert not result.named("CreditRefused")
        funded = result.event("AgreementFunded").args
        assert (funded["agreementId"], funded["deposited"]) == (plan.agreement_id, paid)
        # The custody ratio is fixed now, from the merchant's tier now.
        custody_bps = max(plan.template.min_custody_bps, self.floors[plan.merchant.tier])
        frozen = frozen_share(paid, custody_bps)
        plan.state = State.ACTIVE
        plan.custody_bps = custody_bps
        # Funding time is the bank's booking time, not the block's.
        plan.funded_at = paid_at
        plan.ledger.deposited = paid
        plan.ledger.frozen = frozen
        plan.ledger.upfront = paid - frozen
        plan.upfront_released = plan.ledger.upfront == 0

    def _instruct(self, plan: PlanModel, payee: m.Payee, amount: int) -> PendingInstruction:
        """Registers an instruction for ``amount`` (at most what is outstanding)."""
        releases = payee == m.Payee.MERCHANT and plan.releases_upfront_at(self._latest())
        instruction_id, result = self.desk.instruct_payment(plan.agreement_id, payee, amount)
        assert result.event("PaymentInstructed").args["amount"] == amount
        if releases:
            plan.upfront_released = True
            assert [e.args["amount"] for e in result.named("FundsReleased")] == [
                plan.ledger.upfront
            ]
        else:
            assert not result.named("FundsReleased")
        if payee == m.Payee.MERCHANT:
            plan.ledger.instructed_to_merchant += amount
        else:
            plan.ledger.instructed_to_consumer += amount
        pending = PendingInstruction(plan, instruction_id, payee, amount)
        self.pending.append(pending)
        return pending

    def _confirm(self, pending: PendingInstruction) -> None:
        reference = self.desk.next_bank_reference()
        self.desk.confirm_payout(
            pending.plan.agreement_id,
            pending.payee,
            pending.amount,
            bank_reference=reference,
            instruction_id=pending.instruction_id,
        )
        self.bank_references.append(reference)
        self.pending.remove(pending)
        self.paid.append(pending)
        if pending.payee == m.Payee.MERCHANT:
            pending.plan.ledger.paid_to_merchant += pending.amount
        else:
            pending.plan.ledger.paid_to_consumer += pending.amount

    def _refuse_credit(self, plan: PlanModel, amount: int, reason: str) -> None:
        """A payment the plan cannot accept is recorded all the same: in custody, owed back to
        the payer; the plan is left as it was."""
        reference = self.desk.next_bank_reference()
        result = self.desk.fund(plan.agreement_id, amount, bank_reference=reference)
        self.bank_references.append(reference)
        refused = result.event("CreditRefused").args
        got = (
            refused["agreementId"],
            refused["bankReference"],
            refused["amount"],
            refused["reason"],
        )
        assert got == (plan.agreement_id, reference, amount, m.label(reason)), got
        assert not result.named("AgreementFunded")
        plan.ledger.credits_refused += amount
        event(f"credit refused: {reason}")

    def _outcome(self, instruction: PendingInstruction, returned: bool) -> None:
        """The bank rejects an instruction, or a paid one comes back: it is due again, and not
        instructed; a defaulted merchant's money goes to its set-off pool instead."""
        outcome = m.InstructionState.RETURNED if returned else m.InstructionState.REJECTED
        reference = self.desk.next_bank_reference()
        result = self.desk.report_instruction_outcome(
            instruction.instruction_id, outcome, bank_reference=reference
        )
        plan, amount, ledger = instruction.plan, instruction.amount, instruction.plan.ledger
        if returned:
            self.bank_references.append(reference)
            self.paid.remove(instruction)
            assert result.event("PaymentReturned").args["amount"] == amount
        else:
            self.pending.remove(instruction)
            assert result.named("PaymentRejected")
        event(f"{'returned' if returned else 'rejected'} to {instruction.payee.name}")
        swept = []
        if instruction.payee == m.Payee.MERCHANT:
            ledger.instructed_to_merchant -= amount
            if returned:
                ledger.paid_to_merchant -= amount
            if plan.default_stage != NOT_SETTLED:
                ledger.set_off_given += amount
                plan.merchant.pool += amount
                swept = [amount]
            elif ledger.merchant_owed or ledger.insured_shortfall:
                plan.reopened = True
        else:
            ledger.instructed_to_consumer -= amount
            if returned:
                ledger.paid_to_consumer -= amount
        assert [e.args["amount"] for e in result.named("SetOffSwept")] == swept

    def _pay(self, plan: PlanModel, payee: m.Payee, amount: int) -> None:
        self._confirm(self._instruct(plan, payee, amount))

    def _apply_record(self, plan: PlanModel, signed: SignedRecord) -> None:
        record = signed.record
        plan.units_consumed += record.units
        plan.value_consumed += record.amount
        plan.next_sequence = record.sequence + 1
        earned = earned_release(plan)
        plan.ledger.frozen = plan.ledger.deposited - plan.ledger.upfront - earned
        plan.ledger.released = earned
        # A used plan can no longer be cooled off: its upfront share is the merchant's now.
        plan.upfront_released = True
        if plan.units_consumed == plan.terms.units:
            plan.state = State.COMPLETED
        plan.accepted_records.append(signed)

    def _open_claim(self, plan: PlanModel, loss: int, now: int) -> ClaimModel:
        """The merchant's registered policies in force when default was declared cover the loss,
        in registration order, each with the cover it has left."""
        defaulted_at = self.client.defaulted_at(plan.merchant.address)
        parts: list[tuple[int, int]] = []
        left = loss
        for policy_id in plan.merchant.policy_ids:
            policy = self.policies[policy_id]
            if left == 0:
                break
            in_force = policy.start <= defaulted_at <= policy.end
            if in_force and policy.reserved < policy.coverage_limit:
                amount = min(left, policy.coverage_limit - policy.reserved)
                policy.reserved += amount
                left -= amount
                parts.append((policy_id, amount))
        first = parts[0][0] if parts else 0
        return ClaimModel(first, loss, loss - left, parts)

    def _settle(self, plan: PlanModel, refund: int, state: State) -> None:
        """The frozen share pays the refund first, then the merchant's entitlement no instruction
        has claimed (released first, then upfront); the rest is owed (on default provisionally:
        the set-off and the insurer pay it down later). What is left of a held upfront share is
        the merchant's."""
        ledger = plan.ledger
        from_frozen, reclaimed, shortfall = refund_sources(ledger, refund)
        ledger.released += ledger.frozen - from_frozen
        from_released = min(reclaimed, ledger.released)
        ledger.released -= from_released
        ledger.upfront -= reclaimed - from_released
        ledger.refunded += from_frozen + reclaimed
        ledger.frozen = 0
        ledger.refund_due = refund
        ledger.merchant_owed = shortfall
        if shortfall:
            # Nobody is short while custody still holds merchant money no instruction claimed.
            assert plan.uninstructed_to_merchant() == 0, ledger
        plan.state = state
        plan.upfront_released = True

    def _refund_now(self, plan: PlanModel) -> int:
        terms = plan.terms
        return refund_owed(plan.template, terms.total_paid, terms.bonus, plan.value_consumed)

    def _expire(self, plan: PlanModel) -> None:
        result = self.client.expire(self.auditor_key, plan.agreement_id)
        if plan.state == State.SIGNED:
            plan.state = State.EXPIRED
        else:
            self._settle(plan, self._refund_now(plan), State.EXPIRED)
        assert result.block_number

    def _settle_default(self, chosen: list[PlanModel]) -> None:
        """First step of a default: each plan not settled before is closed (Signed) or settled
        (Active: the shortfall stays owed for now), and whatever the merchant is still owed by
        it, in any state, is set aside in the merchant's set-off pool."""
        result = self.client.settle_default(self.auditor_key, [p.agreement_id for p in chosen])
        swept: list[tuple[bytes, int]] = []
        for plan in chosen:
            if plan.default_stage != NOT_SETTLED:
                continue  # settled before (or earlier in this list): skipped
            if plan.state == State.SIGNED:
                plan.state = State.DEFAULTED
            elif plan.state == State.ACTIVE:
                self._settle(plan, self._refund_now(plan), State.DEFAULTED)
            entitlement = plan.uninstructed_to_merchant()
            plan.default_stage = SETTLED
            plan.reopened = False
            plan.merchant.settled += 1
            if entitlement:
                plan.ledger.set_off_given += entitlement
                plan.merchant.pool += entitlement
                swept.append((plan.agreement_id, entitlement))
        got = [(e.args["agreementId"], e.args["amount"]) for e in result.named("SetOffSwept")]
        assert got == swept, f"swept {got}, model {swept}"
        event(f"settled on default: {len(swept)} swept")
        assert not result.named("ClaimOpened")

    def _awaiting_set_off(self, merchant: MerchantModel) -> list[PlanModel]:
        return [p for p in self.plans if p.merchant is merchant and p.default_stage == SETTLED]

    def _set_off_ready(self, merchant: MerchantModel) -> bool:
        return merchant.plan_count > 0 and merchant.settled == merchant.plan_count

    def _distribute_error(
        self, merchant: MerchantModel, chosen: list[PlanModel]
    ) -> tuple[Any, ...] | None:
        """The error the book must refuse this distribution with, in its order of checks."""
        if merchant.settled != merchant.plan_count:
            return (
                "AgreementBookSetOffNotReady",
                merchant.address,
                merchant.settled,
                merchant.plan_count,
            )
        seen: set[bytes] = set()
        for plan in chosen:
            if (
                plan.merchant is not merchant
                or plan.default_stage != SETTLED
                or plan.agreement_id in seen
            ):
                return ("AgreementBookNotAwaitingSetOff", plan.agreement_id)
            seen.add(plan.agreement_id)
        return None

    def _distribute(self, merchant: MerchantModel, chosen: list[PlanModel]) -> None:
        """Second step: in list order, each plan's shortfall is paid from the pool first, then
        claimed from the insurance in force now (the first policy with cover left)."""
        assert self._distribute_error(merchant, chosen) is None
        result = self.client.distribute_set_off(
            self.auditor_key, merchant.address, [p.agreement_id for p in chosen]
        )
        now = self._block_time(result)
        applied: list[tuple[bytes, int]] = []
        claimed: list[tuple[bytes, int, int]] = []
        for plan in chosen:
            ledger = plan.ledger
            plan.default_stage = DISTRIBUTED
            merchant.distributed += 1
            from_pool = min(ledger.merchant_owed, merchant.pool)
            if from_pool:
                merchant.pool -= from_pool
                ledger.set_off_covered += from_pool
                ledger.merchant_owed -= from_pool
                applied.append((plan.agreement_id, from_pool))
            if ledger.merchant_owed:
                plan.claim = self._open_claim(plan, ledger.merchant_owed, now)
                ledger.insured_shortfall = plan.claim.covered
                claimed.append((plan.agreement_id, ledger.merchant_owed, plan.claim.covered))
                ledger.merchant_owed -= plan.claim.covered
        event(f"set-off distributed: {len(applied)} from pool, {len(claimed)} claimed")
        got = [(e.args["agreementId"], e.args["amount"]) for e in result.named("SetOffApplied")]
        assert got == applied, f"set-off applied {got}, model {applied}"
        opened = [
            (e.args["agreementId"], e.args["loss"], e.args["covered"])
            for e in result.named("ClaimOpened")
        ]
        assert opened == claimed, f"claims {opened}, model {claimed}"

    def _write_policy(self, merchant: MerchantModel, coverage: int, days: int) -> None:
        policy_id = self.desk.write_policy(merchant.address, coverage, days)
        written = self.client.get_policy(policy_id)
        assert _normalised(written.merchant) == _normalised(merchant.address)
        assert (written.coverage_limit, written.reserved) == (coverage, 0)
        self.policies[policy_id] = PolicyModel(policy_id, coverage, written.start, written.end)
        merchant.policy_ids.append(policy_id)

    def _check_merchant(self, merchant: MerchantModel) -> None:
        record = self.client.get_merchant(merchant.address)
        assert (record.status, record.tier) == (merchant.status, merchant.tier)

    # ------------------------------------------------------------ signing and funding

    @initialize(data=st.data(), count=st.integers(2, 4))
    def start_with_plans(self, data: st.DataObject, count: int) -> None:
        """Begin with a few plans, most of them funded."""
        for _ in range(count):
            merchant = data.draw(st.sampled_from(self.merchants), label="merchant")
            self._open(data, merchant, fund=data.draw(st.integers(0, 3).map(bool), label="fund"))

    @precondition(lambda self: len(self.plans) < MAX_PLANS and bool(self._sellers()))
    @rule(data=st.data(), fund=st.integers(0, 3).map(bool))
    def open_plan(self, data: st.DataObject, fund: bool) -> None:
        """Merchant and consumer sign a plan within the template's limits; maybe it is paid."""
        self._open(data, data.draw(st.sampled_from(self._sellers()), label="merchant"), fund)

    @precondition(lambda self: bool(self._plans_in(State.SIGNED)))
    @rule(data=st.data())
    def fund_plan(self, data: st.DataObject) -> None:
        """The bank reports a payment; once the plan expired or the merchant may no longer sell,
        the credit is recorded as owed back to the payer and the plan stays unfunded."""
        plan = data.draw(st.sampled_from(self._plans_in(State.SIGNED)))
        refusal = self._credit_refusal(plan, plan.terms.total_paid)
        if refusal is None:
            self._fund(data, plan)
        elif refusal:
            self._refuse_credit(plan, plan.terms.total_paid, refusal)

    @rule(data=st.data(), fault=st.sampled_from(OPEN_FAULTS + FUND_FAULTS))
    def open_or_fund_refused(self, data: st.DataObject, fault: str) -> None:
        """A plan breaking a rule is refused with the error naming the rule; a credit quoting a
        used bank reference (of any credit, payout or return) or booked after its report is
        refused; a credit to a funded or closed plan, or of a wrong amount, is recorded as owed
        back to the payer."""
        if fault in FUND_FAULTS and self.plans:
            self._fund_refused(data, fault)
        else:
            self._open_refused(data, fault)

    def _open_refused(self, data: st.DataObject, fault: str) -> None:
        merchant = data.draw(st.sampled_from(self.merchants), label="merchant")
        consumer_key = data.draw(st.sampled_from(self.consumer_keys), label="consumer")
        template_id = data.draw(st.sampled_from(merchant.template_ids), label="template")
        template = self.templates[template_id]
        extra = data.draw(st.integers(1, 1_000), label="excess")
        latest = self._latest()
        fields: dict[str, Any] = {
            "merchant": merchant.address,
            "consumer": Account.from_key(consumer_key).address,
            "template_id": template_id,
            "document_hash": self._fresh("document"),
            "units": 1,
            "unit_price": 100,
            "total_paid": 100,
            "bonus": 0,
            "expiry": latest + DAY,
            "salt": self._fresh("salt"),
        }
        expected: tuple[Any, ...]
        checked_before_sales = True
        if fault == "exists" and self.plans:
            plan = data.draw(st.sampled_from(self.plans), label="existing plan")
            self._refused(
                lambda: self.desk.open(plan.signed), "AgreementBookAlreadyExists", plan.agreement_id
            )
            return
        if fault == "value":
            fields["total_paid"] = 100 + extra
            expected = ("AgreementBookValueMismatch", 100, 100 + extra)
        elif fault == "expiry":
            fields["expiry"] = latest - extra
            expected = ("AgreementBookInvalidTerms", m.label("expiry"))
        elif fault == "consumer":
            consumer_key = merchant.key
            fields["consumer"] = merchant.address
            expected = ("AgreementBookInvalidTerms", m.label("consumer"))
        elif fault == "overflow":
            # The plan's whole value must fit in 128 bits.
            fields.update(total_paid=2**128 - extra, bonus=extra)
            expected = ("AgreementBookInvalidTerms", m.label("bonus"))
        else:
            checked_before_sales = False
            if fault == "maxAmount":
                fields["unit_price"] = fields["total_paid"] = template.max_amount + extra
                expected = (
                    "AgreementBookOutsideTemplate",
                    m.label("maxAmount"),
                    template.max_amount,
                    template.max_amount + extra,
                )
            elif fault == "maxUnits" and template.max_units:
                units = template.max_units + extra
                fields.update(units=units, unit_price=1, total_paid=units)
                expected = (
                    "AgreementBookOutsideTemplate",
                    m.label("maxUnits"),
                    template.max_units,
                    units,
                )
            elif fault == "industry":
                industry = m.industry_id(merchant.industry)
                foreign = [tid for tid, t in self.templates.items() if t.industry != industry]
                fields["template_id"] = data.draw(st.sampled_from(foreign), label="foreign")
                expected = (
                    "AgreementBookIndustryMismatch",
                    industry,
                    self.templates[fields["template_id"]].industry,
                )
            else:  # maxTermDays; also maxUnits of a template without a unit limit
                fields["expiry"] = latest + (template.max_term_days + 1) * DAY + extra
                expected = (
                    "AgreementBookOutsideTemplate",
                    m.label("maxTermDays"),
                    ...,
                    fields["expiry"],
                )
        if not checked_before_sales and not merchant.can_sell:
            expected = ("AgreementBookMerchantCannotSell", merchant.address)
        terms = m.AgreementTerms(**fields)
        signed = SignedAgreement(
            terms, terms.sign(merchant.key, self.domain), terms.sign(consumer_key, self.domain)
        )
        self._refused(lambda: self.desk.open(signed), *expected)

    def _fund_refused(self, data: st.DataObject, fault: str) -> None:
        funded = [plan for plan in self.plans if plan.state != State.SIGNED]
        unfunded = self._plans_in(State.SIGNED)
        preferred = funded if fault == "fund again" else unfunded
        plan = data.draw(st.sampled_from(preferred or self.plans))
        agreement_id, paid = plan.agreement_id, plan.terms.total_paid
        if fault == "fund reference" and self.bank_references:
            reference = data.draw(st.sampled_from(self.bank_references), label="reference")
            self._refused(
                lambda: self.desk.fund(agreement_id, paid, bank_reference=reference),
                "AgreementBookDuplicateBankReference",
                reference,
            )
            return
        if fault == "paid after report":
            latest = self._latest()
            paid_at = latest + data.draw(st.integers(1, DAY), label="booked after")
            self._refused(
                lambda: self.desk.fund(agreement_id, paid, paid_at=paid_at),
                "AgreementBookPaidAfterReport",
                agreement_id,
                paid_at,
                latest,
            )
            return
        amount = paid
        if fault != "fund again":
            amount = data.draw(st.integers(0, 2 * paid).filter(lambda a: a != paid), label="paid")
        refusal = self._credit_refusal(plan, amount)
        if refusal is None:
            self._fund(data, plan)  # "fund again" on an unfunded plan: nothing else to try
        elif refusal:
            self._refuse_credit(plan, amount, refusal)

    def _credit_refusal(self, plan: PlanModel, amount: int) -> str | None:
        """Why the plan cannot accept this credit, in the contract's order of checks (the reason
        CreditRefused carries); None if it funds the plan, "" if too close to the expiry to
        tell."""
        if plan.state != State.SIGNED:
            return "state"
        latest = self._latest()
        if latest >= plan.terms.expiry:
            return "expired"  # the funding block comes after the latest one
        if latest + TIME_MARGIN >= plan.terms.expiry:
            return ""
        if amount != plan.terms.total_paid:
            return "amount"
        if not plan.merchant.can_sell:
            return "merchant"
        return None

    # ------------------------------------------------------------ consumption

    @precondition(lambda self: bool(self._consumable()))
    @rule(data=st.data(), by_merchant=st.booleans())
    def consume(self, data: st.DataObject, by_merchant: bool) -> None:
        """Signed records of one plan, alone or in a batch, release frozen money."""
        plan = data.draw(st.sampled_from(self._consumable()))
        count = data.draw(st.integers(1, min(4, plan.units_left)), label="records")
        left = plan.units_left
        batch: list[SignedRecord] = []
        for index in range(count):
            units = data.draw(st.integers(1, left - (count - index - 1)), label="units")
            left -= units
            batch.append(self._sign_record(plan, plan.next_sequence + index, units))
        submitter = plan.merchant.key if by_merchant else None
        if count == 1 and data.draw(st.booleans(), label="single call"):
            self.desk.consume(batch[0], submitter)
        else:
            self.desk.consume_batch(batch, submitter)
        for signed in batch:
            self._apply_record(plan, signed)

    @precondition(lambda self: len(self._consumable()) >= 2)
    @rule(data=st.data())
    def consume_across_plans(self, data: st.DataObject) -> None:
        """One batch carries records of several plans, possibly of several merchants."""
        plans = data.draw(
            st.lists(st.sampled_from(self._consumable()), min_size=2, max_size=3, unique_by=id)
        )
        batch = [
            self._sign_record(plan, plan.next_sequence, data.draw(st.integers(1, plan.units_left)))
            for plan in plans
        ]
        self.desk.consume_batch(batch)
        for plan, signed in zip(plans, batch, strict=True):
            self._apply_record(plan, signed)

    @precondition(lambda self: bool(self.plans))
    @rule(data=st.data(), fault=st.sampled_from(RECORD_FAULTS), in_batch=st.booleans())
    def consume_refused(self, data: st.DataObject, fault: str, in_batch: bool) -> None:
        """A replayed record, a record on a closed plan, or a record breaking a rule is refused;
        a batch holding one records nothing at all."""
        replayable = [p for p in self.plans if p.accepted_records]
        closed = self._plans_in(*m.TERMINAL_STATES, State.SIGNED)
        if fault == "replay" and replayable:
            plan = data.draw(st.sampled_from(replayable))
            signed = data.draw(st.sampled_from(plan.accepted_records), label="replayed")
            expected = self._record_error(plan, signed, None)
            assert expected is not None
            self._refused(lambda: self.desk.consume(signed), *expected)
            return
        if fault in ("replay", "closed plan") and closed:
            plan = data.draw(st.sampled_from(closed))
            signed = self._sign_record(plan, plan.next_sequence, 1)
            self._refused(
                lambda: self.desk.consume(signed),
                "AgreementBookInvalidState",
                plan.agreement_id,
                plan.state,
            )
            return
        plan = data.draw(st.sampled_from(self._plans_in(State.ACTIVE) or self.plans))
        sequence, units = plan.next_sequence, 1
        amount: int | None = None
        consumed_at: int | None = None
        consumer_key: str | None = None
        if fault == "no units":
            units = 0
        elif fault == "sequence gap":
            sequence += data.draw(st.integers(1, 3), label="gap")
        elif fault == "amount":
            amount = plan.terms.unit_price + data.draw(st.sampled_from([-1, 1]), label="off by")
        elif fault == "future":
            consumed_at = self._latest() + DAY
        elif fault == "before funding":
            consumed_at = max(plan.funded_at - 1, 0)
        elif fault == "signer":
            others = [key for key in self.consumer_keys if key != plan.consumer_key]
            consumer_key = data.draw(st.sampled_from(others), label="wrong consumer")
        else:  # too many units (also when there was nothing to replay or no closed plan)
            units = plan.units_left + data.draw(st.integers(1, 5), label="excess units")

        def bad_record(at_sequence: int) -> SignedRecord:
            return self._sign_record(
                plan,
                at_sequence,
                units,
                amount=amount,
                consumed_at=consumed_at,
                consumer_key=consumer_key,
            )

        if in_batch and plan.state == State.ACTIVE and plan.units_left > 1:
            # A good record first, then the bad one (numbered after it): all or nothing.
            good = self._sign_record(plan, plan.next_sequence, 1)
            bad = bad_record(sequence + 1)
            expected = self._record_error(plan, good, None)
            if expected is None:
                after_good = dataclasses.replace(
                    plan, ledger=dataclasses.replace(plan.ledger), accepted_records=[]
                )
                self._apply_record(after_good, good)
                expected = self._record_error(after_good, bad, consumer_key)
            assert expected is not None
            self._refused(lambda: self.desk.consume_batch([good, bad]), *expected)
        else:
            bad = bad_record(sequence)
            expected = self._record_error(plan, bad, consumer_key)
            assert expected is not None
            self._refused(lambda: self.desk.consume(bad), *expected)

    # ------------------------------------------------------------ ending plans

    def _exitable(self) -> list[PlanModel]:
        """Active plans the consumer may leave: not of a merchant in default (that is settled)."""
        return [
            plan
            for plan in self._plans_in(State.ACTIVE)
            if plan.merchant.status != m.MerchantStatus.DEFAULTED
        ]

    @precondition(lambda self: any(p.units_consumed == 0 for p in self._exitable()))
    @rule(data=st.data())
    def cool_off(self, data: st.DataObject) -> None:
        """An unused plan is cancelled within cooling-off for its whole payment; after, refused."""
        plan = data.draw(st.sampled_from([p for p in self._exitable() if p.units_consumed == 0]))
        ends_at = plan.funded_at + plan.template.cooling_off_days * DAY
        latest = self._latest()
        if latest + TIME_MARGIN <= ends_at:
            result = self.desk.cool_off(plan.agreement_id, plan.consumer_key)
            assert result.event("AgreementClosed").args["state"] == State.COOLED_OFF
            self._settle(plan, plan.terms.total_paid, State.COOLED_OFF)
        elif latest > ends_at:
            self._refused(
                lambda: self.desk.cool_off(plan.agreement_id, plan.consumer_key),
                "AgreementBookCoolingOffOver",
                plan.agreement_id,
                ends_at,
            )

    @precondition(lambda self: bool(self._exitable()))
    @rule(data=st.data())
    def terminate(self, data: st.DataObject) -> None:
        """The consumer ends a plan early; the refund is the template's formula, as previewed."""
        plan = data.draw(st.sampled_from(self._exitable()))
        refund = self._refund_now(plan)
        from_frozen, reclaimed, shortfall = refund_sources(plan.ledger, refund)
        preview = self.client.preview_refund(plan.agreement_id)
        assert preview == v.RefundPreview(refund, from_frozen + reclaimed, shortfall)
        # The request binds the refund shown, or less.
        min_refund = data.draw(st.one_of(st.just(refund), st.integers(0, refund)), label="min")
        result = self.desk.terminate(plan.agreement_id, plan.consumer_key, min_refund=min_refund)
        assert result.event("RefundGranted").args["refund"] == refund
        self._settle(plan, refund, State.TERMINATED)

    @rule(days=st.integers(0, 40), hours=st.integers(0, 23), expire=st.booleans())
    def advance_time(self, days: int, hours: int, expire: bool) -> None:
        """Time runs; maybe every plan past its expiry (of a merchant not in default) is then
        closed."""
        if days or hours:
            self.backend.advance_time(days * DAY + hours * HOUR)
            # The licence feed checks again before a check expires; the finding is unchanged.
            self.desk.renew_licence_checks(merchant.address for merchant in self.merchants)
        if expire:
            latest = self._latest()
            for plan in self._plans_in(*SIGNED_OR_ACTIVE):
                if (
                    latest > plan.terms.expiry
                    and plan.merchant.status != m.MerchantStatus.DEFAULTED
                ):
                    self._expire(plan)

    @precondition(lambda self: bool(self.plans))
    @rule(
        data=st.data(),
        action=st.sampled_from(["terminate", "cool off", "expire"]),
        fault=st.sampled_from(REQUEST_FAULTS),
    )
    def end_plan_refused(self, data: st.DataObject, action: str, fault: str) -> None:
        """Ending a plan that is not Active, or of a merchant in default (only settlement ends
        those), expiring one before its expiry, ending one with a bad consumer request (for
        another action, expired, valid too long, revoked, signed by someone else or for something
        else, asking a refund above what the plan now gives), or cooling off a used plan is
        refused."""
        plan = data.draw(st.sampled_from(self.plans))
        agreement_id = plan.agreement_id
        merchant = plan.merchant
        stopped = ("AgreementBookMerchantStopped", merchant.address, merchant.status)
        in_default = merchant.status == m.MerchantStatus.DEFAULTED
        expected: tuple[Any, ...]
        if action == "expire":
            latest = self._latest()
            if plan.state not in SIGNED_OR_ACTIVE:
                expected = ("AgreementBookInvalidState", agreement_id, plan.state)
            elif latest + TIME_MARGIN < plan.terms.expiry:
                expected = ("AgreementBookNotExpired", agreement_id, plan.terms.expiry)
            elif latest >= plan.terms.expiry and in_default:
                expected = stopped
            else:
                return  # close to its expiry, or a valid expiry (advance_time does those)
            self._refused(lambda: self.client.expire(self.auditor_key, agreement_id), *expected)
            return
        contract_action = (
            m.ConsumerAction.TERMINATE if action == "terminate" else m.ConsumerAction.COOLING_OFF
        )
        submit = (
            self.client.terminate if action == "terminate" else self.client.cancel_in_cooling_off
        )
        latest = self._latest()
        self.counter += 1
        request = m.ConsumerRequest(agreement_id, contract_action, 0, self.counter, latest + HOUR)
        signed_action, signer = contract_action, plan.consumer_key
        if plan.state != State.ACTIVE:
            expected = ("AgreementBookInvalidState", agreement_id, plan.state)
        elif in_default:
            expected = stopped
        elif fault == "wrong action":
            # A request for another action (a revocation, say) cannot be executed as this one.
            other = data.draw(
                st.sampled_from([a for a in m.ConsumerAction if a != contract_action]),
                label="request action",
            )
            request = dataclasses.replace(request, action=other)
            signed_action = other
            expected = ("AgreementBookWrongRequestAction", contract_action, other)
        elif fault == "deadline":
            deadline = latest - data.draw(st.integers(1, DAY), label="late by")
            request = dataclasses.replace(request, deadline=deadline)
            expected = ("AgreementBookRequestExpired", deadline, ...)
        elif fault == "deadline too far":
            deadline = latest + 7 * DAY + data.draw(st.integers(HOUR, 30 * DAY), label="too far")
            request = dataclasses.replace(request, deadline=deadline)
            expected = ("AgreementBookRequestDeadlineTooFar", deadline, ...)
        elif fault == "revoked nonce":
            # The consumer revoked the request (by its nonce) before anyone executed it.
            revoke = dataclasses.replace(request, action=m.ConsumerAction.REVOKE)
            result = self.client.revoke_request(
                self.desk.operator_key, revoke, revoke.sign(plan.consumer_key, self.domain)
            )
            assert result.event("RequestRevoked").args["nonce"] == request.nonce
            expected = ("AgreementBookRequestUsed", agreement_id, request.nonce)
        elif fault == "signer":
            others = [key for key in self.consumer_keys if key != plan.consumer_key]
            signer = data.draw(st.sampled_from(others), label="wrong consumer")
            expected = (
                "AgreementBookInvalidSignature",
                request.digest(self.domain),
                plan.terms.consumer,
                Account.from_key(signer).address,
            )
        elif fault == "used" and action == "cool off" and plan.units_consumed:
            expected = ("AgreementBookAlreadyConsumed", agreement_id, plan.units_consumed)
        elif fault == "refund below agreed" and action == "terminate":
            # The refund shrank below what the consumer was shown (or was never that much).
            refund = self._refund_now(plan)
            min_refund = refund + data.draw(st.integers(1, 10**6), label="above refund")
            request = dataclasses.replace(request, min_refund=min_refund)
            expected = ("AgreementBookRefundBelowAgreed", agreement_id, min_refund, refund)
        elif fault == "refund below agreed":
            ends_at = plan.cooling_off_ends_at
            min_refund = plan.terms.total_paid + data.draw(st.integers(1, 10**6), label="above")
            request = dataclasses.replace(request, min_refund=min_refund)
            if plan.units_consumed:
                expected = ("AgreementBookAlreadyConsumed", agreement_id, plan.units_consumed)
            elif latest > ends_at:
                expected = ("AgreementBookCoolingOffOver", agreement_id, ends_at)
            elif latest + TIME_MARGIN <= ends_at:
                expected = (
                    "AgreementBookRefundBelowAgreed",
                    agreement_id,
                    min_refund,
                    plan.terms.total_paid,
                )
            else:
                return  # too close to the end of cooling-off to tell
        else:  # the consumer signed the other request: its signature does not cover this one
            signed_action = m.ConsumerAction(1 - contract_action)
            expected = (
                "AgreementBookInvalidSignature",
                request.digest(self.domain),
                plan.terms.consumer,
                ...,
            )
        signature = dataclasses.replace(request, action=signed_action).sign(signer, self.domain)
        event(f"request refused: {expected[0]}")
        self._refused(lambda: submit(self.desk.operator_key, request, signature), *expected)

    # ------------------------------------------------------------ risk, default, insurance

    def _raisable(self) -> list[MerchantModel]:
        return [mm for mm in self._insurable() if mm.tier < m.RiskTier.BLOCKED]

    @precondition(lambda self: bool(self._raisable()))
    @rule(data=st.data())
    def raise_risk_tier(self, data: st.DataObject) -> None:
        """The regulator raises a tier: only plans funded afterwards keep more in custody."""
        merchant = data.draw(st.sampled_from(self._raisable()))
        tier = data.draw(
            st.sampled_from([t for t in m.RiskTier if t > merchant.tier]), label="tier"
        )
        self.client.set_risk_tier(
            self.desk.regulator_key, merchant.address, tier, self._fresh("risk")
        )
        merchant.tier = tier
        self._check_merchant(merchant)

    def _insurable(self) -> list[MerchantModel]:
        return [mm for mm in self.merchants if mm.status != m.MerchantStatus.DEFAULTED]

    @precondition(lambda self: len(self.policies) < MAX_POLICIES and bool(self._insurable()))
    @rule(data=st.data(), coverage=st.integers(1, 300_000), days=st.integers(1, 400))
    def write_policy(self, data: st.DataObject, coverage: int, days: int) -> None:
        """The insurer writes a performance bond on a merchant (it may lapse as time runs)."""
        self._write_policy(data.draw(st.sampled_from(self._insurable())), coverage, days)

    @precondition(
        lambda self: any(
            mm.status == m.MerchantStatus.APPROVED and mm.plan_count for mm in self.merchants
        )
    )
    @rule(
        data=st.data(),
        insure=st.integers(0, 2).map(bool),
        coverage=st.integers(1, 300_000),
        settle_now=st.integers(0, 2).map(bool),
    )
    def declare_default(
        self, data: st.DataObject, insure: bool, coverage: int, settle_now: bool
    ) -> None:
        """The regulator declares a merchant in default, with or without a policy written
        just before; maybe all its plans are settled and their set-off distributed at once."""
        merchant = data.draw(
            st.sampled_from(
                [
                    mm
                    for mm in self.merchants
                    if mm.status == m.MerchantStatus.APPROVED and mm.plan_count
                ]
            )
        )
        if insure:
            self._write_policy(merchant, coverage, 365)
        self.client.declare_default(
            self.desk.regulator_key, merchant.address, self._fresh("default")
        )
        merchant.status = m.MerchantStatus.DEFAULTED
        self._check_merchant(merchant)
        if settle_now:
            own = [plan for plan in self.plans if plan.merchant is merchant]
            self._settle_default(own)
            self._distribute(merchant, data.draw(st.permutations(own), label="distribution"))

    @precondition(
        lambda self: any(p.merchant.status == m.MerchantStatus.DEFAULTED for p in self.plans)
    )
    @rule(data=st.data())
    def settle_default(self, data: st.DataObject) -> None:
        """Some plans of defaulted merchants are settled; plans settled before are skipped (a
        retry)."""
        candidates = [p for p in self.plans if p.merchant.status == m.MerchantStatus.DEFAULTED]
        self._settle_default(
            data.draw(
                st.lists(st.sampled_from(candidates), min_size=1, max_size=len(candidates) + 1)
            )
        )

    def _ready_for_set_off(self) -> list[MerchantModel]:
        return [
            mm
            for mm in self.merchants
            if self._set_off_ready(mm) and bool(self._awaiting_set_off(mm))
        ]

    @precondition(lambda self: bool(self._ready_for_set_off()))
    @rule(data=st.data())
    def distribute_set_off(self, data: st.DataObject) -> None:
        """Once every plan of a defaulted merchant is settled, some of them (in any order) are
        paid their shortfall from its set-off pool first, then by its insurer."""
        merchant = data.draw(st.sampled_from(self._ready_for_set_off()), label="merchant")
        awaiting = self._awaiting_set_off(merchant)
        self._distribute(
            merchant,
            data.draw(
                st.lists(st.sampled_from(awaiting), min_size=1, unique_by=id),
                label="distribution",
            ),
        )

    def _distribute_refused(self, data: st.DataObject) -> None:
        """A distribution before every plan of the merchant is settled, or naming a plan that is
        another merchant's, distributed already (or twice in the list), is refused whole."""
        merchant = data.draw(
            st.sampled_from([mm for mm in self.merchants if mm.plan_count]), label="merchant"
        )
        chosen = data.draw(st.lists(st.sampled_from(self.plans), max_size=3), label="plans")
        if self._set_off_ready(merchant):
            awaiting = self._awaiting_set_off(merchant)
            chosen = (
                data.draw(st.lists(st.sampled_from(awaiting), max_size=2, unique_by=id))
                if awaiting
                else []
            )
            bad = [
                p
                for p in self.plans
                if p.merchant is not merchant or p.default_stage == DISTRIBUTED
            ] + chosen
            if not bad:
                return
            chosen.insert(
                data.draw(st.integers(0, len(chosen)), label="position"),
                data.draw(st.sampled_from(bad), label="bad plan"),
            )
        expected = self._distribute_error(merchant, chosen)
        assert expected is not None
        self._refused(
            lambda: self.client.distribute_set_off(
                self.auditor_key, merchant.address, [p.agreement_id for p in chosen]
            ),
            *expected,
        )

    @precondition(lambda self: bool(self.pending) or bool(self.paid))
    @rule(data=st.data(), returned=st.booleans())
    def instruction_outcome(self, data: st.DataObject, returned: bool) -> None:
        """The bank rejects an unpaid instruction, or a paid one comes back into custody."""
        if (returned and self.paid) or not self.pending:
            self._outcome(data.draw(st.sampled_from(self.paid), label="returned"), True)
        else:
            self._outcome(data.draw(st.sampled_from(self.pending), label="rejected"), False)

    @precondition(lambda self: bool(self.plans))
    @rule(
        data=st.data(),
        payee=st.sampled_from(m.Payee),
        fault=st.sampled_from(
            ["settle healthy", "distribute", "pay excess", "pay nothing", "pay reference"]
        ),
    )
    def settle_or_pay_refused(self, data: st.DataObject, payee: m.Payee, fault: str) -> None:
        """A settlement naming a plan of a merchant not in default is refused as a whole (even
        after plans of defaulted merchants listed before it); so is a bad distribution of a
        set-off; an instruction when nothing is due (or of nothing, or to a merchant in default)
        is refused, and so is a payout of more than its instruction claimed or quoting a used
        bank reference (of any credit, payout or return)."""
        if fault == "settle healthy" and any(
            p.merchant.status != m.MerchantStatus.DEFAULTED for p in self.plans
        ):
            self._settle_healthy_refused(data)
        elif fault == "distribute":
            self._distribute_refused(data)
        else:
            self._payout_refused(data, payee, fault)

    def _settle_healthy_refused(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self.plans), max_size=3))
        healthy = [p for p in self.plans if p.merchant.status != m.MerchantStatus.DEFAULTED]
        chosen.insert(
            data.draw(st.integers(0, len(chosen)), label="position"),
            data.draw(st.sampled_from(healthy), label="healthy plan"),
        )
        first = next(p for p in chosen if p.merchant.status != m.MerchantStatus.DEFAULTED)
        self._refused(
            lambda: self.client.settle_default(self.auditor_key, [p.agreement_id for p in chosen]),
            "AgreementBookMerchantNotDefaulted",
            first.merchant.address,
        )

    # ------------------------------------------------------------ payouts

    @precondition(lambda self: bool(self._payable()) or bool(self.pending))
    @rule(data=st.data())
    def confirm_payout(self, data: st.DataObject) -> None:
        """The bank feed instructs part (or all) of what a merchant or consumer is owed; the bank
        pays it at once or later (an earlier instruction may be paid now)."""
        payable = self._payable()
        if self.pending and (not payable or data.draw(st.booleans(), label="pay pending")):
            self._confirm(data.draw(st.sampled_from(self.pending), label="pending"))
            return
        plan, payee = data.draw(st.sampled_from(payable))
        outstanding = plan.outstanding(payee, self._latest())
        assert outstanding
        amount = data.draw(st.one_of(st.just(outstanding), st.integers(1, outstanding)))
        pending = self._instruct(plan, payee, amount)
        if data.draw(st.integers(0, 3).map(bool), label="paid at once"):
            self._confirm(pending)

    def _payout_refused(self, data: st.DataObject, payee: m.Payee, fault: str) -> None:
        plan = data.draw(st.sampled_from(self.plans))
        agreement_id = plan.agreement_id
        outstanding = plan.outstanding(payee, self._latest())
        if outstanding is None:
            return  # too close to the end of cooling-off to tell
        in_default = plan.merchant.status == m.MerchantStatus.DEFAULTED
        if payee == m.Payee.MERCHANT and in_default:
            # Nothing more is instructed to a merchant in default, not even what it kept.
            self._refused(
                lambda: self.desk.instruct_payment(agreement_id, payee, max(outstanding, 1)),
                "AgreementBookMerchantStopped",
                plan.merchant.address,
                plan.merchant.status,
            )
            return
        if fault == "pay nothing" or outstanding == 0:
            amount = 0 if fault == "pay nothing" else data.draw(st.integers(1, 10**6))
            self._refused(
                lambda: self.desk.instruct_payment(agreement_id, payee, amount),
                "AgreementBookNothingToInstruct",
                agreement_id,
                payee,
            )
            return
        if fault == "pay reference" and self.bank_references:
            # A bank reference counts once, whatever it booked: a credit, a payout, a return.
            pending = self._instruct(plan, payee, outstanding)
            reference = data.draw(st.sampled_from(self.bank_references), label="reference")
            self._refused(
                lambda: self.desk.confirm_payout(
                    agreement_id,
                    payee,
                    outstanding,
                    bank_reference=reference,
                    instruction_id=pending.instruction_id,
                ),
                "CustodyDeskDuplicateBankReference",
                reference,
            )
            return
        # Asking for more than is due claims only what is due; the bank cannot pay more.
        excess = outstanding + data.draw(st.integers(1, 10**6))
        pending = self._instruct_clamped(plan, payee, excess, outstanding)
        self._refused(
            lambda: self.desk.confirm_payout(
                agreement_id, payee, excess, instruction_id=pending.instruction_id
            ),
            "CustodyDeskInstructionMismatch",
            pending.instruction_id,
            agreement_id,
            payee,
            outstanding,
        )

    def _instruct_clamped(
        self, plan: PlanModel, payee: m.Payee, asked: int, outstanding: int
    ) -> PendingInstruction:
        """An instruction asking for more than is due: the book claims only ``outstanding``."""
        releases = payee == m.Payee.MERCHANT and plan.releases_upfront_at(self._latest())
        instruction_id, result = self.desk.instruct_payment(plan.agreement_id, payee, asked)
        assert result.event("PaymentInstructed").args["amount"] == outstanding
        if releases:
            plan.upfront_released = True
        if payee == m.Payee.MERCHANT:
            plan.ledger.instructed_to_merchant += outstanding
        else:
            plan.ledger.instructed_to_consumer += outstanding
        pending = PendingInstruction(plan, instruction_id, payee, outstanding)
        self.pending.append(pending)
        return pending

    # ------------------------------------------------------------ invariants

    @invariant()
    def every_agreement_keeps_the_rules(self) -> None:
        for plan in self.plans:
            agreement = self.client.get_agreement(plan.agreement_id)
            ledger = self.client.get_ledger(plan.agreement_id)
            name = f"agreement 0x{plan.agreement_id.hex()[:12]}"
            state = State(agreement.state)

            # Money is conserved.
            assert ledger.is_conserved(), f"{name}: money not conserved: {ledger}"
            # While Active, released is the derived counter, exactly (rounded down).
            if state == State.ACTIVE:
                total = agreement.total_paid + agreement.bonus
                earned = (ledger.deposited - ledger.upfront) * agreement.value_consumed // total
                assert ledger.released <= earned, f"{name}: released beyond earned: {ledger}"
                assert ledger.released == earned, f"{name}: released != {earned}: {ledger}"
                assert ledger.refunded == ledger.refund_due == 0, f"{name}: {ledger}"
            # Nothing paid beyond its instruction, nothing instructed beyond entitlement, no refund
            # beyond the payment, deposits whole.
            assert ledger.paid_to_merchant <= ledger.instructed_to_merchant, f"{name}: {ledger}"
            assert ledger.paid_to_consumer <= ledger.instructed_to_consumer, f"{name}: {ledger}"
            assert (
                ledger.instructed_to_merchant + ledger.set_off_given
                <= ledger.upfront + ledger.released
            ), f"{name}: {ledger}"
            # The consumer is paid at most its refund, its refused credits and its set-off.
            owed_to_consumer = ledger.refunded + ledger.credits_refused + ledger.set_off_covered
            assert ledger.instructed_to_consumer <= owed_to_consumer, f"{name}: {ledger}"
            assert ledger.paid_to_consumer <= owed_to_consumer, f"{name}: {ledger}"
            # Set-off only after the merchant's default: given once settled, covered once
            # distributed.
            if plan.default_stage == NOT_SETTLED:
                assert ledger.set_off_given == ledger.set_off_covered == 0, f"{name}: {ledger}"
            elif plan.default_stage == SETTLED:
                assert ledger.set_off_covered == ledger.insured_shortfall == 0, f"{name}: {ledger}"
            if not agreement.upfront_released:
                # Held only while the consumer may still cool off (or never funded).
                assert ledger.deposited == 0 or (
                    state == State.ACTIVE and agreement.units_consumed == 0
                ), f"{name}: {agreement}"
                assert ledger.instructed_to_merchant == ledger.released == 0, f"{name}: {ledger}"
            assert ledger.refund_due <= agreement.total_paid, f"{name}: {ledger}"
            assert ledger.deposited in (0, agreement.total_paid), f"{name}: {ledger}"
            if state in m.TERMINAL_STATES:
                assert ledger.frozen == 0, f"{name}: {state.name} keeps {ledger.frozen} frozen"
            if state in SETTLED_STATES and ledger.deposited:
                # The refund granted is paid from custody, from the defaulted merchant's set-off,
                # by insurance, or owed.
                assert ledger.refund_due == (
                    ledger.refunded
                    + ledger.set_off_covered
                    + ledger.insured_shortfall
                    + ledger.merchant_owed
                ), f"{name}: refund not accounted for: {ledger}"
            else:
                assert ledger.refund_due == ledger.merchant_owed == 0, f"{name}: {ledger}"
                assert ledger.insured_shortfall == ledger.set_off_covered == 0, f"{name}: {ledger}"
            if (
                ledger.insured_shortfall or ledger.merchant_owed or ledger.set_off_covered
            ) and not plan.reopened:
                # Nobody else is asked to pay while custody still holds unclaimed merchant money
                # (unless an instruction came back after the settlement: see reopened).
                assert (
                    ledger.instructed_to_merchant + ledger.set_off_given
                    == ledger.upfront + ledger.released
                ), f"{name}: shortfall while the merchant's entitlement is uninstructed: {ledger}"
            if plan.default_stage != NOT_SETTLED:
                # Once settled on default, the merchant's whole entitlement is instructed (before)
                # or set aside.
                assert (
                    ledger.instructed_to_merchant + ledger.set_off_given
                    == ledger.upfront + ledger.released
                ), f"{name}: entitlement left to a defaulted merchant: {ledger}"
            # Terminal states stay terminal.
            if plan.agreement_id in self.seen_terminal:
                was = self.seen_terminal[plan.agreement_id]
                assert state == was, f"{name}: left terminal {was.name} for {state.name}"
            elif state in m.TERMINAL_STATES:
                self.seen_terminal[plan.agreement_id] = state
            # Completed: every unit used, the whole frozen share released.
            if state == State.COMPLETED:
                assert agreement.units_consumed == agreement.units, f"{name}: {agreement}"
                assert ledger.released == ledger.deposited - ledger.upfront, f"{name}: {ledger}"

            # The model matches the chain.
            expected = plan.expected_agreement()
            assert agreement == expected, _diff(name, expected, agreement)
            assert dataclasses.astuple(ledger) == dataclasses.astuple(plan.ledger), _diff(
                name, plan.ledger, ledger
            )

            # Insurance: only a distributed default with a shortfall left after the set-off opens a
            # claim (whatever the plan's state: a termination may have left the shortfall).
            if plan.merchant.status == m.MerchantStatus.DEFAULTED:
                claim_id = self.client.claim_of_agreement(plan.agreement_id)
                if plan.claim is None:
                    assert claim_id == 0, f"{name}: unexpected claim {claim_id}"
                else:
                    claim = self.client.get_claim(claim_id)
                    assert claim.covered <= claim.loss, f"{name}: claim covers beyond loss"
                    got = (claim.policy_id, claim.loss, claim.covered)
                    want = (plan.claim.policy_id, plan.claim.loss, plan.claim.covered)
                    assert got == want, f"{name}: claim {claim} != model {plan.claim}"
                    parts = [(p.policy_id, p.amount) for p in self.client.claim_parts(claim_id)]
                    assert parts == plan.claim.parts, f"{name}: parts {parts} != {plan.claim}"
                    assert claim.covered == ledger.insured_shortfall, f"{name}: {claim} {ledger}"
                    status = m.ClaimStatus.OPEN if claim.covered else m.ClaimStatus.UNCOVERED
                    assert claim.status == status, f"{name}: {claim}"
            else:
                assert plan.claim is None

        # Each merchant's custody account holds its plans' deposits and refused credits less the
        # confirmed payouts (returns put back); its set-off pool is what was set aside and not
        # yet used, and it counts its plans settled and distributed.
        for merchant in self.merchants:
            own = [plan for plan in self.plans if plan.merchant is merchant]
            held = sum(
                plan.ledger.deposited
                + plan.ledger.credits_refused
                - plan.ledger.paid_to_merchant
                - plan.ledger.paid_to_consumer
                for plan in own
            )
            assert self.client.custody_held(merchant.address) == held, (
                f"merchant {merchant.address}: custody held"
                f" {self.client.custody_held(merchant.address)}, model {held}"
            )
            pool = sum(p.ledger.set_off_given - p.ledger.set_off_covered for p in own)
            assert merchant.pool == pool, f"merchant {merchant.address}: pool {merchant.pool}"
            set_off = (merchant.pool, merchant.settled, merchant.distributed)
            assert self.client.set_off_of(merchant.address) == set_off, (
                f"merchant {merchant.address}: set-off {self.client.set_off_of(merchant.address)},"
                f" model {set_off}"
            )
            assert merchant.settled == sum(p.default_stage != NOT_SETTLED for p in own)
            assert merchant.distributed == sum(p.default_stage == DISTRIBUTED for p in own)

        # A policy's reservations are its claims' cover, within its limit. Only the policies
        # of defaulted merchants can have claims.
        for merchant in self.merchants:
            if merchant.status != m.MerchantStatus.DEFAULTED:
                continue
            for policy_id in merchant.policy_ids:
                written = self.client.get_policy(policy_id)
                covered = sum(
                    amount
                    for plan in self.plans
                    if plan.claim is not None
                    for part_policy, amount in plan.claim.parts
                    if part_policy == policy_id
                )
                assert written.reserved == self.policies[policy_id].reserved == covered, (
                    f"policy {policy_id}: reserved {written.reserved}, model"
                    f" {self.policies[policy_id].reserved}, claims cover {covered}"
                )
                assert covered <= written.coverage_limit, f"policy {policy_id} beyond its limit"


# ---------------------------------------------------------------- the test


@pytest.mark.parametrize("backend", ["eth-tester"], indirect=True)
def test_agreement_book_invariants(
    backend: Any,
    deployed: DeployedSystem,
    desk: PlanDesk,
    config: DevnetConfig,
    quick_transactions: None,
) -> None:
    if backend.name != "eth-tester":  # the machine's many examples are for the in-process chain
        pytest.skip("the state machine runs on eth-tester only")
    client = deployed.client
    merchants: list[MerchantModel] = []
    for demo in config.demo.merchants:
        key = demo.key.private_key
        address = desk.onboard(key, demo.uscc, demo.name, demo.industry)
        template_ids = tuple(
            sorted(
                tid
                for (_, industry), tid in deployed.template_ids.items()
                if industry == demo.industry
            )
        )
        merchants.append(MerchantModel(key, address, demo.industry, template_ids))
    templates = {tid: client.get_template(tid) for tid in deployed.template_ids.values()}
    floors = {tier: client.custody_floor(tier) for tier in m.RiskTier}
    # Put the chain a day ahead of the wall clock: every block is then stamped one second after
    # the one before (not by the clock), so an example replays with the same timestamps, for
    # runs shorter than a day (the deep profile takes about 35 minutes).
    backend.advance_time(DAY)

    run_state_machine_as_test(
        lambda: AgreementBookMachine(backend, desk, config, merchants, templates, floors),  # type: ignore[arg-type]
        settings=settings(),
    )
