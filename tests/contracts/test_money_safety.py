"""Regression tests for the holes a money-safety audit found (issue 8), one or more per finding.

Each test failed on the main branch before its fix. The double payment itself is hunted by the
state machine in ``test_custody_with_bank.py``; here it is replayed step by step as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chain import messages as m
from chain.scenario import SECONDS_PER_DAY, PlanDesk

DAY = SECONDS_PER_DAY


def _plan(desk: PlanDesk, merchant: Any, consumer: Any, *, units: int = 10) -> bytes:
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=units, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    return agreement_id


# ---------------------------------------------------------------- 1. double payment


def test_an_upfront_share_instructed_cannot_be_refunded_again_by_a_cooling_off(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    """Funded with 30 % custody; the oracle asks to pay the merchant's 70 % at once; the consumer
    cools off. On the old main the upfront was instructed and then also refunded: 170,000 out of
    a 100,000 deposit. Now the upfront share waits out the cooling-off period."""
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    assert desk.client.get_ledger(agreement_id).upfront == 70_000
    with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.MERCHANT):
        desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 70_000)

    desk.cool_off(agreement_id, consumer.key)
    ledger = desk.client.get_ledger(agreement_id)
    assert ledger.refunded == 100_000 and ledger.merchant_owed == 0
    desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 100_000)
    assert desk.client.custody_held(merchant.address) == 0


def test_entitlement_instructed_before_a_termination_is_not_taken_back(
    desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    # The first lesson releases the upfront share and 3,000 of the frozen share.
    ledger = desk.client.get_ledger(agreement_id)
    assert (ledger.upfront, ledger.released) == (70_000, 3_000)
    instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 73_000)

    desk.terminate(agreement_id, consumer.key)
    ledger = desk.client.get_ledger(agreement_id)
    # Refund 90,000: 27,000 frozen, nothing reclaimed (all instructed), 63,000 the merchant owes.
    assert ledger.refunded == 27_000 and ledger.merchant_owed == 63_000
    assert ledger.instructed_to_merchant == ledger.upfront + ledger.released == 73_000
    # The bank pays the instruction later; the book takes it.
    desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 73_000, instruction_id=instruction_id)
    desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 27_000)
    assert desk.client.custody_held(merchant.address) == 0


def test_a_rejected_instruction_is_due_again_and_can_be_reclaimed(
    desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 73_000)
    desk.report_instruction_outcome(instruction_id, m.InstructionState.REJECTED)
    assert desk.client.get_instruction(instruction_id).state == m.InstructionState.REJECTED
    assert desk.client.get_ledger(agreement_id).instructed_to_merchant == 0

    desk.terminate(agreement_id, consumer.key)
    ledger = desk.client.get_ledger(agreement_id)
    assert ledger.refunded == 90_000 and ledger.merchant_owed == 0


def test_a_returned_payment_is_back_in_custody_and_due_again(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 73_000)
    desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 73_000, instruction_id=instruction_id)
    assert desk.client.custody_held(merchant.address) == 27_000

    result = desk.report_instruction_outcome(instruction_id, m.InstructionState.RETURNED)
    assert result.event("PaymentReturned").args["amount"] == 73_000
    assert desk.client.custody_held(merchant.address) == 100_000
    ledger = desk.client.get_ledger(agreement_id)
    assert ledger.paid_to_merchant == ledger.instructed_to_merchant == 0
    # Returned once only.
    with reverts(
        "CustodyDeskInstructionNotOutstanding", instruction_id, m.InstructionState.RETURNED
    ):
        desk.report_instruction_outcome(instruction_id, m.InstructionState.RETURNED)


def test_a_payout_must_be_a_registered_instruction_paid_once(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    unknown = b"\x11" * 32
    with reverts("CustodyDeskInstructionNotOutstanding", unknown, m.InstructionState.NONE):
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 1_000, instruction_id=unknown)
    instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 1_000)
    with reverts(
        "CustodyDeskInstructionMismatch", instruction_id, agreement_id, m.Payee.MERCHANT, 1_000
    ):
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 1_001, instruction_id=instruction_id)
    desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 1_000, instruction_id=instruction_id)
    # The bank paying the same instruction a second time (another booking) is refused.
    with reverts("CustodyDeskInstructionNotOutstanding", instruction_id, m.InstructionState.PAID):
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 1_000, instruction_id=instruction_id)


def test_the_upfront_share_is_released_once_the_cooling_off_period_is_over(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    backend.advance_time(7 * DAY + 60)
    _, result = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 70_000)
    released = result.event("FundsReleased").args
    assert (released["reason"], released["amount"]) == (m.ReleaseReason.UPFRONT, 70_000)
    assert result.event("PaymentInstructed").args["amount"] == 70_000
    assert desk.client.get_agreement(agreement_id).upfront_released


def test_a_defaulted_merchant_is_paid_nothing_more(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    desk.client.declare_default(desk.regulator_key, merchant.address)
    stopped = (merchant.address.lower(), m.MerchantStatus.DEFAULTED)
    with reverts("AgreementBookMerchantStopped", *stopped):
        desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 73_000)


# ---------------------------------------------------------------- business days


def test_a_statement_dated_after_its_report_is_refused_and_blocks_nothing(
    desk: PlanDesk, merchant: Any, reverts: Callable[..., Any]
) -> None:
    today = desk.client.latest_timestamp() // DAY
    far = today + 10_000
    with reverts("CustodyDeskBusinessDayInFuture", merchant.address.lower(), far, today):
        desk.reconcile_custody(merchant.address, far, 0)
    desk.reconcile_custody(merchant.address, today, 0)
    assert desk.client.last_reconciled_day(merchant.address) == today
