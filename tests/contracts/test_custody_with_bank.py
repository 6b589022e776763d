"""Stateful test of the money out of custody, with the bank as a party of its own.

A Hypothesis ``RuleBasedStateMachine`` plays merchants, consumers, the regulator, the bank oracle
and the custody bank against the deployed system on eth-tester. The bank is modelled apart from
the chain, because it is a different party that does not do what the chain asks when the chain
asks it: an instruction is executed late, rejected, or (once paid) returned; the bank's reports
reach the chain late, out of order, and sometimes twice. Meanwhile plans are funded, consumed,
cooled off, terminated, expired and settled on default (the defaulted merchant's set-off first,
then an insurance claim), and the upfront share waits out the cooling-off period.

The oracle is modelled as oracle/bank.py works: it reads the book's entitlement events and asks
the chain to register a payment instruction for each, and it sends the bank only instructions the
chain registered.

After every step the machine checks, for every merchant and plan:

- the bank's custody balance equals the book's ``custodyHeld`` minus the payouts the bank made
  but has not reported yet — so once every instruction is settled they are equal;
- no plan paid out more than was paid in, and no instruction was paid twice;
- no consumer got more than they paid; the merchant got no more than upfront + released;
- per plan, deposited = frozen + released + refunded + upfront.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
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
from chain.client import TxResult
from chain.config import DevnetConfig
from chain.deploy import DeployedSystem
from chain.errors import ContractRevert
from chain.scenario import SECONDS_PER_DAY, PlanDesk, sha256

DAY = SECONDS_PER_DAY
# The book's events the bank oracle turns into payment instructions (as oracle/bank.py does).
ENTITLEMENTS = ("FundsReleased", "RefundGranted", "CreditRefused", "SetOffApplied")
MAX_PLANS = 8
State = m.AgreementState


@dataclass
class Merchant:
    key: str
    address: str
    template_id: int
    cooling_off_days: int


@dataclass
class Plan:
    agreement_id: bytes
    merchant: Merchant
    consumer_key: str
    paid: int
    units: int
    unit_price: int
    next_sequence: int = 1
    # Everything the consumer paid into custody for the plan, refused credits included.
    paid_in: int = 0


@dataclass
class Instruction:
    """A payment out of custody, as the oracle and the bank know it."""

    instruction_id: bytes
    agreement_id: bytes
    merchant: str
    payee: m.Payee
    amount: int
    # "instructed" (the bank has it), "paid", "rejected", "returned"
    state: str = "instructed"


@dataclass
class BankReport:
    """A fact the bank's feed owes the chain: a payout, a rejection or a return."""

    kind: str  # "paid", "rejected", "returned"
    instruction: Instruction
    bank_reference: bytes
    delivered: int = 0


@dataclass
class _Due:
    """What the oracle's pass asks for, shaped like the release event it otherwise reads."""

    agreement_id: bytes
    amount: int
    name: str = "FundsReleased"

    @property
    def args(self) -> dict[str, Any]:
        return {"agreementId": self.agreement_id, "amount": self.amount}


@dataclass
class Bank:
    """The custody bank: balances, and what it paid per plan and instruction."""

    balance: dict[str, int] = field(default_factory=dict)
    paid_out: dict[bytes, int] = field(default_factory=dict)
    paid_to: dict[tuple[bytes, m.Payee], int] = field(default_factory=dict)
    paid_instructions: set[bytes] = field(default_factory=set)


class CustodyWithBankMachine(RuleBasedStateMachine):
    """Plans' money flows interleaved with a late, refusing, repeating custody bank."""

    def __init__(
        self, backend: Any, desk: PlanDesk, merchants: list[Merchant], consumers: list[str]
    ) -> None:
        super().__init__()
        self.backend = backend
        self.snapshot_id = backend.snapshot()
        self.desk = desk
        self.client = desk.client
        self.merchants = [dataclasses.replace(merchant) for merchant in merchants]
        self.consumers = consumers
        self.plans: list[Plan] = []
        self.bank = Bank(balance={merchant.address: 0 for merchant in merchants})
        # Events the oracle has read but not yet turned into registered instructions.
        self.unread: list[Any] = []
        self.instructions: list[Instruction] = []
        self.reports: list[BankReport] = []
        self.defaulted: set[str] = set()
        self.counter = 0

    def teardown(self) -> None:
        self.backend.revert(self.snapshot_id)

    # ------------------------------------------------------------ helpers

    def _fresh(self, label: str) -> bytes:
        self.counter += 1
        return sha256(f"bank-machine:{label}:{self.counter}")

    def _seen(self, result: TxResult) -> TxResult:
        """The oracle reads the transaction's entitlement events (it scans every block)."""
        self.unread.extend(event for event in result.events if event.name in ENTITLEMENTS)
        return result

    def _try(self, action: Any, *allowed: str) -> TxResult | None:
        """Run a chain action a party may try at any time; the listed refusals are fine."""
        try:
            return self._seen(action())
        except ContractRevert as refusal:
            assert refusal.error in allowed, f"unexpected refusal {refusal}"
            return None

    def _plan(self, data: st.DataObject, *states: State) -> Plan | None:
        plans = [p for p in self.plans if self.client.get_agreement(p.agreement_id).state in states]
        return data.draw(st.sampled_from(plans), label="plan") if plans else None

    def _outstanding(self, kind: str) -> list[Instruction]:
        return [i for i in self.instructions if i.state == kind]

    # ------------------------------------------------------------ the oracle

    def _register(self, event: Any) -> None:
        """The oracle asks the chain to register one entitlement event as an instruction.

        The chain instructs what is still due, up to the event's amount; it refuses when a
        settlement took the entitlement back first (nothing to pay, nothing sent to the bank).
        """
        agreement_id = bytes(event.args["agreementId"])
        if event.name == "FundsReleased":
            payee, amount = m.Payee.MERCHANT, int(event.args["amount"])
        elif event.name == "RefundGranted":
            payee, amount = m.Payee.CONSUMER, int(event.args["fromCustody"])
        else:  # a refused credit or a set-off goes to the consumer in full
            payee, amount = m.Payee.CONSUMER, int(event.args["amount"])
        if amount == 0:
            return
        try:
            instruction_id, result = self.desk.instruct_payment(agreement_id, payee, amount)
        except ContractRevert as refusal:
            assert refusal.error in (
                "AgreementBookNothingToInstruct",
                "AgreementBookMerchantStopped",
            ), str(refusal)
            return
        self._seen(result)
        instructed = result.event("PaymentInstructed").args
        assert 0 < instructed["amount"] <= amount
        self.instructions.append(
            Instruction(
                instruction_id,
                agreement_id,
                instructed["merchant"],
                payee,
                int(instructed["amount"]),
            )
        )

    def _report(self, report: BankReport) -> None:
        """The bank feed carries one bank fact to the chain."""
        instruction = report.instruction
        if report.kind == "paid":
            self.desk.confirm_payout(
                instruction.agreement_id,
                instruction.payee,
                instruction.amount,
                bank_reference=report.bank_reference,
                instruction_id=instruction.instruction_id,
            )
        else:
            self.desk.report_instruction_outcome(
                instruction.instruction_id,
                m.InstructionState.REJECTED
                if report.kind == "rejected"
                else m.InstructionState.RETURNED,
                bank_reference=report.bank_reference,
            )

    # ------------------------------------------------------------ rules: plans

    @initialize()
    def start(self) -> None:
        self.backend.advance_time(DAY)
        # A bond on the first merchant, so some defaults also draw on insurance (claims are paid
        # by the insurer, outside custody: the custody checks must not count them).
        self.desk.write_policy(self.merchants[0].address, 150_000)

    @precondition(lambda self: len(self.plans) < MAX_PLANS)
    @rule(data=st.data(), units=st.integers(1, 10), price=st.integers(1, 20_000))
    def open_and_fund(self, data: st.DataObject, units: int, price: int) -> None:
        merchant = data.draw(st.sampled_from(self.merchants), label="merchant")
        if merchant.address in self.defaulted:
            return
        consumer = data.draw(st.sampled_from(self.consumers), label="consumer")
        signed = self.desk.sign_agreement(
            merchant.key, consumer, merchant.template_id, units=units, unit_price=price,
            term_days=30, salt=self._fresh("salt"),
        )
        agreement_id, _ = self.desk.open(signed)
        paid = signed.terms.total_paid
        self._seen(self.desk.fund(agreement_id, paid))
        self.bank.balance[merchant.address] += paid
        self.plans.append(Plan(agreement_id, merchant, consumer, paid, units, price, paid_in=paid))

    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        plan = self._plan(data, State.ACTIVE)
        if plan is None or plan.merchant.address in self.defaulted:
            return
        signed = self.desk.sign_record(
            plan.agreement_id, plan.next_sequence, plan.merchant.key, plan.consumer_key,
            unit_price=plan.unit_price,
        )
        if self._try(lambda: self.desk.consume(signed), "AgreementBookInvalidConsumptionTime"):
            plan.next_sequence += 1

    @rule(data=st.data())
    def cool_off(self, data: st.DataObject) -> None:
        plan = self._plan(data, State.ACTIVE)
        if plan is not None:
            self._try(
                lambda: self.desk.cool_off(plan.agreement_id, plan.consumer_key),
                "AgreementBookAlreadyConsumed",
                "AgreementBookCoolingOffOver",
                "AgreementBookMerchantStopped",
            )

    @rule(data=st.data())
    def terminate(self, data: st.DataObject) -> None:
        plan = self._plan(data, State.ACTIVE)
        if plan is not None:
            self._try(
                lambda: self.desk.terminate(plan.agreement_id, plan.consumer_key),
                "AgreementBookMerchantStopped",
            )

    @rule(data=st.data(), days=st.sampled_from([1, 3, 8, 31]))
    def time_passes(self, data: st.DataObject, days: int) -> None:
        self.backend.advance_time(days * DAY)
        # The licence oracle re-attests before a check expires.
        self.desk.renew_licence_checks(merchant.address for merchant in self.merchants)
        now = self.client.latest_timestamp()
        for plan in self.plans:
            agreement = self.client.get_agreement(plan.agreement_id)
            if agreement.state == State.ACTIVE and agreement.expiry < now:
                self._try(
                    lambda plan=plan: self.client.expire(self.desk.operator_key, plan.agreement_id),
                    "AgreementBookMerchantStopped",
                )

    @rule(data=st.data())
    def default_and_settle(self, data: st.DataObject) -> None:
        merchant = data.draw(st.sampled_from(self.merchants), label="defaulting merchant")
        if merchant.address not in self.defaulted:
            self.client.declare_default(self.desk.regulator_key, merchant.address)
            self.defaulted.add(merchant.address)
        ids = [p.agreement_id for p in self.plans if p.merchant.address == merchant.address]
        if ids:
            # Settled, then the merchant's set-off pays its consumers' shortfalls.
            for result in self.desk.settle_default(merchant.address, ids):
                self._seen(result)

    @precondition(lambda self: self.plans)
    @rule(data=st.data())
    def consumer_pays_twice(self, data: st.DataObject) -> None:
        """A payment the plan cannot accept (paid again): recorded, and owed back in full."""
        plan = data.draw(st.sampled_from(self.plans), label="paid twice")
        result = self._seen(self.desk.fund(plan.agreement_id, plan.paid))
        assert result.event("CreditRefused").args["amount"] == plan.paid
        self.bank.balance[plan.merchant.address] += plan.paid
        plan.paid_in += plan.paid

    # ------------------------------------------------------------ rules: oracle and bank

    @precondition(lambda self: self.unread)
    @rule(data=st.data())
    def oracle_registers_instruction(self, data: st.DataObject) -> None:
        event = self.unread.pop(data.draw(st.integers(0, len(self.unread) - 1), label="event"))
        self._register(event)

    @precondition(lambda self: self.plans)
    @rule(data=st.data())
    def oracle_pass_over_a_plan(self, data: st.DataObject) -> None:
        """The oracle's periodic pass asks for whatever is due to a plan's merchant.

        This is how a held upfront share is paid once the cooling-off period is over.
        """
        plan = data.draw(st.sampled_from(self.plans), label="plan passed over")
        event = _Due(plan.agreement_id, plan.paid)
        self._register(event)  # type: ignore[arg-type]

    @precondition(lambda self: self._outstanding("instructed"))
    @rule(data=st.data(), outcome=st.sampled_from(["pay", "pay", "reject"]))
    def bank_executes(self, data: st.DataObject, outcome: str) -> None:
        instruction = data.draw(st.sampled_from(self._outstanding("instructed")), label="instr")
        if outcome == "pay":
            assert instruction.instruction_id not in self.bank.paid_instructions
            self.bank.paid_instructions.add(instruction.instruction_id)
            self.bank.balance[instruction.merchant] -= instruction.amount
            self.bank.paid_out[instruction.agreement_id] = (
                self.bank.paid_out.get(instruction.agreement_id, 0) + instruction.amount
            )
            key = (instruction.agreement_id, instruction.payee)
            self.bank.paid_to[key] = self.bank.paid_to.get(key, 0) + instruction.amount
            instruction.state = "paid"
            self.reports.append(BankReport("paid", instruction, self._fresh("bank reference")))
        else:
            instruction.state = "rejected"
            self.reports.append(BankReport("rejected", instruction, self._fresh("pain.002")))

    @precondition(lambda self: self._outstanding("paid"))
    @rule(data=st.data())
    def payment_comes_back(self, data: st.DataObject) -> None:
        """The payee's bank returns a payment (closed account): the money is in custody again."""
        instruction = data.draw(st.sampled_from(self._outstanding("paid")), label="returned")
        paid_report = next(
            r for r in self.reports if r.instruction is instruction and r.kind == "paid"
        )
        if not paid_report.delivered:
            return  # the bank feed reports in booking order: the payout first
        instruction.state = "returned"
        self.bank.balance[instruction.merchant] += instruction.amount
        self.bank.paid_out[instruction.agreement_id] -= instruction.amount
        self.bank.paid_to[(instruction.agreement_id, instruction.payee)] -= instruction.amount
        self.reports.append(BankReport("returned", instruction, self._fresh("return reference")))

    @precondition(lambda self: any(report.delivered == 0 for report in self.reports))
    @rule(data=st.data())
    def bank_feed_reports(self, data: st.DataObject) -> None:
        """A report reaches the chain, in any order."""
        waiting = [report for report in self.reports if report.delivered == 0]
        report = data.draw(st.sampled_from(waiting), label="report")
        report.delivered += 1
        self._report(report)

    @precondition(lambda self: any(report.delivered for report in self.reports))
    @rule(data=st.data())
    def bank_feed_repeats_a_report(self, data: st.DataObject) -> None:
        """A report reaches the chain a second time: refused, nothing changes."""
        delivered = [report for report in self.reports if report.delivered]
        report = data.draw(st.sampled_from(delivered), label="repeated report")
        with pytest.raises(ContractRevert) as caught:
            self._report(report)
        assert caught.value.error in (
            "CustodyDeskDuplicateBankReference",
            "CustodyDeskInstructionNotOutstanding",
        ), str(caught.value)

    # ------------------------------------------------------------ invariants

    @invariant()
    def custody_matches_the_bank(self) -> None:
        unreported: dict[str, int] = {merchant.address: 0 for merchant in self.merchants}
        for report in self.reports:
            if report.delivered == 0 and report.kind == "paid":
                unreported[report.instruction.merchant] += report.instruction.amount
            if report.delivered == 0 and report.kind == "returned":
                unreported[report.instruction.merchant] -= report.instruction.amount
        for merchant in self.merchants:
            held = self.client.custody_held(merchant.address)
            assert self.bank.balance[merchant.address] == held - unreported[merchant.address], (
                f"merchant {merchant.address}: bank holds {self.bank.balance[merchant.address]},"
                f" the book {held}, {unreported[merchant.address]} paid and not yet reported"
            )

    @invariant()
    def no_fen_paid_twice(self) -> None:
        for plan in self.plans:
            ledger = self.client.get_ledger(plan.agreement_id)
            paid_out = self.bank.paid_out.get(plan.agreement_id, 0)
            to_consumer = self.bank.paid_to.get((plan.agreement_id, m.Payee.CONSUMER), 0)
            to_merchant = self.bank.paid_to.get((plan.agreement_id, m.Payee.MERCHANT), 0)
            assert paid_out <= plan.paid_in + ledger.set_off_covered, (
                f"plan paid out {paid_out} of {plan.paid_in} paid in"
            )
            owed = ledger.refunded + ledger.credits_refused + ledger.set_off_covered
            assert to_consumer <= owed, "consumer paid beyond what is owed"
            assert to_consumer <= plan.paid_in, "consumer paid more than they paid in"
            assert to_merchant <= ledger.upfront + ledger.released, "merchant paid beyond due"
            state = self.client.get_agreement(plan.agreement_id).state
            if state in (State.COOLED_OFF, State.TERMINATED, State.EXPIRED, State.DEFAULTED):
                accounted = (
                    ledger.refunded
                    + ledger.set_off_covered
                    + ledger.insured_shortfall
                    + ledger.merchant_owed
                )
                assert ledger.refund_due == accounted, f"refund not accounted for: {ledger}"
            if state == State.COOLED_OFF:
                assert ledger.refunded == plan.paid and ledger.merchant_owed == 0, (
                    f"a cooling-off must refund all from custody: {ledger}"
                )
            assert ledger.deposited == (
                ledger.frozen + ledger.released + ledger.refunded + ledger.upfront
            ), f"money not conserved: {ledger}"


@pytest.mark.parametrize("backend", ["eth-tester"], indirect=True)
def test_custody_with_a_bank_never_pays_a_fen_twice(
    backend: Any,
    deployed: DeployedSystem,
    desk: PlanDesk,
    config: DevnetConfig,
    quick_transactions: None,
) -> None:
    merchants: list[Merchant] = []
    for demo in config.demo.merchants[:2]:
        address = desk.onboard(demo.key.private_key, demo.uscc, demo.name, demo.industry)
        template_id = min(
            tid for (_, industry), tid in deployed.template_ids.items() if industry == demo.industry
        )
        template = deployed.client.get_template(template_id)
        merchants.append(
            Merchant(demo.key.private_key, address, template_id, template.cooling_off_days)
        )
    consumers = [consumer.key.private_key for consumer in config.demo.consumers]
    run_state_machine_as_test(
        lambda: CustodyWithBankMachine(backend, desk, merchants, consumers),
        settings=settings(),
    )
