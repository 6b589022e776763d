"""InsurancePool: performance-bond policies and their registration, the claims a default opens,
and the payouts the bank feed confirms.

The regressions for issue 8 are in ``test_insurance_cover.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from default_steps import settle_and_distribute
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from chain import messages as m
from chain.errors import ContractRevert
from chain.messages import ClaimStatus, EvidenceKind
from chain.scenario import SECONDS_PER_DAY, sha256

PAID = 100_000  # 10 lessons at 100 RMB
FROZEN = 30_000  # 30 % custody on the training template
UPFRONT = PAID - FROZEN  # the merchant's share, which the bank pays out after cooling-off here
COOLING_OFF = 7 * SECONDS_PER_DAY + 60
# A default refunds the whole unused plan: the frozen 30,000 pays first, then whatever upfront
# the bank still holds is reclaimed. With the upfront paid out, 100,000 − 30,000 − 0 = 70,000
# is the loss custody cannot cover.
LOSS = PAID - FROZEN


@contextlib.contextmanager
def unchanged(backend: Any, read: Callable[[], Any]) -> Iterator[None]:
    """Assert the block enclosed mined nothing and left ``read()`` as it was."""
    before = read()
    block = backend.w3.eth.block_number
    yield
    assert backend.w3.eth.block_number == block
    assert read() == before


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def client(deployed):
    return deployed.client


@pytest.fixture
def regulator(config):
    return config.organisations["regulator"].key


@pytest.fixture
def insurer(config):
    return config.organisations["insurer"].key


def funded_plan(backend, desk, merchant, consumer, paid_out: int = UPFRONT) -> bytes:
    """A funded, unused 10-lesson plan whose upfront share the bank paid the merchant once the
    cooling-off period was over (all of it unless told); returns its id."""
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    desk.fund(agreement_id, signed.terms.total_paid)
    if paid_out:
        backend.advance_time(COOLING_OFF)
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, paid_out)
    return agreement_id


def pool_state(client, merchant: str) -> tuple[Any, ...]:
    policies = client.policies_of(merchant)
    return tuple(policies), tuple(client.get_policy(p) for p in policies)


def claim_state(client, claim_id: int) -> tuple[Any, ...]:
    claim = client.get_claim(claim_id)
    return claim, tuple(client.get_policy(p.policy_id) for p in client.claim_parts(claim_id))


def pending_policy(client, insurer, merchant: str, limit: int = 1_000, days: int = 365) -> int:
    """A policy the insurer wrote on ``merchant`` and nobody registered yet; returns its id."""
    now = client.latest_timestamp()
    policy_id, _ = client.write_policy(
        insurer.private_key,
        merchant,
        limit,
        now - SECONDS_PER_DAY,
        now + days * SECONDS_PER_DAY,
        sha256(f"pending {limit} {days} {now}"),
    )
    return policy_id


# ---------------------------------------------------------------- writePolicy


def test_an_insurer_writes_a_policy_that_waits_for_registration(client, merchant, insurer):
    now = client.latest_timestamp()
    start, end, document = now - SECONDS_PER_DAY, now + 365 * SECONDS_PER_DAY, sha256("bond")

    policy_id, result = client.write_policy(
        insurer.private_key, merchant.address, 250_000, start, end, document
    )

    assert policy_id == 1
    assert result.event("PolicyWritten").args == {
        "policyId": 1,
        "insurer": insurer.address,
        "merchant": merchant.address,
        "coverageLimit": 250_000,
        "start": start,
        "end": end,
        "documentHash": document,
    }
    policy = client.get_policy(policy_id)
    assert (policy.insurer, policy.merchant) == (insurer.address, merchant.address)
    assert (policy.coverage_limit, policy.reserved) == (250_000, 0)
    assert (policy.start, policy.end, policy.document_hash) == (start, end, document)
    assert not policy.registered
    assert client.policies_of(merchant.address) == []

    evidence = keccak(abi_encode(["uint64", "bytes32"], [policy_id, document]))
    anchor = client.lookup_evidence(evidence)
    assert anchor.block_number == result.block_number
    assert anchor.kind == EvidenceKind.POLICY_WRITTEN
    assert anchor.subject == m.address_subject(merchant.address)


def test_policies_of_a_merchant_are_listed_in_order(desk, client, merchant):
    first = desk.write_policy(merchant.address, 10_000)
    second = desk.write_policy(merchant.address, 20_000)
    assert (first, second) == (1, 2)
    assert client.policies_of(merchant.address) == [1, 2]
    assert client.policies_of(Account.create().address) == []


def test_only_an_insurer_may_write_a_policy(client, merchant, regulator, backend, reverts):
    now = client.latest_timestamp()
    with (
        unchanged(backend, lambda: pool_state(client, merchant.address)),
        reverts("InsurancePoolUnauthorized", regulator.address.lower()),
    ):
        client.write_policy(
            regulator.private_key, merchant.address, 1_000, now, now + 1, sha256("x")
        )


@pytest.mark.parametrize(
    ("term", "value"),
    [("merchant", 0), ("coverageLimit", 0), ("end", "start"), ("end", "before start")],
    ids=["zero-merchant", "zero-cover", "end-equals-start", "end-before-start"],
)
def test_a_policy_with_invalid_terms_is_refused(
    client, merchant, insurer, backend, reverts, term, value
):
    now = client.latest_timestamp()
    target, limit, start, end = merchant.address, 1_000, now, now + SECONDS_PER_DAY
    if term == "merchant":
        target = "0x" + "00" * 20
    elif term == "coverageLimit":
        limit = 0
    elif value == "start":
        end = start
    else:
        end = start - 1
    expected = end if term == "end" else 0
    with (
        unchanged(backend, lambda: pool_state(client, merchant.address)),
        reverts("InsurancePoolInvalidTerm", m.label(term), expected),
    ):
        client.write_policy(insurer.private_key, target, limit, start, end, sha256("p"))


@pytest.mark.parametrize("policy_id", [0, 1, 99])
def test_an_unknown_policy_cannot_be_read(client, reverts, policy_id):
    with reverts("InsurancePoolUnknownPolicy", policy_id):
        client.get_policy(policy_id)


# ---------------------------------------------------------------- registerPolicy


def test_the_regulator_registers_a_policy_and_it_covers_the_merchant(
    client, merchant, insurer, regulator
):
    policy_id = pending_policy(client, insurer, merchant.address)

    result = client.register_policy(regulator.private_key, policy_id)

    now = client.latest_timestamp()
    assert result.event("PolicyRegistered").args == {
        "policyId": policy_id,
        "merchant": merchant.address,
        "registeredAt": now,
    }
    assert client.get_policy(policy_id).registered_at == now
    assert client.policies_of(merchant.address) == [policy_id]


@pytest.mark.parametrize("role", ["insurer", "bank", "operator"])
def test_only_the_regulator_may_register_a_policy(
    client, config, merchant, insurer, backend, reverts, role
):
    policy_id = pending_policy(client, insurer, merchant.address)
    sender = config.organisations[role].key
    with (
        unchanged(backend, lambda: pool_state(client, merchant.address)),
        reverts("InsurancePoolUnauthorized", sender.address.lower()),
    ):
        client.register_policy(sender.private_key, policy_id)
    assert not client.get_policy(policy_id).registered


def test_a_policy_is_registered_once(client, merchant, insurer, regulator, backend, reverts):
    policy_id = pending_policy(client, insurer, merchant.address)
    client.register_policy(regulator.private_key, policy_id)
    registered_at = client.get_policy(policy_id).registered_at
    with (
        unchanged(backend, lambda: pool_state(client, merchant.address)),
        reverts("InsurancePoolPolicyAlreadyRegistered", policy_id, registered_at),
    ):
        client.register_policy(regulator.private_key, policy_id)


def test_an_unknown_policy_cannot_be_registered(client, regulator, reverts):
    with reverts("InsurancePoolUnknownPolicy", 5):
        client.register_policy(regulator.private_key, 5)


def test_a_policy_that_has_ended_cannot_be_registered(
    client, merchant, insurer, regulator, backend, reverts
):
    policy_id = pending_policy(client, insurer, merchant.address, days=1)
    backend.advance_time(2 * SECONDS_PER_DAY)
    end = client.get_policy(policy_id).end
    with (
        unchanged(backend, lambda: pool_state(client, merchant.address)),
        pytest.raises(ContractRevert) as caught,
    ):
        client.register_policy(regulator.private_key, policy_id)
    assert caught.value.error == "InsurancePoolPolicyExpired"
    assert caught.value.args_[:2] == (policy_id, end)
    assert caught.value.args_[2] > end


# ---------------------------------------------------------------- openClaim


@pytest.mark.parametrize("role", ["regulator", "bank", "insurer"])
def test_only_the_agreement_book_may_open_a_claim(
    client, config, merchant, consumer, backend, reverts, role
):
    sender = config.organisations[role].key
    agreement_id = sha256("some agreement")
    function = client.insurance.functions.openClaim(
        agreement_id, merchant.address, consumer.address, 1_000
    )
    with (
        unchanged(backend, lambda: client.claim_of_agreement(agreement_id)),
        reverts("InsurancePoolUnauthorized", sender.address.lower()),
    ):
        client.transact(sender.private_key, function)


def test_a_default_claims_the_shortfall_from_the_merchants_policy(
    backend, desk, client, merchant, consumer, regulator
):
    policy_id = desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(backend, desk, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    defaulted_at = client.defaulted_at(merchant.address)
    assert defaulted_at == client.latest_timestamp()

    result = settle_and_distribute(client, regulator.private_key, [agreement_id])

    granted = result.event("RefundGranted").args
    assert (granted["refund"], granted["fromCustody"], granted["shortfall"]) == (
        PAID,
        FROZEN,
        LOSS,
    )
    assert result.event("ClaimOpened").args == {
        "claimId": 1,
        "agreementId": agreement_id,
        "merchant": merchant.address,
        "policyId": policy_id,
        "consumer": consumer.address,
        "loss": LOSS,
        "covered": LOSS,
    }
    assert result.event("ClaimCovered").args == {
        "claimId": 1,
        "policyId": policy_id,
        "amount": LOSS,
    }
    claim = client.get_claim(1)
    assert claim.status == ClaimStatus.OPEN
    assert (claim.policy_id, claim.agreement_id) == (policy_id, agreement_id)
    assert (claim.merchant, claim.consumer) == (merchant.address, consumer.address)
    assert (claim.loss, claim.covered, claim.paid) == (LOSS, LOSS, 0)
    assert claim.defaulted_at == defaulted_at
    assert [(p.policy_id, p.amount) for p in client.claim_parts(1)] == [(policy_id, LOSS)]
    assert client.claim_of_agreement(agreement_id) == 1
    assert client.get_policy(policy_id).reserved == LOSS

    ledger = client.get_ledger(agreement_id)
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (LOSS, 0)
    anchors = {e.args["kind"] for e in result.named("EvidenceAnchored")}
    assert EvidenceKind.CLAIM_OPENED in anchors


def test_claims_beyond_the_remaining_cover_are_partly_covered_then_uncovered(
    backend, desk, client, merchant, consumer, other_consumer, regulator
):
    policy_id = desk.write_policy(merchant.address, 100_000)
    plans = [
        funded_plan(backend, desk, merchant, consumer),
        funded_plan(backend, desk, merchant, other_consumer),
        funded_plan(backend, desk, merchant, consumer),
    ]
    client.declare_default(regulator.private_key, merchant.address)

    # Every plan settled first; then the set-off is distributed plan by plan, in order.
    client.settle_default(regulator.private_key, plans)
    client.distribute_set_off(regulator.private_key, merchant.address, plans[:1])
    result = client.distribute_set_off(regulator.private_key, merchant.address, plans[1:2])

    # The second claim gets what is left of the cover: 100 000 - 70 000.
    opened = result.event("ClaimOpened").args
    assert (opened["claimId"], opened["policyId"]) == (2, policy_id)
    assert (opened["loss"], opened["covered"]) == (LOSS, 30_000)
    second = client.get_claim(2)
    assert second.status == ClaimStatus.OPEN
    assert (second.loss, second.covered) == (LOSS, 30_000)
    assert client.get_policy(policy_id).reserved == 100_000
    ledger = client.get_ledger(plans[1])
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (30_000, LOSS - 30_000)

    # The third finds no cover left: recorded as Uncovered, with no policy.
    result = client.distribute_set_off(regulator.private_key, merchant.address, plans[2:])
    opened = result.event("ClaimOpened").args
    assert (opened["claimId"], opened["policyId"], opened["covered"]) == (3, 0, 0)
    assert not result.named("ClaimCovered")
    third = client.get_claim(3)
    assert third.status == ClaimStatus.UNCOVERED
    assert (third.policy_id, third.loss, third.covered) == (0, LOSS, 0)
    assert client.claim_parts(3) == []
    ledger = client.get_ledger(plans[2])
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (0, LOSS)
    assert client.get_policy(policy_id).reserved == 100_000


def test_a_default_without_any_policy_opens_an_uncovered_claim(
    backend, desk, client, merchant, consumer, regulator
):
    agreement_id = funded_plan(backend, desk, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    result = settle_and_distribute(client, regulator.private_key, [agreement_id])

    assert result.event("ClaimOpened").args["covered"] == 0
    claim = client.get_claim(client.claim_of_agreement(agreement_id))
    assert claim.status == ClaimStatus.UNCOVERED
    assert (claim.policy_id, claim.loss) == (0, LOSS)


def test_a_default_opens_no_claim_when_custody_still_holds_the_whole_refund(
    backend, desk, client, merchant, consumer, regulator
):
    # Nothing paid out: the frozen 30,000 and the reclaimed upfront 70,000 refund all 100,000.
    policy_id = desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(backend, desk, merchant, consumer, paid_out=0)
    client.declare_default(regulator.private_key, merchant.address)

    result = settle_and_distribute(client, regulator.private_key, [agreement_id])

    granted = result.event("RefundGranted").args
    assert (granted["refund"], granted["fromCustody"], granted["shortfall"]) == (PAID, PAID, 0)
    assert result.event("EntitlementReclaimed").args["amount"] == UPFRONT
    assert not result.named("ClaimOpened")
    assert client.claim_of_agreement(agreement_id) == 0
    assert client.get_policy(policy_id).reserved == 0
    ledger = client.get_ledger(agreement_id)
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (0, 0)


def test_a_default_claims_only_the_upfront_already_paid_out(
    backend, desk, client, merchant, consumer, regulator
):
    # The bank paid the merchant 45,000 of its 70,000: 25,000 is reclaimed and the claim is
    # for 100,000 − 30,000 − 25,000 = 45,000.
    policy_id = desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(backend, desk, merchant, consumer, paid_out=45_000)
    client.declare_default(regulator.private_key, merchant.address)

    result = settle_and_distribute(client, regulator.private_key, [agreement_id])

    granted = result.event("RefundGranted").args
    assert (granted["refund"], granted["fromCustody"], granted["shortfall"]) == (
        PAID,
        FROZEN + 25_000,
        45_000,
    )
    opened = result.event("ClaimOpened").args
    assert (opened["policyId"], opened["loss"], opened["covered"]) == (policy_id, 45_000, 45_000)
    assert client.get_policy(policy_id).reserved == 45_000


def test_an_ended_future_or_unregistered_policy_does_not_cover_a_claim(
    backend, desk, client, merchant, consumer, insurer, regulator
):
    day = SECONDS_PER_DAY
    ended = desk.write_policy(merchant.address, PAID, days=1)
    agreement_id = funded_plan(backend, desk, merchant, consumer)  # a week passes
    now = client.latest_timestamp()
    future, _ = client.write_policy(
        insurer.private_key, merchant.address, PAID, now + day, now + 30 * day, sha256("new")
    )
    client.register_policy(regulator.private_key, future)
    unregistered = pending_policy(client, insurer, merchant.address, limit=PAID)
    client.declare_default(regulator.private_key, merchant.address)
    settle_and_distribute(client, regulator.private_key, [agreement_id])

    claim = client.get_claim(client.claim_of_agreement(agreement_id))
    assert claim.status == ClaimStatus.UNCOVERED
    assert claim.policy_id == 0
    for policy_id in (ended, future, unregistered):
        assert client.get_policy(policy_id).reserved == 0


def test_claims_draw_on_the_policies_in_force_at_default_in_registration_order(
    backend, desk, client, regulator, merchant, consumer, other_consumer
):
    # A policy that ends before the default, then two in force at it.
    ended = desk.write_policy(merchant.address, 99_999, days=1)
    first_plan = funded_plan(backend, desk, merchant, consumer)  # a week passes
    small = desk.write_policy(merchant.address, 50_000)
    large = desk.write_policy(merchant.address, 100_000)
    second_plan = funded_plan(backend, desk, merchant, other_consumer)
    client.declare_default(regulator.private_key, merchant.address)

    client.settle_default(regulator.private_key, [first_plan, second_plan])
    first = client.distribute_set_off(regulator.private_key, merchant.address, [first_plan])
    second = client.distribute_set_off(regulator.private_key, merchant.address, [second_plan])

    parts = [(e.args["policyId"], e.args["amount"]) for e in first.named("ClaimCovered")]
    assert parts == [(small, 50_000), (large, 20_000)]
    assert first.event("ClaimOpened").args["policyId"] == small
    parts = [(e.args["policyId"], e.args["amount"]) for e in second.named("ClaimCovered")]
    assert parts == [(large, LOSS)]
    assert [(p.policy_id, p.amount) for p in client.claim_parts(1)] == [
        (small, 50_000),
        (large, 20_000),
    ]
    assert client.get_policy(small).reserved == 50_000
    assert client.get_policy(large).reserved == 90_000
    assert client.get_policy(ended).reserved == 0


def test_settling_a_plan_again_opens_no_second_claim(
    backend, desk, client, regulator, merchant, consumer
):
    desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(backend, desk, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    settle_and_distribute(client, regulator.private_key, [agreement_id])
    before = claim_state(client, 1)

    again = settle_and_distribute(client, regulator.private_key, [agreement_id])

    assert not again.named("ClaimOpened")
    assert client.claim_of_agreement(agreement_id) == 1
    assert claim_state(client, 1) == before


@pytest.mark.parametrize("claim_id", [0, 1, 99])
def test_an_unknown_claim_cannot_be_read(client, reverts, claim_id):
    with reverts("InsurancePoolUnknownClaim", claim_id):
        client.get_claim(claim_id)
    with reverts("InsurancePoolUnknownClaim", claim_id):
        client.claim_parts(claim_id)


# ---------------------------------------------------------------- confirmClaimPaid


@pytest.fixture
def open_claim(backend, desk, client, merchant, consumer, regulator):
    """A default's claim covered in full (70 000 fen) by the insurer's policy; returns its id."""
    desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(backend, desk, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    settle_and_distribute(client, regulator.private_key, [agreement_id])
    return client.claim_of_agreement(agreement_id)


def bank_report(desk, claim_id: int, amount: int, reference: bytes, **report_args: Any):
    """A claim payment and the bank feed's signed report of it."""
    payment = m.ClaimPayment(claim_id=claim_id, amount=amount, bank_reference=reference)
    subject = report_args.pop("subject", m.claim_subject(claim_id))
    signers = report_args.pop("signers", desk.bank_signers)
    report, signatures = desk.client.make_report(
        report_args.pop("feed", m.FEED_BANK), subject, payment, signers, **report_args
    )
    return payment, report, signatures


def test_the_bank_feed_reports_a_claim_paid_in_parts_until_it_is_paid(desk, client, open_claim):
    claim_id = open_claim
    agreement_id = client.get_claim(claim_id).agreement_id

    result = desk.confirm_claim_paid(claim_id, 30_000, bank_reference=sha256("ref-1"))

    assert result.event("ClaimPaid").args == {
        "claimId": claim_id,
        "bankReference": sha256("ref-1"),
        "amount": 30_000,
        "totalPaid": 30_000,
    }
    claim = client.get_claim(claim_id)
    assert (claim.status, claim.paid) == (ClaimStatus.OPEN, 30_000)
    evidence = keccak(
        abi_encode(
            ["string", "uint64", "bytes32", "uint128"],
            ["claim-paid", claim_id, sha256("ref-1"), 30_000],
        )
    )
    anchor = client.lookup_evidence(evidence)
    assert (anchor.kind, anchor.subject) == (EvidenceKind.CLAIM_PAID, agreement_id)
    assert client.last_sequence(m.FEED_BANK, m.claim_subject(claim_id)) == 1

    result = desk.confirm_claim_paid(claim_id, 40_000, bank_reference=sha256("ref-2"))
    assert result.event("ClaimPaid").args["totalPaid"] == LOSS
    claim = client.get_claim(claim_id)
    assert (claim.status, claim.paid) == (ClaimStatus.PAID, LOSS)


def test_paying_more_than_the_claim_still_covers_is_refused(
    desk, client, open_claim, backend, reverts
):
    claim_id = open_claim
    desk.confirm_claim_paid(claim_id, 50_000)
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolPayoutExceedsCover", claim_id, 20_000, 20_001),
    ):
        desk.confirm_claim_paid(claim_id, 20_001)


def test_paying_a_claim_already_paid_is_refused(desk, client, open_claim, backend, reverts):
    claim_id = open_claim
    desk.confirm_claim_paid(claim_id, LOSS)
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolPayoutExceedsCover", claim_id, 0, 1),
    ):
        desk.confirm_claim_paid(claim_id, 1)


def test_a_zero_payout_is_refused(desk, client, open_claim, backend, reverts):
    claim_id = open_claim
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolPayoutExceedsCover", claim_id, LOSS, 0),
    ):
        desk.confirm_claim_paid(claim_id, 0)


def test_a_bank_reference_used_before_is_refused(desk, client, open_claim, backend, reverts):
    claim_id = open_claim
    desk.confirm_claim_paid(claim_id, 10_000, bank_reference=sha256("ref-1"))
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolDuplicateBankReference", sha256("ref-1")),
    ):
        desk.confirm_claim_paid(claim_id, 10_000, bank_reference=sha256("ref-1"))


@pytest.mark.parametrize("role", ["insurer", "bank", "regulator"])
def test_only_an_oracle_may_submit_a_claim_payment(
    desk, client, config, open_claim, backend, reverts, role
):
    sender = config.organisations[role].key
    payment, report, signatures = bank_report(desk, open_claim, 1_000, sha256("ref-1"))
    with (
        unchanged(backend, lambda: claim_state(client, open_claim)),
        reverts("InsurancePoolUnauthorized", sender.address.lower()),
    ):
        client.confirm_claim_paid(sender.private_key, payment, report, signatures)


@pytest.mark.parametrize("mismatch", ["feed", "subject"])
def test_a_report_about_something_else_is_refused(
    desk, client, open_claim, backend, reverts, mismatch
):
    claim_id = open_claim
    if mismatch == "feed":
        wrong: dict[str, Any] = {"feed": m.FEED_RISK, "signers": desk.risk_signers}
    else:
        wrong = {"subject": client.get_claim(claim_id).agreement_id}
    payment, report, signatures = bank_report(desk, claim_id, 1_000, sha256("ref-1"), **wrong)
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolReportMismatch", payment.abi_hash(), payment.abi_hash()),
    ):
        client.confirm_claim_paid(desk.bank_oracle_key, payment, report, signatures)


def test_a_claim_payment_not_signed_by_the_bank_feed_is_refused(
    desk, client, open_claim, backend, reverts
):
    claim_id = open_claim
    payment, report, signatures = bank_report(
        desk, claim_id, 1_000, sha256("ref-1"), signers=desk.licence_signers
    )
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        pytest.raises(ContractRevert) as caught,
    ):
        client.confirm_claim_paid(desk.bank_oracle_key, payment, report, signatures)
    assert caught.value.error == "OracleHubUnknownSigner"


def test_an_uncovered_claim_cannot_be_paid(
    backend, desk, client, merchant, consumer, regulator, reverts
):
    agreement_id = funded_plan(backend, desk, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    settle_and_distribute(client, regulator.private_key, [agreement_id])
    claim_id = client.claim_of_agreement(agreement_id)
    assert client.get_claim(claim_id).status == ClaimStatus.UNCOVERED
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolPayoutExceedsCover", claim_id, 0, 1_000),
    ):
        desk.confirm_claim_paid(claim_id, 1_000)


def test_paying_an_unknown_claim_is_refused(desk, client, insurer, backend, reverts):
    with (
        unchanged(backend, lambda: client.is_member(insurer.address)),
        reverts("InsurancePoolUnknownClaim", 7),
    ):
        desk.confirm_claim_paid(7, 1_000)
