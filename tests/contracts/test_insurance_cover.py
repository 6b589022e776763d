"""Regression tests for issue 8, "Insurance cover cannot be shadowed or drained".

One or more per finding, (a) to (e); each failed on the code before the fix:

(a) a 1-fen policy written on a merchant shadowed its real bond;
(b) cover was judged when a plan was settled, not when default was declared;
(c) any System account could open claims for made-up agreements and reserve all cover;
(d) a merchant's policy list was unbounded, so enough policies stopped settlement fitting a block;
(e) the insurer marked its own claims paid, without the bank.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from default_steps import settle_and_distribute
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector

from chain import messages as m
from chain.deploy import fund_accounts
from chain.errors import ChainError
from chain.scenario import SECONDS_PER_DAY, PlanDesk, sha256

DAY = SECONDS_PER_DAY
PAID = 100_000  # 10 lessons at 100 RMB
UPFRONT = 70_000  # the merchant's 70 %; custody keeps 30 % frozen
# The bank paid the merchant its upfront share: a default's refund of the whole 100,000 finds
# only the frozen 30,000 in custody and leaves 70,000 that only insurance can cover.
LOSS = UPFRONT
# The upfront share waits out the 7-day cooling-off period before the bank may pay it.
COOLING_OFF = 7 * DAY + 60


def defaulted_plan(backend: Any, desk: PlanDesk, merchant: Any, consumer: Any) -> bytes:
    """A funded, unused plan whose upfront share the bank paid out once the cooling-off period
    was over; returns its id."""
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    desk.fund(agreement_id, PAID)
    backend.advance_time(COOLING_OFF)
    desk.confirm_payout(agreement_id, m.Payee.MERCHANT, UPFRONT)
    return agreement_id


def claim_of(desk: PlanDesk, agreement_id: bytes) -> Any:
    return desk.client.get_claim(desk.client.claim_of_agreement(agreement_id))


# ---------------------------------------------------------------- (a) shadowing


def test_a_policy_written_but_not_registered_does_not_shadow_the_real_bond(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    """Before: the insurer's 1-fen policy, written first, took the claim (covered 1)."""
    agreement_id = defaulted_plan(backend, desk, merchant, consumer)
    now = desk.client.latest_timestamp()
    desk.client.write_policy(
        desk.insurer_key, merchant.address, 1, now - DAY, now + 365 * DAY, sha256("shadow")
    )
    bond = desk.write_policy(merchant.address, 100_000)
    desk.client.declare_default(desk.regulator_key, merchant.address)

    settle_and_distribute(desk.client, desk.regulator_key, [agreement_id])

    claim = claim_of(desk, agreement_id)
    assert (claim.loss, claim.covered) == (LOSS, LOSS)
    assert desk.client.get_policy(bond).reserved == LOSS


def test_a_claim_draws_on_every_registered_policy_in_registration_order(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    """Before: a claim used one policy only, so a small registered policy capped it."""
    small = desk.write_policy(merchant.address, 1)
    bond = desk.write_policy(merchant.address, 100_000)
    agreement_id = defaulted_plan(backend, desk, merchant, consumer)
    desk.client.declare_default(desk.regulator_key, merchant.address)

    result = settle_and_distribute(desk.client, desk.regulator_key, [agreement_id])

    claim = claim_of(desk, agreement_id)
    assert (claim.loss, claim.covered) == (LOSS, LOSS)
    covered = [e.args for e in result.named("ClaimCovered")]
    assert [(c["policyId"], c["amount"]) for c in covered] == [(small, 1), (bond, LOSS - 1)]
    parts = desk.client.claim_parts(desk.client.claim_of_agreement(agreement_id))
    assert [(p.policy_id, p.amount) for p in parts] == [(small, 1), (bond, LOSS - 1)]
    assert desk.client.get_policy(small).reserved == 1
    assert desk.client.get_policy(bond).reserved == LOSS - 1


# ---------------------------------------------------------------- (b) cover fixed at default


def test_a_bond_in_force_at_default_pays_for_a_plan_settled_after_it_ended(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    """Before: settled three days after default, past the bond's end: covered nothing."""
    agreement_id = defaulted_plan(backend, desk, merchant, consumer)
    bond = desk.write_policy(merchant.address, 100_000, days=2)
    desk.client.declare_default(desk.regulator_key, merchant.address)
    backend.advance_time(3 * DAY)

    settle_and_distribute(desk.client, desk.regulator_key, [agreement_id])

    claim = claim_of(desk, agreement_id)
    assert (claim.loss, claim.covered) == (LOSS, LOSS)
    assert desk.client.get_policy(bond).reserved == LOSS


def test_a_bond_starting_after_default_does_not_pay(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any
) -> None:
    """Before: a bond that began after the default covered plans settled once it had begun."""
    agreement_id = defaulted_plan(backend, desk, merchant, consumer)
    now = desk.client.latest_timestamp()
    later, _ = desk.client.write_policy(
        desk.insurer_key, merchant.address, 100_000, now + DAY, now + 365 * DAY, sha256("later")
    )
    desk.client.register_policy(desk.regulator_key, later)
    desk.client.declare_default(desk.regulator_key, merchant.address)
    backend.advance_time(2 * DAY)

    settle_and_distribute(desk.client, desk.regulator_key, [agreement_id])

    claim = claim_of(desk, agreement_id)
    assert (claim.covered, claim.status) == (0, m.ClaimStatus.UNCOVERED)
    assert desk.client.get_policy(later).reserved == 0


def test_no_policy_can_be_registered_on_a_merchant_in_default(
    desk: PlanDesk, merchant: Any, reverts: Callable[..., Any]
) -> None:
    now = desk.client.latest_timestamp()
    late, _ = desk.client.write_policy(
        desk.insurer_key, merchant.address, 100_000, now - DAY, now + 365 * DAY, sha256("late")
    )
    desk.client.declare_default(desk.regulator_key, merchant.address)
    defaulted_at = desk.client.defaulted_at(merchant.address)
    assert defaulted_at > 0
    with reverts("InsurancePoolMerchantDefaulted", merchant.address.lower(), defaulted_at):
        desk.client.register_policy(desk.regulator_key, late)


# ---------------------------------------------------------------- (c) made-up claims


def test_a_system_account_cannot_open_a_claim_for_a_made_up_agreement(
    backend: Any, desk: PlanDesk, merchant: Any, consumer: Any, reverts: Callable[..., Any]
) -> None:
    """Before: any System member reserved the whole cover with an invented agreement."""
    bond = desk.write_policy(merchant.address, 100_000)
    account = Account.create()
    fund_accounts(backend.w3, [account.address])
    desk.client.admit(
        desk.regulator_key, account.address, m.Role.SYSTEM, m.organisation_id("rogue-system")
    )
    key = "0x" + bytes(account.key).hex()
    function = desk.client.insurance.functions.openClaim(
        sha256("made up"), merchant.address, consumer.address, 100_000
    )
    with reverts("InsurancePoolUnauthorized", account.address.lower()):
        desk.client.transact(key, function)
    assert desk.client.get_policy(bond).reserved == 0
    assert desk.client.claim_of_agreement(sha256("made up")) == 0


# ---------------------------------------------------------------- (d) bounded policy list


def test_a_ninth_registered_policy_on_a_merchant_is_refused(
    desk: PlanDesk, merchant: Any, reverts: Callable[..., Any]
) -> None:
    """Before: policies were unbounded; every one was walked when a plan was settled."""
    for _ in range(8):
        desk.write_policy(merchant.address, 1_000)
    with reverts("InsurancePoolTooManyPolicies", merchant.address.lower(), 8):
        desk.write_policy(merchant.address, 1_000)
    assert len(desk.client.policies_of(merchant.address)) == 8


def test_an_expired_policy_makes_room_for_a_new_one(
    backend: Any, desk: PlanDesk, merchant: Any
) -> None:
    short = desk.write_policy(merchant.address, 1_000, days=1)
    kept = [desk.write_policy(merchant.address, 1_000) for _ in range(7)]
    backend.advance_time(2 * DAY)

    newest = desk.write_policy(merchant.address, 1_000)

    assert desk.client.policies_of(merchant.address) == [*kept, newest]
    assert desk.client.get_policy(short).registered_at > 0


# ---------------------------------------------------------------- (e) paid by the bank only


@pytest.fixture
def covered_claim(backend: Any, desk: PlanDesk, merchant: Any, consumer: Any) -> int:
    desk.write_policy(merchant.address, 100_000)
    agreement_id = defaulted_plan(backend, desk, merchant, consumer)
    desk.client.declare_default(desk.regulator_key, merchant.address)
    settle_and_distribute(desk.client, desk.regulator_key, [agreement_id])
    return int(desk.client.claim_of_agreement(agreement_id))


def test_the_insurer_can_no_longer_mark_its_own_claim_paid(
    backend: Any, desk: PlanDesk, covered_claim: int
) -> None:
    """Before: ``confirmClaimPaid(claimId, amount, bankReference)`` from the insurer paid it."""
    selector = function_signature_to_4byte_selector("confirmClaimPaid(uint64,uint128,bytes32)")
    data = selector + abi_encode(
        ["uint64", "uint128", "bytes32"], [covered_claim, LOSS, sha256("self-made")]
    )
    insurer = Account.from_key(desk.insurer_key).address
    tx = {
        "from": insurer,
        "to": desk.client.insurance.address,
        "data": "0x" + data.hex(),
        "gas": 300_000,
        "gasPrice": backend.w3.eth.gas_price,
        "nonce": backend.w3.eth.get_transaction_count(insurer, "pending"),
        "chainId": desk.client.chain_id,
    }
    with pytest.raises(ChainError):
        desk.client.send(desk.insurer_key, tx)
    claim = desk.client.get_claim(covered_claim)
    assert (claim.status, claim.paid) == (m.ClaimStatus.OPEN, 0)


def test_a_claim_is_paid_when_the_bank_feed_reports_the_insurers_payment(
    desk: PlanDesk, covered_claim: int
) -> None:
    result = desk.confirm_claim_paid(covered_claim, LOSS)

    assert result.event("ClaimPaid").args["totalPaid"] == LOSS
    claim = desk.client.get_claim(covered_claim)
    assert (claim.status, claim.paid) == (m.ClaimStatus.PAID, LOSS)


def test_the_insurer_cannot_submit_a_bank_report_of_a_claim_payment(
    desk: PlanDesk, covered_claim: int, reverts: Callable[..., Any]
) -> None:
    payment = m.ClaimPayment(claim_id=covered_claim, amount=LOSS, bank_reference=sha256("r"))
    report, signatures = desk.client.make_report(
        m.FEED_BANK, m.claim_subject(covered_claim), payment, desk.bank_signers
    )
    insurer = Account.from_key(desk.insurer_key).address
    with reverts("InsurancePoolUnauthorized", insurer.lower()):
        desk.client.confirm_claim_paid(desk.insurer_key, payment, report, signatures)
    assert desk.client.get_claim(covered_claim).paid == 0
