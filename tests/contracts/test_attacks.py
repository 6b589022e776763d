"""Attacks on the AgreementBook: replays, forgeries, forged or stale oracle reports, callers
without the right role, reused bank references, releases after default and amount overflows.

Every attack must be refused with the expected custom error and leave the book as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_account import Account

from chain import messages as m
from chain import views as v
from chain.deploy import fund_accounts
from chain.errors import ContractRevert
from chain.scenario import SignedAgreement, SignedRecord, sha256

DAY = 86_400
MAX_REPORT_AGE = 3_600
BANK_THRESHOLD = 2
U64 = 2**64 - 1
U128 = 2**128 - 1
# secp256k1's group order: (r, s) and (r, n − s) are both valid ECDSA signatures of one digest.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_ADDRESS = "0x" + "00" * 20


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Seller:
    key: str
    address: str


def addr(key: str) -> str:
    """The address of a key, lower case as revert arguments decode."""
    return Account.from_key(key).address.lower()


def snapshot(desk, *agreement_ids: bytes) -> list[tuple[v.Agreement, v.Ledger]]:
    return [(desk.client.get_agreement(i), desk.client.get_ledger(i)) for i in agreement_ids]


def assert_conserved(desk, *agreement_ids: bytes) -> None:
    for agreement_id in agreement_ids:
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger.is_conserved(), ledger


def sign_terms(
    desk, terms: m.AgreementTerms, merchant_key: str, consumer_key: str
) -> SignedAgreement:
    domain = desk.client.book_domain()
    return SignedAgreement(
        terms, terms.sign(merchant_key, domain), terms.sign(consumer_key, domain)
    )


def open_plan(desk, merchant, consumer, **kwargs) -> tuple[bytes, SignedAgreement]:
    kwargs.setdefault("units", 10)
    kwargs.setdefault("unit_price", 10_000)
    signed = desk.sign_agreement(merchant.key, consumer.key, merchant.template_id, **kwargs)
    agreement_id, _ = desk.open(signed)
    return agreement_id, signed


def funded_plan(desk, merchant, consumer, **kwargs) -> tuple[bytes, SignedAgreement]:
    agreement_id, signed = open_plan(desk, merchant, consumer, **kwargs)
    desk.fund(agreement_id, signed.terms.total_paid)
    return agreement_id, signed


def funding_report(desk, agreement_id: bytes, amount: int = 100_000, **report_options: Any):
    """A bank funding payload and its report, signed by the bank feed's signers unless told."""
    signer_keys = report_options.pop("signer_keys", desk.bank_signers)
    paid_at = report_options.pop("paid_at", desk.client.latest_timestamp())
    funding = m.FundingReport(agreement_id, amount, desk.next_bank_reference(), paid_at)
    report, signatures = desk.client.make_report(
        m.FEED_BANK, agreement_id, funding, signer_keys, **report_options
    )
    return funding, report, signatures


def stranger_key(backend) -> str:
    """A fresh account with gas money and no role at all."""
    account = Account.create()
    fund_accounts(backend.w3, [account.address])
    return "0x" + bytes(account.key).hex()


def high_s_twin(signature: bytes) -> bytes:
    """The malleated twin (r, n − s, v ^ 1) of a valid 65-byte signature."""
    r, s, v_byte = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v_byte])  # 27 ↔ 28


@pytest.fixture
def fitness_merchant(desk, config) -> Seller:
    demo = config.demo.merchants[1]
    return Seller(
        demo.key.private_key,
        desk.onboard(demo.key.private_key, demo.uscc, demo.name, demo.industry),
    )


# ================================================================ consumption records


def test_replayed_consumption_record_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    signed = desk.sign_record(agreement_id, 1, merchant.key, consumer.key)
    desk.consume(signed)
    before = snapshot(desk, agreement_id)
    with reverts("AgreementBookSequenceMismatch", agreement_id, 2, 1):
        desk.consume(signed)
    with reverts("AgreementBookSequenceMismatch", agreement_id, 2, 1):
        desk.consume_batch([signed])
    assert snapshot(desk, agreement_id) == before
    assert_conserved(desk, agreement_id)


def test_record_repeated_inside_one_batch_is_rejected_and_nothing_recorded(
    desk, merchant, consumer, reverts
):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    signed = desk.sign_record(agreement_id, 1, merchant.key, consumer.key)
    before = snapshot(desk, agreement_id)
    with reverts("AgreementBookSequenceMismatch", agreement_id, 2, 1):
        desk.consume_batch([signed, signed])
    assert snapshot(desk, agreement_id) == before


def test_record_signed_by_another_merchant_is_rejected(
    desk, merchant, consumer, fitness_merchant, reverts
):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    signed = desk.sign_record(agreement_id, 1, fitness_merchant.key, consumer.key)
    digest = signed.record.digest(desk.client.book_domain())
    before = snapshot(desk, agreement_id)
    with reverts(
        "AgreementBookInvalidSignature",
        digest,
        merchant.address.lower(),
        fitness_merchant.address.lower(),
    ):
        desk.consume(signed)
    assert snapshot(desk, agreement_id) == before


def test_record_signed_by_another_consumer_is_rejected(
    desk, merchant, consumer, other_consumer, reverts
):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    signed = desk.sign_record(agreement_id, 1, merchant.key, other_consumer.key)
    digest = signed.record.digest(desk.client.book_domain())
    before = snapshot(desk, agreement_id)
    with reverts(
        "AgreementBookInvalidSignature",
        digest,
        consumer.address.lower(),
        other_consumer.address.lower(),
    ):
        desk.consume(signed)
    assert snapshot(desk, agreement_id) == before


def test_record_with_signatures_swapped_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    signed = desk.sign_record(agreement_id, 1, merchant.key, consumer.key)
    swapped = SignedRecord(signed.record, signed.consumer_signature, signed.merchant_signature)
    digest = signed.record.digest(desk.client.book_domain())
    before = snapshot(desk, agreement_id)
    with reverts(
        "AgreementBookInvalidSignature", digest, merchant.address.lower(), consumer.address.lower()
    ):
        desk.consume(swapped)
    assert snapshot(desk, agreement_id) == before


def test_record_for_agreement_a_replayed_against_agreement_b_is_rejected(
    desk, merchant, consumer, reverts
):
    # Same merchant, same consumer, two plans: A's signatures must not count for B.
    plan_a, _ = funded_plan(desk, merchant, consumer)
    plan_b, _ = funded_plan(desk, merchant, consumer)
    signed_a = desk.sign_record(plan_a, 1, merchant.key, consumer.key)
    record_b = replace(signed_a.record, agreement_id=plan_b)
    forged = SignedRecord(record_b, signed_a.merchant_signature, signed_a.consumer_signature)
    before = snapshot(desk, plan_a, plan_b)
    with reverts("AgreementBookInvalidSignature") as caught:
        desk.consume(forged)
    digest, expected, recovered = caught.value.args_
    assert digest == record_b.digest(desk.client.book_domain())
    assert expected == merchant.address.lower()
    assert recovered != merchant.address.lower()
    assert snapshot(desk, plan_a, plan_b) == before
    # A's record still counts for A.
    desk.consume(signed_a)
    assert desk.client.get_agreement(plan_a).units_consumed == 1
    assert desk.client.get_agreement(plan_b).units_consumed == 0


def test_record_signed_for_another_contract_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    record = desk.sign_record(agreement_id, 1, merchant.key, consumer.key).record
    for domain in (
        desk.client.hub_domain(),
        replace(desk.client.book_domain(), chain_id=desk.client.chain_id + 1),
    ):
        forged = SignedRecord(
            record, record.sign(merchant.key, domain), record.sign(consumer.key, domain)
        )
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidSignature"):
            desk.consume(forged)
        assert snapshot(desk, agreement_id) == before


def test_malleated_consumer_signature_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    signed = desk.sign_record(agreement_id, 1, merchant.key, consumer.key)
    twin = replace(signed, consumer_signature=high_s_twin(signed.consumer_signature))
    assert m.recover_signer(
        signed.record.digest(desk.client.book_domain()), twin.consumer_signature
    ) == (consumer.address)
    before = snapshot(desk, agreement_id)
    with reverts(
        "AgreementBookInvalidSignature",
        signed.record.digest(desk.client.book_domain()),
        consumer.address.lower(),
        ZERO_ADDRESS,
    ):
        desk.consume(twin)
    assert snapshot(desk, agreement_id) == before


def test_record_with_amount_near_uint128_max_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    record = m.ConsumptionRecord(
        agreement_id, 1, 1, U128, desk.client.latest_timestamp(), sha256("overpriced lesson")
    )
    domain = desk.client.book_domain()
    signed = SignedRecord(
        record, record.sign(merchant.key, domain), record.sign(consumer.key, domain)
    )
    before = snapshot(desk, agreement_id)
    with reverts("AgreementBookAmountMismatch", agreement_id, 10_000, U128):
        desk.consume(signed)
    # uint64 max units against 10 left.
    with reverts("AgreementBookInsufficientBalance", agreement_id, 10, U64):
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=U64))
    assert snapshot(desk, agreement_id) == before


# ================================================================ consumer requests


def test_termination_request_for_one_plan_cannot_end_another(desk, merchant, consumer, reverts):
    plan_a, _ = funded_plan(desk, merchant, consumer)
    plan_b, _ = funded_plan(desk, merchant, consumer)
    request, signature = desk.consumer_request(plan_a, consumer.key, m.ConsumerAction.TERMINATE)
    before = snapshot(desk, plan_a, plan_b)
    with reverts("AgreementBookInvalidSignature"):
        desk.client.terminate(desk.operator_key, replace(request, agreement_id=plan_b), signature)
    with reverts("AgreementBookInvalidSignature"):
        desk.client.terminate(
            desk.operator_key, replace(request, deadline=request.deadline + 1), signature
        )  # extended deadline
    with reverts("AgreementBookInvalidSignature"):
        desk.client.terminate(
            desk.operator_key, replace(request, min_refund=request.min_refund + 1), signature
        )  # another refund
    assert snapshot(desk, plan_a, plan_b) == before


def test_agreement_signed_for_one_consumer_cannot_be_opened_for_another(
    desk, merchant, consumer, other_consumer, reverts
):
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
    )
    moved = replace(signed, terms=replace(signed.terms, consumer=other_consumer.address))
    with reverts("AgreementBookInvalidSignature") as caught:
        desk.open(moved)
    assert caught.value.args_[1] == merchant.address.lower()
    assert desk.client.agreement_count(merchant.address) == 0


# ================================================================ oracle reports


def _assert_unfunded(desk, agreement_id: bytes, before, funding: m.FundingReport) -> None:
    assert snapshot(desk, agreement_id) == before
    assert desk.client.get_agreement(agreement_id).state == m.AgreementState.SIGNED
    assert not desk.client.is_bank_reference_used(funding.bank_reference)
    assert desk.client.last_sequence(m.FEED_BANK, agreement_id) == 0


def test_report_forged_by_non_signers_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    forgers = [Account.create() for _ in range(3)]
    funding, report, signatures = funding_report(
        desk, agreement_id, signer_keys=["0x" + bytes(a.key).hex() for a in forgers]
    )
    lowest = min((a.address for a in forgers), key=lambda a: int(a, 16))
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubUnknownSigner", 0, lowest.lower()):
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    _assert_unfunded(desk, agreement_id, before, funding)


def test_bank_report_signed_by_another_feeds_signers_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    funding, report, signatures = funding_report(
        desk, agreement_id, signer_keys=desk.licence_signers
    )
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubUnknownSigner") as caught:
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    assert caught.value.args_[0] == 0
    _assert_unfunded(desk, agreement_id, before, funding)


def test_under_signed_report_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    before = snapshot(desk, agreement_id)
    for signers in (desk.bank_signers[:1], []):
        funding, report, signatures = funding_report(desk, agreement_id, signer_keys=signers)
        with reverts("OracleHubInsufficientSignatures", len(signers), BANK_THRESHOLD):
            desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
        _assert_unfunded(desk, agreement_id, before, funding)


def test_report_with_the_same_signature_twice_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    funding, report, signatures = funding_report(
        desk, agreement_id, signer_keys=desk.bank_signers[:1]
    )
    signer = addr(desk.bank_signers[0])
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubSignaturesNotSorted", 1, signer):
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures * 2)
    _assert_unfunded(desk, agreement_id, before, funding)


def test_report_with_signatures_out_of_order_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    funding, report, signatures = funding_report(
        desk, agreement_id, signer_keys=desk.bank_signers[:2]
    )
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubSignaturesNotSorted") as caught:
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures[::-1])
    assert caught.value.args_[0] == 1
    _assert_unfunded(desk, agreement_id, before, funding)


def test_stale_report_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    issued_at = desk.client.latest_timestamp() - MAX_REPORT_AGE - 120
    funding, report, signatures = funding_report(
        desk, agreement_id, issued_at=issued_at, paid_at=issued_at
    )
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubStaleReport") as caught:
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    reported, now, max_age = caught.value.args_
    assert (reported, max_age) == (issued_at, MAX_REPORT_AGE)
    assert now - issued_at > MAX_REPORT_AGE
    _assert_unfunded(desk, agreement_id, before, funding)


def test_report_that_aged_while_waiting_is_rejected(desk, merchant, consumer, backend, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    funding, report, signatures = funding_report(desk, agreement_id)
    backend.advance_time(MAX_REPORT_AGE + 60)
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubStaleReport"):
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    _assert_unfunded(desk, agreement_id, before, funding)


def test_report_from_the_future_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    issued_at = desk.client.latest_timestamp() + 3 * MAX_REPORT_AGE
    funding, report, signatures = funding_report(desk, agreement_id, issued_at=issued_at)
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubReportFromFuture") as caught:
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    assert caught.value.args_[0] == issued_at
    _assert_unfunded(desk, agreement_id, before, funding)


def test_report_signed_under_an_old_feed_configuration_is_rejected(
    desk, merchant, consumer, config, reverts
):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    funding, report, signatures = funding_report(desk, agreement_id)
    old_version = desk.client.feed_config(m.FEED_BANK).version
    # The regulator reconfigures the feed (same signers): every earlier report is void.
    desk.client.configure_feed(
        desk.regulator_key, m.FEED_BANK, list(config.oracle_feeds["bank_feed"].signer_addresses), 2
    )
    assert desk.client.feed_config(m.FEED_BANK).version == old_version + 1
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubConfigVersionMismatch", m.FEED_BANK, old_version + 1, old_version):
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    # Relabelling the report with the new version breaks its signatures.
    relabelled = replace(report, config_version=old_version + 1)
    with reverts("OracleHubUnknownSigner"):
        desk.client.confirm_funding(desk.bank_oracle_key, funding, relabelled, signatures)
    _assert_unfunded(desk, agreement_id, before, funding)
    # A fresh report under the new version is accepted.
    desk.fund(agreement_id, 100_000)
    assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE


def test_signer_removed_from_the_feed_no_longer_counts(desk, merchant, consumer, reverts):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    kept, removed = desk.bank_signers[:2], desk.bank_signers[2]
    desk.client.configure_feed(desk.regulator_key, m.FEED_BANK, [addr(k) for k in kept], 2)
    funding, report, signatures = funding_report(desk, agreement_id, signer_keys=[kept[0], removed])
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubUnknownSigner") as caught:
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    assert caught.value.args_[1] == addr(removed)
    _assert_unfunded(desk, agreement_id, before, funding)


def test_report_reusing_an_accepted_sequence_is_rejected(desk, merchant, consumer, reverts):
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    # A lesson releases the upfront, so a payment to the merchant can be instructed.
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 1_000)
    last = desk.client.last_sequence(m.FEED_BANK, agreement_id)
    payout = m.PayoutReport(
        agreement_id, m.Payee.MERCHANT, 1_000, desk.next_bank_reference(), instruction_id
    )
    report, signatures = desk.client.make_report(
        m.FEED_BANK, agreement_id, payout, desk.bank_signers, sequence=last
    )
    before = snapshot(desk, agreement_id)
    with reverts("OracleHubSequenceNotIncreasing", m.FEED_BANK, agreement_id, last, last):
        desk.client.confirm_payout(desk.bank_oracle_key, payout, report, signatures)
    assert snapshot(desk, agreement_id) == before


def test_stranger_cannot_burn_a_report_by_consuming_it_at_the_hub(
    desk, merchant, consumer, backend, reverts
):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    funding, report, signatures = funding_report(desk, agreement_id)
    key = stranger_key(backend)
    with reverts("OracleHubUnauthorized", addr(key)):
        desk.client.transact(
            key, desk.client.oracle_hub.functions.consume(report.as_abi(), signatures)
        )
    assert desk.client.last_sequence(m.FEED_BANK, agreement_id) == 0
    desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE


# ================================================================ callers without the right role


def test_non_member_can_call_nothing(desk, merchant, consumer, backend, reverts):
    key = stranger_key(backend)
    stranger = addr(key)
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    with reverts("AgreementBookUnauthorized", stranger):
        desk.open(signed, submitter_key=key)
    assert desk.client.agreement_count(merchant.address) == 0

    agreement_id, _ = desk.open(signed)
    funding, report, signatures = funding_report(desk, agreement_id)
    with reverts("AgreementBookUnauthorized", stranger):
        desk.client.confirm_funding(key, funding, report, signatures)
    desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    before = snapshot(desk, agreement_id)

    with reverts("AgreementBookUnauthorized", stranger):
        desk.consume(
            desk.sign_record(agreement_id, 1, merchant.key, consumer.key), submitter_key=key
        )
    with reverts("AgreementBookUnauthorized", stranger):
        desk.consume_batch(
            [desk.sign_record(agreement_id, 1, merchant.key, consumer.key)], submitter_key=key
        )
    for action, call in (
        (m.ConsumerAction.COOLING_OFF, desk.client.cancel_in_cooling_off),
        (m.ConsumerAction.TERMINATE, desk.client.terminate),
    ):
        request, signature = desk.consumer_request(agreement_id, consumer.key, action)
        with reverts("AgreementBookUnauthorized", stranger):
            call(key, request, signature)
    with reverts("AgreementBookUnauthorized", stranger):
        desk.client.expire(key, agreement_id)
    with reverts("AgreementBookUnauthorized", stranger):
        desk.client.settle_default(key, [agreement_id])
    instruction = m.PaymentInstruction(sha256("i"), agreement_id, m.Payee.MERCHANT, 1_000)
    report, signatures = desk.client.make_report(
        m.FEED_BANK, agreement_id, instruction, desk.bank_signers
    )
    with reverts("CustodyDeskUnauthorized", stranger):
        desk.client.instruct_payment(key, instruction, report, signatures)
    payout = m.PayoutReport(
        agreement_id, m.Payee.MERCHANT, 1_000, desk.next_bank_reference(), sha256("p")
    )
    report, signatures = desk.client.make_report(
        m.FEED_BANK, agreement_id, payout, desk.bank_signers
    )
    with reverts("CustodyDeskUnauthorized", stranger):
        desk.client.confirm_payout(key, payout, report, signatures)
    assert snapshot(desk, agreement_id) == before
    assert_conserved(desk, agreement_id)


def test_members_without_the_right_role_are_refused(
    desk, merchant, consumer, fitness_merchant, reverts
):
    agreement_id, _ = open_plan(desk, merchant, consumer)
    funding, report, signatures = funding_report(desk, agreement_id)
    bank_key = desk.config.organisations["bank"].key.private_key
    for key in (bank_key, desk.regulator_key, merchant.key, desk.operator_key):
        with reverts("AgreementBookUnauthorized", addr(key)):
            desk.client.confirm_funding(key, funding, report, signatures)
    desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
    before = snapshot(desk, agreement_id)

    # Another merchant may not submit this merchant's records, nor the regulator.
    for key in (fitness_merchant.key, desk.regulator_key):
        with reverts("AgreementBookUnauthorized", addr(key)):
            desk.consume(
                desk.sign_record(agreement_id, 1, merchant.key, consumer.key), submitter_key=key
            )
    # The merchant may neither instruct nor confirm its own payout.
    instruction = m.PaymentInstruction(sha256("i"), agreement_id, m.Payee.MERCHANT, 70_000)
    report, signatures = desk.client.make_report(
        m.FEED_BANK, agreement_id, instruction, desk.bank_signers
    )
    with reverts("CustodyDeskUnauthorized", merchant.address.lower()):
        desk.client.instruct_payment(merchant.key, instruction, report, signatures)
    payout = m.PayoutReport(
        agreement_id, m.Payee.MERCHANT, 70_000, desk.next_bank_reference(), sha256("p")
    )
    report, signatures = desk.client.make_report(
        m.FEED_BANK, agreement_id, payout, desk.bank_signers
    )
    with reverts("CustodyDeskUnauthorized", merchant.address.lower()):
        desk.client.confirm_payout(merchant.key, payout, report, signatures)
    assert snapshot(desk, agreement_id) == before


# ================================================================ bank references


def test_bank_reference_counts_once_across_fundings_and_payouts(
    desk, merchant, consumer, other_consumer, reverts
):
    first, signed = open_plan(desk, merchant, consumer)
    funding_ref = desk.next_bank_reference()
    desk.fund(first, signed.terms.total_paid, bank_reference=funding_ref)
    desk.consume(desk.sign_record(first, 1, merchant.key, consumer.key))
    payout_ref = desk.next_bank_reference()
    desk.confirm_payout(first, m.Payee.MERCHANT, 10_000, bank_reference=payout_ref)
    instruction_id, _ = desk.instruct_payment(first, m.Payee.MERCHANT, 10_000)
    second, _ = open_plan(desk, merchant, other_consumer)
    before = snapshot(desk, first, second)

    for reference in (funding_ref, payout_ref):
        with reverts("AgreementBookDuplicateBankReference", reference):
            desk.fund(second, 100_000, bank_reference=reference)
        with reverts("CustodyDeskDuplicateBankReference", reference):
            desk.confirm_payout(
                first,
                m.Payee.MERCHANT,
                10_000,
                bank_reference=reference,
                instruction_id=instruction_id,
            )
    assert snapshot(desk, first, second) == before
    assert_conserved(desk, first)


# ================================================================ default


def test_no_release_after_default(desk, merchant, consumer, reverts):
    # Paid 100,000: upfront 70,000; one lesson released 3,000 → merchant entitled to 73,000.
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
    desk.client.declare_default(desk.regulator_key, merchant.address)
    before = snapshot(desk, agreement_id)
    with reverts(
        "AgreementBookMerchantStopped", merchant.address.lower(), m.MerchantStatus.DEFAULTED
    ):
        desk.consume(desk.sign_record(agreement_id, 2, merchant.key, consumer.key))
    with reverts(
        "AgreementBookMerchantStopped", merchant.address.lower(), m.MerchantStatus.DEFAULTED
    ):
        desk.consume_batch([desk.sign_record(agreement_id, 2, merchant.key, consumer.key, units=9)])
    assert snapshot(desk, agreement_id) == before

    # Refund 100,000 × 90,000 ÷ 100,000 = 90,000: frozen 27,000, then 63,000 of the unpaid
    # 73,000 reclaimed (released 3,000, upfront 60,000). The merchant keeps 10,000: the lesson.
    desk.client.settle_default(desk.regulator_key, [agreement_id])
    settled = snapshot(desk, agreement_id)
    ledger = settled[0][1]
    assert (ledger.frozen, ledger.released, ledger.upfront, ledger.refunded) == (
        0,
        0,
        10_000,
        90_000,
    )
    with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.DEFAULTED):
        desk.consume(
            desk.sign_record(agreement_id, 2, merchant.key, consumer.key, unit_price=10_000)
        )
    # Not even the 10,000 the merchant keeps is paid to a merchant in default.
    with reverts(
        "AgreementBookMerchantStopped", merchant.address.lower(), m.MerchantStatus.DEFAULTED
    ):
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 10_000)
    assert snapshot(desk, agreement_id) == settled
    assert ledger.is_conserved()


def test_terminating_a_defaulted_merchants_plan_does_not_bypass_insurance(
    desk, merchant, consumer, reverts
):
    # Paid 100,000, 2 lessons used: frozen 24,000, released 6,000; the bank paid the merchant
    # its 70,000 + 6,000 = 76,000, so custody holds nothing else to reclaim.
    desk.write_policy(merchant.address, 100_000)
    agreement_id, _ = funded_plan(desk, merchant, consumer)
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2))
    desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 76_000)
    desk.client.declare_default(desk.regulator_key, merchant.address)
    before = snapshot(desk, agreement_id)
    with reverts(
        "AgreementBookMerchantStopped", merchant.address.lower(), m.MerchantStatus.DEFAULTED
    ):
        desk.terminate(agreement_id, consumer.key)
    assert snapshot(desk, agreement_id) == before

    desk.settle_default(merchant.address, [agreement_id])
    # Refund 80,000: 24,000 from custody, 80,000 − 24,000 = 56,000 from the policy.
    claim = desk.client.get_claim(desk.client.claim_of_agreement(agreement_id))
    assert (claim.loss, claim.covered, claim.consumer) == (56_000, 56_000, consumer.address)
    ledger = desk.client.get_ledger(agreement_id)
    assert (ledger.insured_shortfall, ledger.merchant_owed) == (56_000, 0)
    assert ledger.is_conserved()


# ================================================================ amount overflow


def test_plan_priced_near_uint128_max_is_refused_by_the_template_cap(
    desk, merchant, consumer, reverts
):
    # 1 × (2¹²⁸ − 1) = (2¹²⁸ − 1) + 0: the plan's value fits in 128 bits, so the template's
    # 500,000 fen cap on the payment must refuse it.
    base = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
    )
    terms = replace(base.terms, units=1, unit_price=U128, total_paid=U128, bonus=0)
    with reverts("AgreementBookOutsideTemplate", m.label("maxAmount"), 500_000, U128):
        desk.open(sign_terms(desk, terms, merchant.key, consumer.key))
    assert desk.client.agreement_count(merchant.address) == 0


def test_plan_whose_paid_plus_bonus_exceeds_uint128_is_refused(desk, merchant, consumer, reverts):
    # 2 × (2¹²⁸ − 1) = (2¹²⁸ − 1) + (2¹²⁸ − 1) holds in 256 bits but is no 128-bit value.
    base = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
    )
    terms = replace(base.terms, units=2, unit_price=U128, total_paid=U128, bonus=U128)
    with reverts("AgreementBookInvalidTerms", m.label("bonus")):
        desk.open(sign_terms(desk, terms, merchant.key, consumer.key))
    assert desk.client.agreement_count(merchant.address) == 0


def test_units_times_price_overflowing_uint128_is_not_wrapped(desk, merchant, consumer, reverts):
    # (2⁶⁴ − 1) × (2¹²⁸ − 1) would wrap in 128 bits; the contract compares in 256 bits.
    base = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
    )
    terms = replace(base.terms, units=U64, unit_price=U128, total_paid=100_000, bonus=0)
    with reverts("AgreementBookValueMismatch", U64 * U128, 100_000):
        desk.open(sign_terms(desk, terms, merchant.key, consumer.key))
    # 2 × 2¹²⁷ = 2¹²⁸ ≡ 0 (mod 2¹²⁸): a wrapped product would match a zero-sum plan.
    terms = replace(base.terms, units=2, unit_price=2**127, total_paid=1, bonus=0)
    with reverts("AgreementBookValueMismatch", 2**128, 1):
        desk.open(sign_terms(desk, terms, merchant.key, consumer.key))
    assert desk.client.agreement_count(merchant.address) == 0


def test_plan_whose_face_value_exceeds_uint128_is_refused(desk, merchant, consumer, reverts):
    # Paid 100,000 within the template cap, bonus 2¹²⁸ − 100,000: face value 2¹²⁸ = 2 × 2¹²⁷.
    # valueConsumed is a uint128, so such a plan could never be completed; it is refused.
    base = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
    )
    terms = replace(
        base.terms, units=2, unit_price=2**127, total_paid=100_000, bonus=2**128 - 100_000
    )
    signed = sign_terms(desk, terms, merchant.key, consumer.key)
    with reverts("AgreementBookInvalidTerms", m.label("bonus")):
        desk.open(signed)
    assert desk.client.agreement_count(merchant.address) == 0
    with pytest.raises(ContractRevert, match="AgreementBookUnknownAgreement"):
        desk.client.get_agreement(terms.digest(desk.client.book_domain()))


def test_plan_whose_face_value_is_exactly_uint128_max_opens_and_completes(desk, merchant, consumer):
    # 2¹²⁸ − 1 = 3 × 113,427,455,640,312,821,154,458,202,477,256,070,485: three units of that
    # price, paid 100,000 and the rest bonus. Frozen 30,000, upfront 70,000; each unit releases
    # 30,000 × price ÷ (3 × price) = 10,000; the last brings valueConsumed to exactly 2¹²⁸ − 1.
    price = U128 // 3
    assert 3 * price == U128
    base = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
    )
    terms = replace(base.terms, units=3, unit_price=price, total_paid=100_000, bonus=U128 - 100_000)
    agreement_id, _ = desk.open(sign_terms(desk, terms, merchant.key, consumer.key))
    desk.fund(agreement_id, 100_000)
    for sequence in (1, 2, 3):
        desk.consume(desk.sign_record(agreement_id, sequence, merchant.key, consumer.key))
    agreement = desk.client.get_agreement(agreement_id)
    assert agreement.state == m.AgreementState.COMPLETED
    assert agreement.value_consumed == U128
    ledger = desk.client.get_ledger(agreement_id)
    assert (ledger.frozen, ledger.released, ledger.upfront) == (0, 30_000, 70_000)
    assert ledger.is_conserved()
