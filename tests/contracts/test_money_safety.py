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
    now = desk.client.latest_timestamp()
    today, latest = now // DAY, (now + 14 * 3_600) // DAY
    far = today + 10_000
    with reverts("CustodyDeskBusinessDayInFuture", merchant.address.lower(), far, latest):
        desk.reconcile_custody(merchant.address, far, 0)
    desk.reconcile_custody(merchant.address, today, 0)
    assert desk.client.last_reconciled_day(merchant.address) == today


# ---------------------------------------------------------------- refused payments


def test_a_payment_after_the_merchant_was_suspended_is_owed_back_to_the_payer(
    desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.client.suspend_merchant(desk.regulator_key, merchant.address, b"\x01" * 32)
    result = desk.fund(agreement_id, 100_000)
    refused = result.event("CreditRefused").args
    assert (refused["amount"], refused["reason"]) == (100_000, m.label("merchant"))
    assert desk.client.get_agreement(agreement_id).state == m.AgreementState.SIGNED
    ledger = desk.client.get_ledger(agreement_id)
    assert (ledger.deposited, ledger.credits_refused) == (0, 100_000)
    # The money is in custody, and goes back through a registered instruction.
    assert desk.client.custody_held(merchant.address) == 100_000
    desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 100_000)
    assert desk.client.custody_held(merchant.address) == 0
    assert desk.client.get_ledger(agreement_id).unpaid_to_consumer() == 0


def test_a_wrong_amount_and_a_second_payment_are_recorded_and_owed_back(
    desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    wrong = desk.fund(agreement_id, 99_999).event("CreditRefused").args
    assert wrong["reason"] == m.label("amount")
    desk.fund(agreement_id, 100_000)
    again = desk.fund(agreement_id, 100_000).event("CreditRefused").args
    assert again["reason"] == m.label("state")
    ledger = desk.client.get_ledger(agreement_id)
    assert (ledger.deposited, ledger.credits_refused) == (100_000, 199_999)
    assert desk.client.custody_held(merchant.address) == 299_999


def test_a_payment_reported_after_expiry_is_owed_back(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000, term_days=1
    )
    agreement_id, _ = desk.open(signed)
    backend.advance_time(2 * DAY)
    refused = desk.fund(agreement_id, 100_000).event("CreditRefused").args
    assert refused["reason"] == m.label("expired")


# ---------------------------------------------------------------- funding time


def test_a_lesson_on_the_day_of_payment_is_recorded_after_a_next_day_report(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    paid_at = desk.client.latest_timestamp()
    backend.advance_time(DAY)  # the bank reports T+1
    desk.fund(agreement_id, 100_000, paid_at=paid_at)
    assert desk.client.get_agreement(agreement_id).funded_at == paid_at
    lesson = desk.sign_record(agreement_id, 1, merchant.key, consumer.key, consumed_at=paid_at + 60)
    desk.consume(lesson)
    assert desk.client.get_agreement(agreement_id).units_consumed == 1


def test_the_cooling_off_period_runs_from_the_payment_not_the_report(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    paid_at = desk.client.latest_timestamp()
    backend.advance_time(7 * DAY + 60)
    desk.fund(agreement_id, 100_000, paid_at=paid_at)
    with reverts("AgreementBookCoolingOffOver", agreement_id, paid_at + 7 * DAY):
        desk.cool_off(agreement_id, consumer.key)


def test_a_booking_time_after_the_report_is_refused(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    now = desk.client.latest_timestamp()
    with reverts("AgreementBookPaidAfterReport", agreement_id, now + 3_600, now):
        desk.fund(agreement_id, 100_000, paid_at=now + 3_600)


# ---------------------------------------------------------------- binding requests


def _used_plan(desk: PlanDesk, merchant: Any, consumer: Any) -> bytes:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    return agreement_id


def test_a_termination_request_binds_the_refund_the_consumer_was_shown(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _used_plan(desk, merchant, consumer)
    shown = desk.client.preview_refund(agreement_id).refund
    assert shown == 90_000
    request, signature = desk.consumer_request(
        agreement_id, consumer.key, m.ConsumerAction.TERMINATE, min_refund=shown
    )
    # The merchant holds the request and records seven more lessons first.
    for sequence in range(2, 9):
        desk.consume(desk.sign_record(agreement_id, sequence, merchant.key, consumer.key))
    with reverts("AgreementBookRefundBelowAgreed", agreement_id, 90_000, 20_000):
        desk.client.terminate(merchant.key, request, signature)


def test_a_consumer_revokes_an_unexecuted_request(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _used_plan(desk, merchant, consumer)
    request, signature = desk.consumer_request(
        agreement_id, consumer.key, m.ConsumerAction.TERMINATE, min_refund=0, nonce=7
    )
    revoke, revoke_signature = desk.consumer_request(
        agreement_id, consumer.key, m.ConsumerAction.REVOKE, nonce=7
    )
    # The platform relays the consumer's revocation; the merchant is not needed.
    result = desk.client.revoke_request(desk.operator_key, revoke, revoke_signature)
    assert result.event("RequestRevoked").args["nonce"] == 7
    with reverts("AgreementBookRequestUsed", agreement_id, 7):
        desk.client.terminate(merchant.key, request, signature)
    assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE


def test_a_request_deadline_more_than_seven_days_ahead_is_refused(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _used_plan(desk, merchant, consumer)
    far = desk.client.latest_timestamp() + 30 * DAY
    request, signature = desk.consumer_request(
        agreement_id, consumer.key, m.ConsumerAction.TERMINATE, deadline=far
    )
    with reverts("AgreementBookRequestDeadlineTooFar"):
        desk.client.terminate(desk.operator_key, request, signature)


def test_a_request_cannot_be_executed_for_another_action(
    desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    agreement_id = _plan(desk, merchant, consumer)
    desk.fund(agreement_id, 100_000)
    request, signature = desk.consumer_request(
        agreement_id, consumer.key, m.ConsumerAction.REVOKE, nonce=1
    )
    with reverts(
        "AgreementBookWrongRequestAction", m.ConsumerAction.COOLING_OFF, m.ConsumerAction.REVOKE
    ):
        desk.client.cancel_in_cooling_off(desk.operator_key, request, signature)


# ---------------------------------------------------------------- set-off on default


def test_a_defaulted_merchants_unpaid_entitlement_covers_its_consumers_shortfalls_first(
    desk: PlanDesk, merchant: Any, consumer: Any, other_consumer: Any, reverts: Callable[..., Any]
) -> None:
    """Plan A is well used: the merchant is still owed 73,000 the bank never paid it. Plan B's
    upfront share was paid out, so B's refund is 70,000 short of custody. The set-off pays B's
    consumer from A's unpaid entitlement before any insurer, and the merchant gets nothing."""
    used = _plan(desk, merchant, consumer)
    desk.fund(used, 100_000)
    desk.consume(desk.sign_record(used, 1, merchant.key, consumer.key))
    short = _plan(desk, merchant, other_consumer)
    desk.fund(short, 100_000)
    desk.consume(desk.sign_record(short, 1, merchant.key, other_consumer.key))
    desk.confirm_payout(short, m.Payee.MERCHANT, 73_000)
    desk.write_policy(merchant.address, 1_000_000)

    desk.client.declare_default(desk.regulator_key, merchant.address)
    desk.client.settle_default(desk.regulator_key, [short])
    with reverts("AgreementBookSetOffNotReady", merchant.address.lower(), 1, 2):
        desk.client.distribute_set_off(desk.regulator_key, merchant.address, [short])
    desk.client.settle_default(desk.regulator_key, [used])
    # A: refund 90,000 from its own custody; its merchant's remaining 10,000 is set aside.
    assert desk.client.get_ledger(used).set_off_given == 10_000
    result = desk.client.distribute_set_off(desk.regulator_key, merchant.address, [short, used])
    ledger = desk.client.get_ledger(short)
    # B: refund 90,000 = 27,000 frozen + 10,000 set-off + 53,000 insured.
    assert (ledger.refunded, ledger.set_off_covered, ledger.insured_shortfall) == (
        27_000,
        10_000,
        53_000,
    )
    assert ledger.merchant_owed == 0
    assert result.named("SetOffApplied")[0].args["amount"] == 10_000
    assert desk.client.set_off_of(merchant.address) == (0, 2, 2)
    # The consumer's set-off is paid out of custody through a registered instruction.
    desk.confirm_payout(short, m.Payee.CONSUMER, 37_000)
    assert desk.client.custody_held(merchant.address) == 100_000 - 73_000 + 100_000 - 37_000
    with reverts("AgreementBookNotAwaitingSetOff", short):
        desk.client.distribute_set_off(desk.regulator_key, merchant.address, [short])


def test_a_statement_of_a_bank_ahead_of_utc_is_taken_on_its_own_date(
    backend: Any, desk: PlanDesk, merchant: Any, reverts: Callable[..., Any]
) -> None:
    """At 17:00 UTC it is already the next day in Beijing (UTC+8): that day's statement counts."""
    now = desk.client.latest_timestamp()
    backend.advance_time((now // DAY + 1) * DAY + 17 * 3_600 - now)
    utc_day = desk.client.latest_timestamp() // DAY
    desk.reconcile_custody(merchant.address, utc_day + 1, 0)
    assert desk.client.last_reconciled_day(merchant.address) == utc_day + 1
    with reverts(
        "CustodyDeskBusinessDayInFuture", merchant.address.lower(), utc_day + 2, utc_day + 1
    ):
        desk.reconcile_custody(merchant.address, utc_day + 2, 0)
