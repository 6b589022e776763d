"""InsurancePool: performance-bond policies, the claims a default opens, and their payouts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from chain import messages as m
from chain.deploy import fund_accounts
from chain.messages import ClaimStatus, EvidenceKind, Role
from chain.scenario import SECONDS_PER_DAY, sha256

PAID = 100_000  # 10 lessons at 100 RMB
FROZEN = 30_000  # 30 % custody on the training template
UPFRONT = PAID - FROZEN  # the merchant's share, paid out once cooling-off is over in these tests
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


def funded_plan(desk, backend, merchant, consumer, paid_out: int = UPFRONT) -> bytes:
    """A funded, unused 10-lesson plan whose upfront share the bank paid the merchant (all of
    it unless told) once its 7-day cooling-off period was over; returns its id."""
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    desk.fund(agreement_id, signed.terms.total_paid)
    if paid_out:
        # The upfront share is held in custody while the consumer may still cool off.
        backend.advance_time(7 * SECONDS_PER_DAY + 10)
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, paid_out)
    return agreement_id


def new_member(client, backend, regulator, role: Role):
    """A fresh funded account admitted with ``role``; returns (address, key)."""
    account = Account.create()
    fund_accounts(backend.w3, [account.address])
    client.admit(regulator.private_key, account.address, role, m.organisation_id(f"t-{role}"))
    return account.address, "0x" + bytes(account.key).hex()


def pool_state(client, merchant: str) -> tuple[Any, ...]:
    policies = client.policies_of(merchant)
    return tuple(policies), tuple(client.get_policy(p) for p in policies)


def claim_state(client, claim_id: int) -> tuple[Any, ...]:
    claim = client.get_claim(claim_id)
    return claim, client.get_policy(claim.policy_id) if claim.policy_id else None


# ---------------------------------------------------------------- writePolicy


def test_an_insurer_writes_a_policy_on_a_merchant(client, merchant, insurer):
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
    assert client.policies_of(merchant.address) == [policy_id]

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


# ---------------------------------------------------------------- openClaim


@pytest.mark.parametrize("role", ["regulator", "bank", "insurer"])
def test_only_a_system_contract_may_open_a_claim(
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
    desk, client, merchant, consumer, regulator, backend
):
    policy_id = desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(desk, backend, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)

    result = client.settle_default(regulator.private_key, [agreement_id])

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
    claim = client.get_claim(1)
    assert claim.status == ClaimStatus.OPEN
    assert (claim.policy_id, claim.agreement_id) == (policy_id, agreement_id)
    assert (claim.merchant, claim.consumer) == (merchant.address, consumer.address)
    assert (claim.loss, claim.covered, claim.paid) == (LOSS, LOSS, 0)
    assert client.claim_of_agreement(agreement_id) == 1
    assert client.get_policy(policy_id).reserved == LOSS

    ledger = client.get_ledger(agreement_id)
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (LOSS, 0)
    anchors = {e.args["kind"] for e in result.named("EvidenceAnchored")}
    assert EvidenceKind.CLAIM_OPENED in anchors


def test_claims_beyond_the_remaining_cover_are_partly_covered_then_uncovered(
    desk, client, merchant, consumer, other_consumer, regulator, backend
):
    policy_id = desk.write_policy(merchant.address, 100_000)
    plans = [
        funded_plan(desk, backend, merchant, consumer),
        funded_plan(desk, backend, merchant, other_consumer),
        funded_plan(desk, backend, merchant, consumer),
    ]
    client.declare_default(regulator.private_key, merchant.address)

    client.settle_default(regulator.private_key, plans[:1])
    result = client.settle_default(regulator.private_key, plans[1:2])

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
    result = client.settle_default(regulator.private_key, plans[2:])
    opened = result.event("ClaimOpened").args
    assert (opened["claimId"], opened["policyId"], opened["covered"]) == (3, 0, 0)
    third = client.get_claim(3)
    assert third.status == ClaimStatus.UNCOVERED
    assert (third.policy_id, third.loss, third.covered) == (0, LOSS, 0)
    ledger = client.get_ledger(plans[2])
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (0, LOSS)
    assert client.get_policy(policy_id).reserved == 100_000


def test_a_default_without_any_policy_opens_an_uncovered_claim(
    desk, client, merchant, consumer, regulator, backend
):
    agreement_id = funded_plan(desk, backend, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    result = client.settle_default(regulator.private_key, [agreement_id])

    assert result.event("ClaimOpened").args["covered"] == 0
    claim = client.get_claim(client.claim_of_agreement(agreement_id))
    assert claim.status == ClaimStatus.UNCOVERED
    assert (claim.policy_id, claim.loss) == (0, LOSS)


def test_a_default_opens_no_claim_when_custody_still_holds_the_whole_refund(
    desk, client, merchant, consumer, regulator, backend
):
    # Nothing paid out: the frozen 30,000 and the reclaimed upfront 70,000 refund all 100,000.
    policy_id = desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(desk, backend, merchant, consumer, paid_out=0)
    client.declare_default(regulator.private_key, merchant.address)

    result = client.settle_default(regulator.private_key, [agreement_id])

    granted = result.event("RefundGranted").args
    assert (granted["refund"], granted["fromCustody"], granted["shortfall"]) == (PAID, PAID, 0)
    assert result.event("EntitlementReclaimed").args["amount"] == UPFRONT
    assert not result.named("ClaimOpened")
    assert client.claim_of_agreement(agreement_id) == 0
    assert client.get_policy(policy_id).reserved == 0
    ledger = client.get_ledger(agreement_id)
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (0, 0)


def test_a_default_claims_only_the_upfront_already_paid_out(
    desk, client, merchant, consumer, regulator, backend
):
    # The bank paid the merchant 45,000 of its 70,000: 25,000 is reclaimed and the claim is
    # for 100,000 − 30,000 − 25,000 = 45,000.
    policy_id = desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(desk, backend, merchant, consumer, paid_out=45_000)
    client.declare_default(regulator.private_key, merchant.address)

    result = client.settle_default(regulator.private_key, [agreement_id])

    granted = result.event("RefundGranted").args
    assert (granted["refund"], granted["fromCustody"], granted["shortfall"]) == (
        PAID,
        FROZEN + 25_000,
        45_000,
    )
    opened = result.event("ClaimOpened").args
    assert (opened["policyId"], opened["loss"], opened["covered"]) == (policy_id, 45_000, 45_000)
    assert client.get_policy(policy_id).reserved == 45_000


def test_an_expired_or_future_policy_does_not_cover_a_claim(
    desk, client, merchant, consumer, insurer, regulator, backend
):
    # Funded and paid out first: the policies are dated around the time of the default.
    agreement_id = funded_plan(desk, backend, merchant, consumer)
    now = client.latest_timestamp()
    day = SECONDS_PER_DAY
    client.write_policy(
        insurer.private_key, merchant.address, PAID, now - 30 * day, now - day, sha256("old")
    )
    client.write_policy(
        insurer.private_key, merchant.address, PAID, now + day, now + 30 * day, sha256("new")
    )
    client.declare_default(regulator.private_key, merchant.address)
    client.settle_default(regulator.private_key, [agreement_id])

    claim = client.get_claim(client.claim_of_agreement(agreement_id))
    assert claim.status == ClaimStatus.UNCOVERED
    assert claim.policy_id == 0
    assert client.get_policy(1).reserved == client.get_policy(2).reserved == 0


def test_claims_draw_on_the_first_policy_in_force_with_cover_left(
    client, backend, regulator, insurer, merchant, consumer
):
    now = client.latest_timestamp()
    day = SECONDS_PER_DAY
    # An expired policy, then two in force.
    client.write_policy(
        insurer.private_key, merchant.address, 9_999, now - 9 * day, now - day, sha256("a")
    )
    client.write_policy(
        insurer.private_key, merchant.address, 1_000, now - day, now + 9 * day, sha256("b")
    )
    client.write_policy(
        insurer.private_key, merchant.address, 5_000, now - day, now + 9 * day, sha256("c")
    )
    _, system_key = new_member(client, backend, regulator, Role.SYSTEM)

    def open_claim(name: str, loss: int):
        function = client.insurance.functions.openClaim(
            sha256(name), merchant.address, consumer.address, loss
        )
        return client.transact(system_key, function).event("ClaimOpened").args

    first = open_claim("plan 1", 1_500)
    assert (first["policyId"], first["covered"]) == (2, 1_000)
    second = open_claim("plan 2", 1_500)
    assert (second["policyId"], second["covered"]) == (3, 1_500)
    assert client.get_policy(2).reserved == 1_000
    assert client.get_policy(3).reserved == 1_500
    assert client.get_policy(1).reserved == 0


def test_a_second_claim_for_the_same_agreement_is_refused(
    client, backend, regulator, merchant, consumer, reverts
):
    _, system_key = new_member(client, backend, regulator, Role.SYSTEM)
    agreement_id = sha256("plan")
    function = client.insurance.functions.openClaim(
        agreement_id, merchant.address, consumer.address, 1_000
    )
    client.transact(system_key, function)
    with (
        unchanged(backend, lambda: client.get_claim(1)),
        reverts("InsurancePoolDuplicateClaim", agreement_id, 1),
    ):
        client.transact(system_key, function)


@pytest.mark.parametrize("claim_id", [0, 1, 99])
def test_an_unknown_claim_cannot_be_read(client, reverts, claim_id):
    with reverts("InsurancePoolUnknownClaim", claim_id):
        client.get_claim(claim_id)


# ---------------------------------------------------------------- confirmClaimPaid


@pytest.fixture
def open_claim(desk, client, merchant, consumer, regulator, backend):
    """A default's claim covered in full (70 000 fen) by the insurer's policy; returns its id."""
    desk.write_policy(merchant.address, 100_000)
    agreement_id = funded_plan(desk, backend, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    client.settle_default(regulator.private_key, [agreement_id])
    return client.claim_of_agreement(agreement_id)


def test_the_insurer_pays_a_claim_in_parts_until_it_is_paid(client, insurer, open_claim):
    claim_id = open_claim
    agreement_id = client.get_claim(claim_id).agreement_id

    result = client.confirm_claim_paid(insurer.private_key, claim_id, 30_000, sha256("ref-1"))

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

    result = client.confirm_claim_paid(insurer.private_key, claim_id, 40_000, sha256("ref-2"))
    assert result.event("ClaimPaid").args["totalPaid"] == LOSS
    claim = client.get_claim(claim_id)
    assert (claim.status, claim.paid) == (ClaimStatus.PAID, LOSS)


def test_paying_more_than_the_claim_still_covers_is_refused(
    client, insurer, open_claim, backend, reverts
):
    claim_id = open_claim
    client.confirm_claim_paid(insurer.private_key, claim_id, 50_000, sha256("ref-1"))
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolPayoutExceedsCover", claim_id, 20_000, 20_001),
    ):
        client.confirm_claim_paid(insurer.private_key, claim_id, 20_001, sha256("ref-2"))


def test_paying_a_claim_already_paid_is_refused(client, insurer, open_claim, backend, reverts):
    claim_id = open_claim
    client.confirm_claim_paid(insurer.private_key, claim_id, LOSS, sha256("ref-1"))
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolPayoutExceedsCover", claim_id, 0, 1),
    ):
        client.confirm_claim_paid(insurer.private_key, claim_id, 1, sha256("ref-2"))


def test_a_zero_payout_is_refused(client, insurer, open_claim, backend, reverts):
    claim_id = open_claim
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolPayoutExceedsCover", claim_id, LOSS, 0),
    ):
        client.confirm_claim_paid(insurer.private_key, claim_id, 0, sha256("ref-1"))


def test_a_bank_reference_used_before_is_refused(client, insurer, open_claim, backend, reverts):
    claim_id = open_claim
    client.confirm_claim_paid(insurer.private_key, claim_id, 10_000, sha256("ref-1"))
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolDuplicateBankReference", sha256("ref-1")),
    ):
        client.confirm_claim_paid(insurer.private_key, claim_id, 10_000, sha256("ref-1"))


def test_another_insurer_cannot_confirm_a_payout(
    client, backend, regulator, merchant, open_claim, reverts
):
    other, other_key = new_member(client, backend, regulator, Role.INSURER)
    now = client.latest_timestamp()
    client.write_policy(other_key, merchant.address, 5_000, now - 1, now + 99, sha256("o"))
    claim_id = open_claim
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolUnauthorized", other.lower()),
    ):
        client.confirm_claim_paid(other_key, claim_id, 1_000, sha256("ref-1"))


def test_a_non_insurer_cannot_confirm_a_payout(client, config, open_claim, backend, reverts):
    bank = config.organisations["bank"].key
    claim_id = open_claim
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolUnauthorized", bank.address.lower()),
    ):
        client.confirm_claim_paid(bank.private_key, claim_id, 1_000, sha256("ref-1"))


def test_an_uncovered_claim_cannot_be_paid_by_an_insurer(
    desk, client, merchant, consumer, regulator, insurer, backend, reverts
):
    agreement_id = funded_plan(desk, backend, merchant, consumer)
    client.declare_default(regulator.private_key, merchant.address)
    client.settle_default(regulator.private_key, [agreement_id])
    claim_id = client.claim_of_agreement(agreement_id)
    assert client.get_claim(claim_id).status == ClaimStatus.UNCOVERED
    with (
        unchanged(backend, lambda: claim_state(client, claim_id)),
        reverts("InsurancePoolUnauthorized", insurer.address.lower()),
    ):
        client.confirm_claim_paid(insurer.private_key, claim_id, 1_000, sha256("ref-1"))


def test_paying_an_unknown_claim_is_refused(client, insurer, backend, reverts):
    with (
        unchanged(backend, lambda: client.is_member(insurer.address)),
        reverts("InsurancePoolUnknownClaim", 7),
    ):
        client.confirm_claim_paid(insurer.private_key, 7, 1_000, sha256("ref-1"))
