"""AgreementBook: every function's happy path and each of its refusals.

Each refusal asserts the custom error (with its arguments where they are deterministic) and that
nothing changed: the agreement, its ledger and the book's counters read the same afterwards.
Every scenario that moves money ends by checking the ledger's conservation law,
deposited = frozen + released + refunded + upfront.

Worked numbers are computed by hand in the comments; amounts are fen (1 RMB = 100 fen).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pytest
from eth_account import Account

from chain import messages as m
from chain import views as v
from chain.deploy import fund_accounts
from chain.errors import ContractRevert
from chain.scenario import SignedAgreement, SignedRecord, sha256

DAY = 86_400
TRAINING_MAX_AMOUNT = 500_000
TRAINING_MAX_UNITS = 60
TRAINING_MAX_TERM_DAYS = 92
COOLING_OFF_DAYS = 7


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Seller:
    """A merchant other than the fixture's, with its key and address."""

    key: str
    address: str


def addr(key: str) -> str:
    """The address of a key, lower case as revert arguments decode."""
    return Account.from_key(key).address.lower()


def snapshot(desk, *agreement_ids: bytes) -> list[tuple[v.Agreement, v.Ledger]]:
    """Everything the book holds about some agreements."""
    return [(desk.client.get_agreement(i), desk.client.get_ledger(i)) for i in agreement_ids]


def assert_conserved(desk, *agreement_ids: bytes) -> None:
    for agreement_id in agreement_ids:
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger.is_conserved(), ledger


def sign_terms(
    desk, terms: m.AgreementTerms, merchant_key: str, consumer_key: str
) -> SignedAgreement:
    """Sign arbitrary terms with the given keys (which need not be the parties')."""
    domain = desk.client.book_domain()
    return SignedAgreement(
        terms, terms.sign(merchant_key, domain), terms.sign(consumer_key, domain)
    )


def sign_record(
    desk, record: m.ConsumptionRecord, merchant_key: str, consumer_key: str
) -> SignedRecord:
    """Sign an arbitrary record with the given keys."""
    domain = desk.client.book_domain()
    return SignedRecord(
        record, record.sign(merchant_key, domain), record.sign(consumer_key, domain)
    )


def open_plan(
    desk, merchant, consumer, *, template_id=None, **kwargs
) -> tuple[bytes, SignedAgreement]:
    kwargs.setdefault("units", 10)
    kwargs.setdefault("unit_price", 10_000)
    signed = desk.sign_agreement(
        merchant.key,
        consumer.key,
        merchant.template_id if template_id is None else template_id,
        **kwargs,
    )
    agreement_id, _ = desk.open(signed)
    return agreement_id, signed


def funded_plan(desk, merchant, consumer, **kwargs) -> tuple[bytes, SignedAgreement]:
    agreement_id, signed = open_plan(desk, merchant, consumer, **kwargs)
    desk.fund(agreement_id, signed.terms.total_paid)
    return agreement_id, signed


def register_template(
    desk,
    *,
    refund_rule: m.RefundRule = m.RefundRule.BONUS_CONVERSION,
    max_units: int = 0,
    min_custody_bps: int = 3000,
    rounding: int = 100,
    max_amount: int = TRAINING_MAX_AMOUNT,
    industry: str = "training",
) -> int:
    """A fresh template of the regulator's, unique by its document hash."""
    template_id, _ = desk.client.register_template(
        desk.regulator_key,
        v.Template(
            industry=m.industry_id(industry),
            document_hash=sha256(f"test template {os.urandom(16).hex()}"),
            version=1,
            max_amount=max_amount,
            max_term_days=TRAINING_MAX_TERM_DAYS,
            max_units=max_units,
            cooling_off_days=COOLING_OFF_DAYS,
            min_custody_bps=min_custody_bps,
            refund_rule=refund_rule,
            refund_rounding_fen=rounding,
            active=True,
        ),
    )
    return template_id


def worked_example(desk, merchant, consumer, template_id: int) -> bytes:
    """Paid 2,000 RMB with 1,000 RMB bonus (3,000 units of 1 RMB), 434 RMB consumed."""
    agreement_id, signed = funded_plan(
        desk, merchant, consumer, template_id=template_id, units=3000, unit_price=100, bonus=100_000
    )
    assert signed.terms.total_paid == 200_000
    desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=434))
    return agreement_id


@pytest.fixture
def fitness_merchant(desk, config) -> Seller:
    """The second demo merchant (fitness), onboarded."""
    demo = config.demo.merchants[1]
    return Seller(
        demo.key.private_key,
        desk.onboard(demo.key.private_key, demo.uscc, demo.name, demo.industry),
    )


# ================================================================ openAgreement


class TestOpenAgreement:
    def test_open_records_terms_emits_event_and_anchors_the_agreement_id(
        self, desk, merchant, consumer
    ):
        signed = desk.sign_agreement(
            merchant.key,
            consumer.key,
            merchant.template_id,
            units=20,
            unit_price=10_000,
            bonus=20_000,
        )
        agreement_id, result = desk.open(signed)
        terms = signed.terms

        assert agreement_id == terms.digest(desk.client.book_domain())
        event = result.event("AgreementOpened").args
        assert bytes(event["agreementId"]) == agreement_id
        assert event["merchant"] == merchant.address
        assert event["consumer"] == consumer.address
        assert event["templateId"] == merchant.template_id
        assert bytes(event["documentHash"]) == terms.document_hash
        assert (event["units"], event["unitPrice"], event["totalPaid"], event["bonus"]) == (
            20,
            10_000,
            180_000,
            20_000,
        )
        assert event["expiry"] == terms.expiry

        agreement = desk.client.get_agreement(agreement_id)
        assert agreement.state == m.AgreementState.SIGNED
        assert agreement.next_sequence == 1
        assert (agreement.merchant, agreement.consumer) == (merchant.address, consumer.address)
        assert agreement.funded_at == 0
        assert desk.client.get_ledger(agreement_id) == v.Ledger(*[0] * 15)
        assert desk.client.agreements_of(merchant.address) == [agreement_id]
        assert desk.client.agreement_count(merchant.address) == 1

        # The evidence is the agreement id (the EIP-712 digest, which commits to the document
        # hash), anchored by the book; the document hash itself stays free.
        anchor = desk.client.lookup_evidence(agreement_id)
        assert anchor.kind == m.EvidenceKind.AGREEMENT_OPENED
        assert anchor.subject == agreement_id
        assert anchor.block_number == result.block_number
        assert anchor.submitter == desk.client.addresses.book
        assert desk.client.lookup_evidence(terms.document_hash).block_number == 0

    def test_merchant_may_submit_its_own_plan(self, desk, merchant, consumer):
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        agreement_id, _ = desk.open(signed, submitter_key=merchant.key)
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.SIGNED

    def test_a_member_anchoring_the_agreement_id_first_does_not_block_opening(
        self, desk, merchant, consumer
    ):
        # The id is predictable from the signed terms; a member's anchor lives in the members'
        # namespace and cannot occupy the book's.
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        agreement_id = signed.terms.digest(desk.client.book_domain())
        early = desk.client.anchor(
            merchant.key, agreement_id, m.EvidenceKind.DOCUMENT, agreement_id
        )

        opened_id, result = desk.open(signed)

        assert opened_id == agreement_id
        system = desk.client.lookup_evidence(agreement_id)
        assert (system.kind, system.submitter, system.block_number) == (
            m.EvidenceKind.AGREEMENT_OPENED,
            desk.client.addresses.book,
            result.block_number,
        )
        member = desk.client.lookup_member_anchor(agreement_id)
        assert (member.kind, member.submitter, member.block_number) == (
            m.EvidenceKind.DOCUMENT,
            merchant.address,
            early.block_number,
        )

    # ------------------------------------------------------------ refusals

    def _refused(self, desk, merchant, signed, expectation, *, submitter_key=None):
        """Submit `signed`, expect `expectation` to hold, and check the book did not change."""
        count = desk.client.agreement_count(merchant.address)
        with expectation as caught:
            desk.open(signed, submitter_key=submitter_key)
        assert desk.client.agreement_count(merchant.address) == count
        agreement_id = signed.terms.digest(desk.client.book_domain())
        with pytest.raises(ContractRevert, match="AgreementBookUnknownAgreement"):
            desk.client.get_agreement(agreement_id)
        assert desk.client.lookup_evidence(agreement_id).block_number == 0
        return caught

    def test_duplicate_plan_is_rejected(self, desk, merchant, consumer, reverts):
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        agreement_id, _ = desk.open(signed)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookAlreadyExists", agreement_id):
            desk.open(signed)
        assert snapshot(desk, agreement_id) == before
        assert desk.client.agreement_count(merchant.address) == 1

    def test_plan_with_signature_not_by_merchant_is_rejected(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        terms = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        ).terms
        digest = terms.digest(desk.client.book_domain())
        self._refused(
            desk,
            merchant,
            sign_terms(desk, terms, other_consumer.key, consumer.key),
            reverts(
                "AgreementBookInvalidSignature",
                digest,
                merchant.address.lower(),
                other_consumer.address.lower(),
            ),
        )

    def test_plan_with_signature_not_by_consumer_is_rejected(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        terms = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        ).terms
        digest = terms.digest(desk.client.book_domain())
        self._refused(
            desk,
            merchant,
            sign_terms(desk, terms, merchant.key, other_consumer.key),
            reverts(
                "AgreementBookInvalidSignature",
                digest,
                consumer.address.lower(),
                other_consumer.address.lower(),
            ),
        )

    def test_plan_with_malformed_signature_is_rejected(self, desk, merchant, consumer, reverts):
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        broken = replace(signed, consumer_signature=b"\x01" * 64)
        caught = self._refused(desk, merchant, broken, reverts("AgreementBookInvalidSignature"))
        assert caught.value.args_[1] == consumer.address.lower()

    def test_plan_whose_units_value_differs_from_paid_plus_bonus_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        base = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
        )
        # 10 × 10,000 = 100,000 but paid 90,000 + bonus 5,000 = 95,000.
        terms = replace(base.terms, total_paid=90_000, bonus=5_000)
        self._refused(
            desk,
            merchant,
            sign_terms(desk, terms, merchant.key, consumer.key),
            reverts("AgreementBookValueMismatch", 100_000, 95_000),
        )

    def test_plan_above_template_max_amount_is_rejected(self, desk, merchant, consumer, reverts):
        # 50 lessons × 10,001 fen = 500,050 fen > 500,000.
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=50, unit_price=10_001
        )
        self._refused(
            desk,
            merchant,
            signed,
            reverts(
                "AgreementBookOutsideTemplate", m.label("maxAmount"), TRAINING_MAX_AMOUNT, 500_050
            ),
        )

    def test_plan_at_template_max_amount_is_accepted(self, desk, merchant, consumer):
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=50, unit_price=10_000
        )
        agreement_id, _ = desk.open(signed)
        assert desk.client.get_agreement(agreement_id).total_paid == TRAINING_MAX_AMOUNT

    def test_plan_with_too_many_units_is_rejected(self, desk, merchant, consumer, reverts):
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=61, unit_price=100
        )
        self._refused(
            desk,
            merchant,
            signed,
            reverts("AgreementBookOutsideTemplate", m.label("maxUnits"), TRAINING_MAX_UNITS, 61),
        )

    def test_plan_with_zero_units_is_rejected(self, desk, merchant, consumer, reverts):
        base = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        terms = replace(base.terms, units=0, unit_price=0, total_paid=0)
        self._refused(
            desk,
            merchant,
            sign_terms(desk, terms, merchant.key, consumer.key),
            reverts("AgreementBookInvalidTerms", m.label("units")),
        )

    def test_plan_whose_consumer_is_the_merchant_is_rejected(self, desk, merchant, reverts):
        signed = desk.sign_agreement(
            merchant.key, merchant.key, merchant.template_id, units=1, unit_price=100
        )
        self._refused(
            desk,
            merchant,
            signed,
            reverts("AgreementBookInvalidTerms", m.label("consumer")),
        )

    def test_plan_with_term_longer_than_template_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        signed = desk.sign_agreement(
            merchant.key,
            consumer.key,
            merchant.template_id,
            units=1,
            unit_price=100,
            term_days=TRAINING_MAX_TERM_DAYS + 1,
        )
        caught = self._refused(
            desk,
            merchant,
            signed,
            reverts("AgreementBookOutsideTemplate"),
        )
        limit, allowed, got = caught.value.args_
        assert limit == m.label("maxTermDays")
        assert got == signed.terms.expiry
        # The latest allowed expiry is now + 92 days: about a day short of what was asked.
        assert signed.terms.expiry - DAY <= allowed < signed.terms.expiry

    def test_plan_with_expiry_in_the_past_is_rejected(self, desk, merchant, consumer, reverts):
        base = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        terms = replace(base.terms, expiry=desk.client.latest_timestamp() - 1)
        self._refused(
            desk,
            merchant,
            sign_terms(desk, terms, merchant.key, consumer.key),
            reverts("AgreementBookInvalidTerms", m.label("expiry")),
        )

    def test_plan_on_inactive_template_is_rejected(self, desk, merchant, consumer, reverts):
        desk.client.set_template_active(desk.regulator_key, merchant.template_id, False)
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        self._refused(
            desk, merchant, signed, reverts("AgreementBookTemplateInactive", merchant.template_id)
        )

    def test_plan_on_template_of_another_industry_is_rejected(
        self, desk, merchant, consumer, fitness_merchant, reverts
    ):
        signed = desk.sign_agreement(
            fitness_merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        self._refused(
            desk,
            fitness_merchant,
            signed,
            reverts(
                "AgreementBookIndustryMismatch", m.industry_id("fitness"), m.industry_id("training")
            ),
        )

    def test_plan_of_suspended_merchant_is_rejected(self, desk, merchant, consumer, reverts):
        desk.client.suspend_merchant(desk.regulator_key, merchant.address)
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        self._refused(
            desk,
            merchant,
            signed,
            reverts("AgreementBookMerchantCannotSell", merchant.address.lower()),
        )

    def test_plan_of_blocked_tier_merchant_is_rejected(self, desk, merchant, consumer, reverts):
        desk.client.set_risk_tier(desk.regulator_key, merchant.address, m.RiskTier.BLOCKED)
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        self._refused(
            desk,
            merchant,
            signed,
            reverts("AgreementBookMerchantCannotSell", merchant.address.lower()),
        )

    def test_plan_submitted_by_neither_merchant_nor_operator_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        self._refused(
            desk,
            merchant,
            signed,
            reverts("AgreementBookUnauthorized", addr(desk.insurer_key)),
            submitter_key=desk.insurer_key,
        )

    def test_plan_submitted_by_another_merchant_is_rejected(
        self, desk, merchant, consumer, fitness_merchant, reverts
    ):
        signed = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
        )
        self._refused(
            desk,
            merchant,
            signed,
            reverts("AgreementBookUnauthorized", fitness_merchant.address.lower()),
            submitter_key=fitness_merchant.key,
        )


# ================================================================ confirmFunding


class TestConfirmFunding:
    def test_funding_freezes_custody_share_rounded_up_and_holds_the_upfront_rest(
        self, desk, merchant, consumer, backend
    ):
        # 7 lessons × 14,287 fen = 100,009 fen; 30 % is 30,002.7 → frozen 30,003, upfront 70,006.
        # The upfront share is the merchant's only once the consumer can no longer cool off.
        agreement_id, signed = open_plan(desk, merchant, consumer, units=7, unit_price=14_287)
        reference = desk.next_bank_reference()
        # The bank booked the payment an hour before it reported it.
        paid_at = desk.client.latest_timestamp()
        backend.advance_time(3_600)
        result = desk.fund(agreement_id, 100_009, bank_reference=reference, paid_at=paid_at)

        funded = result.event("AgreementFunded").args
        assert bytes(funded["agreementId"]) == agreement_id
        assert bytes(funded["bankReference"]) == reference
        assert funded["merchant"] == merchant.address
        assert (funded["deposited"], funded["frozen"], funded["upfront"], funded["custodyBps"]) == (
            100_009,
            30_003,
            70_006,
            3000,
        )
        assert not result.named("FundsReleased")
        deposited = result.event("CustodyDeposited").args
        assert (deposited["merchant"], bytes(deposited["agreementId"]), deposited["amount"]) == (
            merchant.address,
            agreement_id,
            100_009,
        )

        agreement = desk.client.get_agreement(agreement_id)
        assert agreement.state == m.AgreementState.ACTIVE
        assert agreement.custody_bps == 3000
        assert not agreement.upfront_released
        # Funding time is the bank's booking time, not the block that took the report.
        assert agreement.funded_at == paid_at
        block = desk.client.w3.eth.get_block(result.block_number)
        assert block["timestamp"] >= paid_at + 3_600
        ledger = desk.client.get_ledger(agreement_id)
        assert (
            ledger.deposited,
            ledger.frozen,
            ledger.upfront,
            ledger.released,
            ledger.refunded,
        ) == (
            100_009,
            30_003,
            70_006,
            0,
            0,
        )
        assert desk.client.is_bank_reference_used(reference)
        digest = bytes(result.event("ReportAccepted").args["digest"])
        assert desk.client.lookup_evidence(digest).kind == m.EvidenceKind.AGREEMENT_FUNDED
        assert ledger.is_conserved()

    def test_custody_ratio_is_raised_to_the_merchants_tier_floor(self, desk, merchant, consumer):
        agreement_id, _ = open_plan(desk, merchant, consumer, units=10, unit_price=10_000)
        desk.client.set_risk_tier(desk.regulator_key, merchant.address, m.RiskTier.MEDIUM)
        result = desk.fund(agreement_id, 100_000)
        assert result.event("AgreementFunded").args["custodyBps"] == 5000
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.frozen, ledger.upfront) == (50_000, 50_000)
        assert desk.client.get_agreement(agreement_id).custody_bps == 5000
        assert ledger.is_conserved()

    def test_template_minimum_wins_over_a_lower_tier_floor(self, desk, merchant, consumer):
        template_id = register_template(desk, min_custody_bps=6000)
        desk.client.set_risk_tier(desk.regulator_key, merchant.address, m.RiskTier.MEDIUM)  # 5000
        agreement_id, _ = funded_plan(desk, merchant, consumer, template_id=template_id)
        assert desk.client.get_agreement(agreement_id).custody_bps == 6000
        assert desk.client.get_ledger(agreement_id).frozen == 60_000

    # ------------------------------------------------------------ refusals

    def _unfunded(self, desk, agreement_id, before, reference=None):
        assert snapshot(desk, agreement_id) == before
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.SIGNED
        if reference is not None:
            assert not desk.client.is_bank_reference_used(reference)

    def _refused(
        self, desk, merchant, agreement_id, before, held, result, reference, amount, reason
    ):
        """A credit the plan cannot accept: recorded with its reason, held in custody and owed
        back to the payer in full; the plan itself is unchanged."""
        refused = result.event("CreditRefused").args
        assert (
            bytes(refused["agreementId"]),
            bytes(refused["bankReference"]),
            refused["amount"],
            refused["reason"],
        ) == (agreement_id, reference, amount, m.label(reason))
        assert not result.named("AgreementFunded")
        assert not result.named("FundsReleased")
        deposited = result.event("CustodyDeposited").args
        assert (deposited["merchant"], bytes(deposited["agreementId"]), deposited["amount"]) == (
            merchant.address,
            agreement_id,
            amount,
        )
        [(agreement_before, ledger_before)] = before
        assert desk.client.get_agreement(agreement_id) == agreement_before
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger == replace(
            ledger_before, credits_refused=ledger_before.credits_refused + amount
        )
        assert ledger.is_conserved()
        assert (
            ledger.uninstructed_to_consumer() == ledger_before.uninstructed_to_consumer() + amount
        )
        assert desk.client.custody_held(merchant.address) == held + amount
        assert desk.client.is_bank_reference_used(reference)
        digest = bytes(result.event("ReportAccepted").args["digest"])
        assert desk.client.lookup_evidence(digest).kind == m.EvidenceKind.CREDIT_REFUSED

    def test_funding_with_wrong_amount_is_recorded_and_owed_back(self, desk, merchant, consumer):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        held = desk.client.custody_held(merchant.address)
        reference = desk.next_bank_reference()
        result = desk.fund(agreement_id, 99_999, bank_reference=reference)
        self._refused(
            desk, merchant, agreement_id, before, held, result, reference, 99_999, "amount"
        )
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.SIGNED
        # The payer gets the 99,999 back through a registered instruction ...
        desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 99_999)
        assert desk.client.custody_held(merchant.address) == held
        assert desk.client.get_ledger(agreement_id).unpaid_to_consumer() == 0
        # ... and the plan still takes the right payment.
        desk.fund(agreement_id, 100_000)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.deposited, ledger.credits_refused, ledger.paid_to_consumer) == (
            100_000,
            99_999,
            99_999,
        )
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE
        assert ledger.is_conserved()

    def test_funding_with_a_used_bank_reference_is_rejected(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        first, _ = open_plan(desk, merchant, consumer)
        reference = desk.next_bank_reference()
        desk.fund(first, 100_000, bank_reference=reference)
        second, _ = open_plan(desk, merchant, other_consumer)
        before = snapshot(desk, first, second)
        with reverts("AgreementBookDuplicateBankReference", reference):
            desk.fund(second, 100_000, bank_reference=reference)
        assert snapshot(desk, first, second) == before

    def test_funding_whose_report_carries_another_payload_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        funding = m.FundingReport(
            agreement_id, 100_000, desk.next_bank_reference(), desk.client.latest_timestamp()
        )
        other = replace(funding, bank_reference=desk.next_bank_reference())
        report, signatures = desk.client.make_report(
            m.FEED_BANK, agreement_id, other, desk.bank_signers
        )
        with reverts("AgreementBookReportMismatch", funding.abi_hash(), other.abi_hash()):
            desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
        self._unfunded(desk, agreement_id, before, funding.bank_reference)
        assert desk.client.last_sequence(m.FEED_BANK, agreement_id) == 0

    def test_funding_report_about_another_agreement_is_rejected(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        other_id, _ = open_plan(desk, merchant, other_consumer)
        before = snapshot(desk, agreement_id, other_id)
        funding = m.FundingReport(
            agreement_id, 100_000, desk.next_bank_reference(), desk.client.latest_timestamp()
        )
        report, signatures = desk.client.make_report(
            m.FEED_BANK, other_id, funding, desk.bank_signers
        )
        with reverts("AgreementBookReportMismatch", funding.abi_hash(), funding.abi_hash()):
            desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
        assert snapshot(desk, agreement_id, other_id) == before

    def test_funding_report_of_another_feed_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        funding = m.FundingReport(
            agreement_id, 100_000, desk.next_bank_reference(), desk.client.latest_timestamp()
        )
        report, signatures = desk.client.make_report(
            m.FEED_LICENCE, agreement_id, funding, desk.licence_signers
        )
        with reverts("AgreementBookReportMismatch"):
            desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
        self._unfunded(desk, agreement_id, before, funding.bank_reference)

    def test_funding_report_signed_by_too_few_bank_signers_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        reference = desk.next_bank_reference()
        with reverts("OracleHubInsufficientSignatures", 1, 2):
            desk.fund(
                agreement_id, 100_000, bank_reference=reference, signer_keys=desk.bank_signers[:1]
            )
        self._unfunded(desk, agreement_id, before, reference)
        assert desk.client.last_sequence(m.FEED_BANK, agreement_id) == 0

    def test_funding_twice_is_recorded_and_owed_back(self, desk, merchant, consumer):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        held = desk.client.custody_held(merchant.address)
        assert held == 100_000
        reference = desk.next_bank_reference()
        result = desk.fund(agreement_id, 100_000, bank_reference=reference)
        self._refused(
            desk, merchant, agreement_id, before, held, result, reference, 100_000, "state"
        )
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.deposited, ledger.frozen, ledger.upfront, ledger.credits_refused) == (
            100_000,
            30_000,
            70_000,
            100_000,
        )
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE

    def test_funding_from_a_non_oracle_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        funding = m.FundingReport(
            agreement_id, 100_000, desk.next_bank_reference(), desk.client.latest_timestamp()
        )
        report, signatures = desk.client.make_report(
            m.FEED_BANK, agreement_id, funding, desk.bank_signers
        )
        for key in (desk.operator_key, merchant.key):
            with reverts("AgreementBookUnauthorized", addr(key)):
                desk.client.confirm_funding(key, funding, report, signatures)
        self._unfunded(desk, agreement_id, before, funding.bank_reference)
        # The same report still counts when the bank feed submits it.
        desk.client.confirm_funding(desk.bank_oracle_key, funding, report, signatures)
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE

    def test_funding_of_an_unknown_agreement_is_rejected(self, desk, reverts):
        unknown = sha256("no such agreement")
        with reverts("AgreementBookUnknownAgreement", unknown):
            desk.fund(unknown, 100_000)

    def test_funding_after_merchant_was_suspended_is_recorded_and_owed_back(
        self, desk, merchant, consumer
    ):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        desk.client.suspend_merchant(desk.regulator_key, merchant.address)
        before = snapshot(desk, agreement_id)
        held = desk.client.custody_held(merchant.address)
        reference = desk.next_bank_reference()
        result = desk.fund(agreement_id, 100_000, bank_reference=reference)
        self._refused(
            desk, merchant, agreement_id, before, held, result, reference, 100_000, "merchant"
        )
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.SIGNED

    def test_funding_after_the_plan_expired_is_recorded_and_owed_back(
        self, desk, merchant, consumer, backend
    ):
        agreement_id, signed = open_plan(desk, merchant, consumer, term_days=30)
        backend.advance_time(31 * DAY)
        before = snapshot(desk, agreement_id)
        held = desk.client.custody_held(merchant.address)
        reference = desk.next_bank_reference()
        result = desk.fund(agreement_id, 100_000, bank_reference=reference)
        self._refused(
            desk, merchant, agreement_id, before, held, result, reference, 100_000, "expired"
        )
        assert desk.client.last_sequence(m.FEED_BANK, agreement_id) == 1
        # The late payment never funded the plan; it can only be expired, without a refund, and
        # the refused credit is still owed back to the payer.
        result = desk.client.expire(desk.operator_key, agreement_id)
        assert not result.named("RefundGranted")
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.EXPIRED
        assert desk.client.get_ledger(agreement_id) == v.Ledger(*[0] * 12, 100_000, 0, 0)
        desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 100_000)
        assert desk.client.custody_held(merchant.address) == held


# ================================================================ consumption


class TestConsumption:
    def test_one_record_releases_frozen_times_consumed_over_total_rounded_down(
        self, desk, merchant, consumer
    ):
        # 100,009 paid, frozen 30,003. One lesson of 14,287:
        # 30,003 × 14,287 ÷ 100,009 = 428,652,861 ÷ 100,009 = 4,286.14… → 4,286.
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=7, unit_price=14_287)
        signed = desk.sign_record(agreement_id, 1, merchant.key, consumer.key)
        result = desk.consume(signed)

        recorded = result.event("ConsumptionRecorded").args
        digest = signed.record.digest(desk.client.book_domain())
        assert bytes(recorded["agreementId"]) == agreement_id
        assert recorded["sequence"] == 1
        assert recorded["merchant"] == merchant.address
        assert (recorded["units"], recorded["amount"]) == (1, 14_287)
        assert recorded["consumedAt"] == signed.record.consumed_at
        assert bytes(recorded["receiptHash"]) == signed.record.receipt_hash
        assert bytes(recorded["recordHash"]) == digest
        # The first record ends the right to cool off: the upfront 70,006 is released with it.
        released = [(e.args["reason"], e.args["amount"]) for e in result.named("FundsReleased")]
        assert released == [(0, 70_006), (1, 4_286)]  # Upfront, Consumption

        agreement = desk.client.get_agreement(agreement_id)
        assert (agreement.units_consumed, agreement.value_consumed, agreement.next_sequence) == (
            1,
            14_287,
            2,
        )
        assert agreement.upfront_released
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.released, ledger.frozen) == (4_286, 30_003 - 4_286)
        assert desk.client.lookup_evidence(digest).kind == m.EvidenceKind.CONSUMPTION_RECORDED
        assert ledger.is_conserved()

    def test_release_is_a_running_floor_so_the_last_lesson_releases_the_remainder(
        self, desk, merchant, consumer
    ):
        # After k of 7 lessons released = floor(30,003 × 14,287k ÷ 100,009) = 4,286k for k ≤ 6;
        # the 7th lesson releases 30,003 − 25,716 = 4,287, so nothing stays frozen.
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=7, unit_price=14_287)
        batch = [desk.sign_record(agreement_id, s, merchant.key, consumer.key) for s in range(1, 8)]
        result = desk.consume_batch(batch)
        amounts = [e.args["amount"] for e in result.named("FundsReleased") if e.args["reason"] == 1]
        assert amounts == [4_286] * 6 + [4_287]
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.released, ledger.frozen) == (30_003, 0)
        assert ledger.is_conserved()

    def test_consumption_earning_less_than_a_fen_releases_nothing(self, desk, merchant, consumer):
        # 60 units × 3 fen = 180 paid, frozen 54: one unit earns 54 × 3 ÷ 180 = 0.9 → 0 fen.
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=60, unit_price=3)
        result = desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
        # Only the upfront share (180 − 54 = 126) is released with the first record.
        assert [(e.args["reason"], e.args["amount"]) for e in result.named("FundsReleased")] == [
            (0, 126)
        ]
        # The second unit brings the running total to 1.8 → 1 fen.
        result = desk.consume(desk.sign_record(agreement_id, 2, merchant.key, consumer.key))
        assert result.event("FundsReleased").args["amount"] == 1
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.released, ledger.frozen) == (1, 53)
        assert ledger.is_conserved()

    def test_batch_of_ten_records_is_recorded_in_one_transaction(self, desk, merchant, consumer):
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=20, unit_price=10_000)
        batch = [
            desk.sign_record(agreement_id, s, merchant.key, consumer.key) for s in range(1, 11)
        ]
        result = desk.consume_batch(batch)
        assert [e.args["sequence"] for e in result.named("ConsumptionRecorded")] == list(
            range(1, 11)
        )
        agreement = desk.client.get_agreement(agreement_id)
        assert (agreement.units_consumed, agreement.next_sequence) == (10, 11)
        ledger = desk.client.get_ledger(agreement_id)
        # Frozen 60,000 of 200,000; half consumed → 30,000 released.
        assert ledger.released == 30_000
        consumption = [e for e in result.named("FundsReleased") if e.args["reason"] == 1]
        assert sum(e.args["amount"] for e in consumption) == 30_000
        # The upfront share is released once, with the batch's first record.
        upfront = [e.args["amount"] for e in result.named("FundsReleased") if e.args["reason"] == 0]
        assert upfront == [140_000]
        assert ledger.is_conserved()

    def test_batch_with_one_bad_record_records_nothing(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=20, unit_price=10_000)
        batch = [desk.sign_record(agreement_id, s, merchant.key, consumer.key) for s in range(1, 6)]
        forged = desk.sign_record(agreement_id, 3, merchant.key, other_consumer.key)
        batch[2] = forged
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookInvalidSignature",
            forged.record.digest(desk.client.book_domain()),
            consumer.address.lower(),
            other_consumer.address.lower(),
        ):
            desk.consume_batch(batch)
        assert snapshot(desk, agreement_id) == before
        assert (
            desk.client.lookup_evidence(
                batch[0].record.digest(desk.client.book_domain())
            ).block_number
            == 0
        )

    def test_batch_with_mismatched_arrays_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        signed = desk.sign_record(agreement_id, 1, merchant.key, consumer.key)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookBatchMismatch", 1, 2, 1):
            desk.client.record_consumption_batch(
                desk.operator_key,
                [signed.record],
                [signed.merchant_signature] * 2,
                [signed.consumer_signature],
            )
        with reverts("AgreementBookBatchMismatch", 0, 0, 0):
            desk.client.record_consumption_batch(desk.operator_key, [], [], [])
        assert snapshot(desk, agreement_id) == before

    def test_batch_may_span_several_plans_of_one_merchant(
        self, desk, merchant, consumer, other_consumer
    ):
        first, _ = funded_plan(desk, merchant, consumer)
        second, _ = funded_plan(desk, merchant, other_consumer)
        desk.consume_batch(
            [
                desk.sign_record(first, 1, merchant.key, consumer.key),
                desk.sign_record(second, 1, merchant.key, other_consumer.key, units=2),
                desk.sign_record(first, 2, merchant.key, consumer.key),
            ]
        )
        assert desk.client.get_agreement(first).units_consumed == 2
        assert desk.client.get_agreement(second).units_consumed == 2
        assert_conserved(desk, first, second)

    def test_merchant_may_submit_its_own_records(self, desk, merchant, consumer):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.consume(
            desk.sign_record(agreement_id, 1, merchant.key, consumer.key),
            submitter_key=merchant.key,
        )
        assert desk.client.get_agreement(agreement_id).units_consumed == 1

    # ------------------------------------------------------------ refusals

    def test_consumption_with_wrong_sequence_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookSequenceMismatch", agreement_id, 1, 2):
            desk.consume(desk.sign_record(agreement_id, 2, merchant.key, consumer.key))
        assert snapshot(desk, agreement_id) == before

    def test_replayed_record_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        signed = desk.sign_record(agreement_id, 1, merchant.key, consumer.key)
        desk.consume(signed)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookSequenceMismatch", agreement_id, 2, 1):
            desk.consume(signed)
        assert snapshot(desk, agreement_id) == before

    def test_consumption_of_more_units_than_left_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=8))
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInsufficientBalance", agreement_id, 2, 3):
            desk.consume(desk.sign_record(agreement_id, 2, merchant.key, consumer.key, units=3))
        with reverts("AgreementBookInsufficientBalance", agreement_id, 2, 0):
            desk.consume(desk.sign_record(agreement_id, 2, merchant.key, consumer.key, units=0))
        assert snapshot(desk, agreement_id) == before

    def test_consumption_whose_amount_is_not_units_times_price_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        record = m.ConsumptionRecord(
            agreement_id=agreement_id,
            sequence=1,
            units=2,
            amount=10_000,
            consumed_at=desk.client.latest_timestamp(),
            receipt_hash=sha256("short-priced lesson"),
        )
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookAmountMismatch", agreement_id, 20_000, 10_000):
            desk.consume(sign_record(desk, record, merchant.key, consumer.key))
        assert snapshot(desk, agreement_id) == before

    def test_consumption_dated_in_the_future_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        future = desk.client.latest_timestamp() + 3 * 3600
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidConsumptionTime", agreement_id, future):
            desk.consume(
                desk.sign_record(agreement_id, 1, merchant.key, consumer.key, consumed_at=future)
            )
        assert snapshot(desk, agreement_id) == before

    def test_consumption_dated_before_funding_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        early = desk.client.get_agreement(agreement_id).funded_at - 1
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidConsumptionTime", agreement_id, early):
            desk.consume(
                desk.sign_record(agreement_id, 1, merchant.key, consumer.key, consumed_at=early)
            )
        assert snapshot(desk, agreement_id) == before

    def test_consumption_dated_after_expiry_is_rejected(
        self, desk, merchant, consumer, backend, reverts
    ):
        agreement_id, signed = funded_plan(desk, merchant, consumer, term_days=30)
        backend.advance_time(31 * DAY)
        late = signed.terms.expiry + 1
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidConsumptionTime", agreement_id, late):
            desk.consume(
                desk.sign_record(agreement_id, 1, merchant.key, consumer.key, consumed_at=late)
            )
        assert snapshot(desk, agreement_id) == before
        # A lesson given before expiry may still be submitted late, until the plan is expired.
        desk.consume(
            desk.sign_record(
                agreement_id, 1, merchant.key, consumer.key, consumed_at=signed.terms.expiry
            )
        )
        assert desk.client.get_agreement(agreement_id).units_consumed == 1

    def test_consumption_with_wrong_consumer_signature_is_rejected(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        signed = desk.sign_record(agreement_id, 1, merchant.key, other_consumer.key)
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookInvalidSignature",
            signed.record.digest(desk.client.book_domain()),
            consumer.address.lower(),
            other_consumer.address.lower(),
        ):
            desk.consume(signed)
        assert snapshot(desk, agreement_id) == before

    def test_record_signed_by_the_merchant_alone_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        signed = desk.sign_record(agreement_id, 1, merchant.key, merchant.key)
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookInvalidSignature",
            signed.record.digest(desk.client.book_domain()),
            consumer.address.lower(),
            merchant.address.lower(),
        ):
            desk.consume(signed)
        assert snapshot(desk, agreement_id) == before

    def test_record_signed_by_the_consumer_alone_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        signed = desk.sign_record(agreement_id, 1, consumer.key, consumer.key)
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookInvalidSignature",
            signed.record.digest(desk.client.book_domain()),
            merchant.address.lower(),
            consumer.address.lower(),
        ):
            desk.consume(signed)
        assert snapshot(desk, agreement_id) == before

    def test_consumption_on_unfunded_plan_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.SIGNED):
            desk.consume(
                desk.sign_record(agreement_id, 1, merchant.key, consumer.key, unit_price=10_000)
            )
        assert snapshot(desk, agreement_id) == before

    def test_consumption_submitted_by_a_stranger_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookUnauthorized", addr(desk.insurer_key)):
            desk.consume(
                desk.sign_record(agreement_id, 1, merchant.key, consumer.key), desk.insurer_key
            )
        assert snapshot(desk, agreement_id) == before

    def test_consumption_after_merchant_default_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookMerchantStopped", merchant.address.lower(), m.MerchantStatus.DEFAULTED
        ):
            desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
        assert snapshot(desk, agreement_id) == before

    def test_consumption_after_merchant_revocation_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.client.revoke_merchant(desk.regulator_key, merchant.address)
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookMerchantStopped", merchant.address.lower(), m.MerchantStatus.REVOKED
        ):
            desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
        assert snapshot(desk, agreement_id) == before

    def test_suspended_merchant_still_serves_existing_plans(self, desk, merchant, consumer):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.client.suspend_merchant(desk.regulator_key, merchant.address)
        assert not desk.client.can_sell(merchant.address)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger.released == 3_000  # 30,000 × 10,000 ÷ 100,000
        assert ledger.is_conserved()

    def test_using_up_every_unit_completes_the_plan_and_releases_all_custody(
        self, desk, merchant, consumer, reverts
    ):
        # 7 × 14,287 = 100,009 paid: frozen 30,003 must all be released, whatever the rounding.
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=7, unit_price=14_287)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=3))
        result = desk.consume(
            desk.sign_record(agreement_id, 2, merchant.key, consumer.key, units=4)
        )
        closed = result.event("AgreementClosed").args
        assert closed["state"] == m.AgreementState.COMPLETED
        agreement = desk.client.get_agreement(agreement_id)
        assert agreement.state == m.AgreementState.COMPLETED
        assert agreement.units_consumed == 7
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.released, ledger.frozen, ledger.refunded) == (30_003, 0, 0)
        assert ledger.is_conserved()
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.COMPLETED):
            desk.consume(
                desk.sign_record(agreement_id, 3, merchant.key, consumer.key, unit_price=14_287)
            )

    def test_completion_with_bonus_releases_all_custody(self, desk, merchant, consumer):
        # 10 × 10,000 with 15,000 bonus: paid 85,000, frozen 25,500.
        agreement_id, _ = funded_plan(desk, merchant, consumer, bonus=15_000)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=10))
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.deposited, ledger.released, ledger.frozen) == (85_000, 25_500, 0)
        assert ledger.is_conserved()


# ================================================================ cooling-off


class TestCoolingOff:
    def test_cooling_off_within_seven_days_refunds_everything_paid(
        self, desk, merchant, consumer, backend
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        backend.advance_time(6 * DAY)
        request, signature = desk.consumer_request(
            agreement_id, consumer.key, m.ConsumerAction.COOLING_OFF
        )
        result = desk.client.cancel_in_cooling_off(desk.operator_key, request, signature)

        refund = result.event("RefundGranted").args
        assert refund["reason"] == 0  # CoolingOff
        assert refund["consumer"] == consumer.address
        # Paid 100,000: frozen 30,000, upfront 70,000 still held in custody (it is released only
        # once the cooling-off period is over). The frozen 30,000 pays first and the held upfront
        # 70,000 is reclaimed: 30,000 + 70,000 = 100,000 from custody, nothing owed.
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            100_000,
            100_000,
            0,
        )
        reclaimed = result.event("EntitlementReclaimed").args
        assert (bytes(reclaimed["agreementId"]), reclaimed["merchant"], reclaimed["amount"]) == (
            agreement_id,
            merchant.address,
            70_000,
        )
        assert result.event("AgreementClosed").args["state"] == m.AgreementState.COOLED_OFF
        assert not result.named("FundsReleased")

        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.COOLED_OFF
        ledger = desk.client.get_ledger(agreement_id)
        # The reclaimed 70,000 leaves the upfront share: 70,000 − 70,000 = 0.
        assert ledger == v.Ledger(
            deposited=100_000,
            frozen=0,
            released=0,
            refunded=100_000,
            upfront=0,
            refund_due=100_000,
            merchant_owed=0,
            insured_shortfall=0,
            paid_to_merchant=0,
            paid_to_consumer=0,
            instructed_to_merchant=0,
            instructed_to_consumer=0,
            credits_refused=0,
            set_off_given=0,
            set_off_covered=0,
        )
        digest = desk.client.book.functions.requestDigest(request.as_abi()).call()
        assert (
            desk.client.lookup_evidence(bytes(digest)).kind == m.EvidenceKind.COOLING_OFF_CANCELLED
        )
        assert ledger.is_conserved()

    def test_held_upfront_cannot_be_instructed_during_cooling_off_so_custody_refunds_it_all(
        self, desk, merchant, consumer, reverts
    ):
        # Paid 100,000: frozen 30,000, upfront 70,000 held while the consumer may still cool off.
        # Nothing is due to the merchant yet, so no payment can take the upfront out of custody
        # and a cooling-off refund never leaves the merchant owing.
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.MERCHANT):
            desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 50_000)
        assert snapshot(desk, agreement_id) == before
        assert desk.client.preview_refund(agreement_id) == v.RefundPreview(100_000, 100_000, 0)

        result = desk.cool_off(agreement_id, consumer.key)

        refund = result.event("RefundGranted").args
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            100_000,
            100_000,
            0,
        )
        assert result.event("EntitlementReclaimed").args["amount"] == 70_000
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.refunded, ledger.upfront, ledger.merchant_owed) == (100_000, 0, 0)
        assert (ledger.paid_to_merchant, ledger.instructed_to_merchant) == (0, 0)
        assert ledger.is_conserved()

    def test_upfront_is_released_and_instructable_once_the_cooling_off_period_is_over(
        self, desk, merchant, consumer, backend, reverts
    ):
        # After the 7 days the consumer can no longer cool off: the first instruction to the
        # merchant releases the upfront 70,000 and claims it (clamped from the 100,000 asked),
        # the bank pays it, and a late cooling-off request is refused.
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        funded_at = desk.client.get_agreement(agreement_id).funded_at
        backend.advance_time(COOLING_OFF_DAYS * DAY + 10)

        instruction_id, result = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 100_000)

        released = result.event("FundsReleased").args
        assert (released["reason"], released["amount"]) == (m.ReleaseReason.UPFRONT, 70_000)
        assert result.event("PaymentInstructed").args["amount"] == 70_000
        assert desk.client.get_agreement(agreement_id).upfront_released
        assert desk.client.get_instruction(instruction_id) == v.Instruction(
            agreement_id, m.Payee.MERCHANT, m.InstructionState.INSTRUCTED, 70_000
        )
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 70_000, instruction_id=instruction_id)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.instructed_to_merchant, ledger.paid_to_merchant) == (70_000, 70_000)
        assert ledger.is_conserved()
        with reverts(
            "AgreementBookCoolingOffOver", agreement_id, funded_at + COOLING_OFF_DAYS * DAY
        ):
            desk.cool_off(agreement_id, consumer.key)

    def test_cooling_off_after_seven_days_is_rejected(
        self, desk, merchant, consumer, backend, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        funded_at = desk.client.get_agreement(agreement_id).funded_at
        backend.advance_time(COOLING_OFF_DAYS * DAY + 10)
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookCoolingOffOver", agreement_id, funded_at + COOLING_OFF_DAYS * DAY
        ):
            desk.cool_off(agreement_id, consumer.key)
        assert snapshot(desk, agreement_id) == before

    def test_cooling_off_after_a_consumption_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookAlreadyConsumed", agreement_id, 1):
            desk.cool_off(agreement_id, consumer.key)
        assert snapshot(desk, agreement_id) == before

    def test_cooling_off_request_past_its_deadline_is_rejected(
        self, desk, merchant, consumer, backend, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        request, signature = desk.consumer_request(
            agreement_id, consumer.key, m.ConsumerAction.COOLING_OFF
        )
        backend.advance_time(2 * 3600)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookRequestExpired") as caught:
            desk.client.cancel_in_cooling_off(desk.operator_key, request, signature)
        assert caught.value.args_[0] == request.deadline
        assert caught.value.args_[1] > request.deadline
        assert snapshot(desk, agreement_id) == before

    def test_cooling_off_request_signed_by_someone_else_is_rejected(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        request, signature = desk.consumer_request(
            agreement_id, other_consumer.key, m.ConsumerAction.COOLING_OFF
        )
        digest = bytes(desk.client.book.functions.requestDigest(request.as_abi()).call())
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookInvalidSignature",
            digest,
            consumer.address.lower(),
            other_consumer.address.lower(),
        ):
            desk.client.cancel_in_cooling_off(desk.operator_key, request, signature)
        assert snapshot(desk, agreement_id) == before

    def test_cooling_off_submitted_by_a_stranger_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        request, signature = desk.consumer_request(
            agreement_id, consumer.key, m.ConsumerAction.COOLING_OFF
        )
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookUnauthorized", addr(desk.insurer_key)):
            desk.client.cancel_in_cooling_off(desk.insurer_key, request, signature)
        assert snapshot(desk, agreement_id) == before

    def test_cooling_off_of_an_unfunded_plan_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.SIGNED):
            desk.cool_off(agreement_id, consumer.key)
        assert snapshot(desk, agreement_id) == before

    def test_cooling_off_twice_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.cool_off(agreement_id, consumer.key)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.COOLED_OFF):
            desk.cool_off(agreement_id, consumer.key)
        assert snapshot(desk, agreement_id) == before
        assert_conserved(desk, agreement_id)


# ================================================================ termination


class TestTermination:
    # The worked example on a 30 % bonus-conversion template: paid 200,000, bonus 100,000,
    # total 300,000; 434 units of 100 = 43,400 consumed.
    # Refund: 200,000 × (300,000 − 43,400) ÷ 300,000 = 171,066.67 → 171,067 fen, rounded up to
    # the yuan: 171,100 fen = 1,711 RMB.
    # Custody: frozen 30 % of 200,000 = 60,000, upfront 140,000; released 60,000 × 43,400 ÷
    # 300,000 = 8,680, left frozen 51,320. The merchant is entitled to 140,000 + 8,680 = 148,680.
    # The refund takes the frozen 51,320 first, then up to 171,100 − 51,320 = 119,780 of the
    # entitlement the bank has not paid out yet; only the rest is owed by the merchant.

    def test_worked_example_refunds_1711_rmb_from_custody_when_nothing_was_paid_out(
        self, desk, merchant, consumer
    ):
        # Nothing paid out: unpaid 148,680 ≥ 119,780, so all 119,780 is reclaimed, from released
        # 8,680 first and then upfront 119,780 − 8,680 = 111,100; shortfall 0.
        template_id = register_template(desk, refund_rule=m.RefundRule.BONUS_CONVERSION)
        agreement_id = worked_example(desk, merchant, consumer, template_id)
        preview = desk.client.preview_refund(agreement_id)
        assert preview == v.RefundPreview(171_100, 51_320 + 119_780, 0)

        result = desk.terminate(agreement_id, consumer.key)
        refund = result.event("RefundGranted").args
        assert refund["reason"] == 1  # Termination
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            171_100,
            171_100,
            0,
        )
        reclaimed = result.event("EntitlementReclaimed").args
        assert (bytes(reclaimed["agreementId"]), reclaimed["merchant"], reclaimed["amount"]) == (
            agreement_id,
            merchant.address,
            119_780,
        )
        assert not result.named("FundsReleased")  # custody is exhausted: nothing left over
        assert result.event("AgreementClosed").args["state"] == m.AgreementState.TERMINATED

        ledger = desk.client.get_ledger(agreement_id)
        assert ledger == v.Ledger(
            deposited=200_000,
            frozen=0,
            released=0,  # 8,680 − 8,680
            refunded=171_100,  # 51,320 + 119,780
            upfront=28_900,  # 140,000 − 111,100
            refund_due=171_100,
            merchant_owed=0,
            insured_shortfall=0,
            paid_to_merchant=0,
            paid_to_consumer=0,
            instructed_to_merchant=0,
            instructed_to_consumer=0,
            credits_refused=0,
            set_off_given=0,
            set_off_covered=0,
        )
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.TERMINATED
        assert ledger.is_conserved()  # 0 + 0 + 171,100 + 28,900 = 200,000

    def test_worked_example_after_a_partial_payout_reclaims_the_unpaid_rest(
        self, desk, merchant, consumer, reverts
    ):
        # The bank paid the merchant 100,000 of 148,680: unpaid 48,680 is reclaimed (released
        # 8,680, then upfront 40,000); shortfall 171,100 − 51,320 − 48,680 = 71,100.
        template_id = register_template(desk, refund_rule=m.RefundRule.BONUS_CONVERSION)
        agreement_id = worked_example(desk, merchant, consumer, template_id)
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 100_000)
        assert desk.client.preview_refund(agreement_id) == v.RefundPreview(
            171_100, 51_320 + 48_680, 71_100
        )

        result = desk.terminate(agreement_id, consumer.key)

        refund = result.event("RefundGranted").args
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            171_100,
            100_000,
            71_100,
        )
        assert result.event("EntitlementReclaimed").args["amount"] == 48_680
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger == v.Ledger(
            deposited=200_000,
            frozen=0,
            released=0,  # 8,680 − 8,680
            refunded=100_000,  # 51,320 + 48,680
            upfront=100_000,  # 140,000 − 40,000
            refund_due=171_100,
            merchant_owed=71_100,
            insured_shortfall=0,
            paid_to_merchant=100_000,
            paid_to_consumer=0,
            instructed_to_merchant=100_000,
            instructed_to_consumer=0,
            credits_refused=0,
            set_off_given=0,
            set_off_covered=0,
        )
        assert ledger.is_conserved()
        # The merchant was paid exactly its reduced entitlement: 100,000 + 0 − 100,000 = 0 left.
        with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.MERCHANT):
            desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 1)

    def test_worked_example_after_a_full_payout_leaves_the_shortfall_to_the_merchant(
        self, desk, merchant, consumer
    ):
        # The bank paid out all 148,680: nothing to reclaim; 51,320 from custody and
        # 171,100 − 51,320 − 0 = 119,780 owed by the merchant.
        template_id = register_template(desk, refund_rule=m.RefundRule.BONUS_CONVERSION)
        agreement_id = worked_example(desk, merchant, consumer, template_id)
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 148_680)
        assert desk.client.preview_refund(agreement_id) == v.RefundPreview(171_100, 51_320, 119_780)

        result = desk.terminate(agreement_id, consumer.key)

        refund = result.event("RefundGranted").args
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            171_100,
            51_320,
            119_780,
        )
        assert not result.named("EntitlementReclaimed")
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger == v.Ledger(
            deposited=200_000,
            frozen=0,
            released=8_680,
            refunded=51_320,
            upfront=140_000,
            refund_due=171_100,
            merchant_owed=119_780,
            insured_shortfall=0,
            paid_to_merchant=148_680,
            paid_to_consumer=0,
            instructed_to_merchant=148_680,
            instructed_to_consumer=0,
            credits_refused=0,
            set_off_given=0,
            set_off_covered=0,
        )
        assert ledger.is_conserved()

    def test_merchant_payout_after_a_reclaim_is_limited_to_the_reduced_entitlement(
        self, desk, merchant, consumer, reverts
    ):
        # Nothing paid out before the termination reclaimed 119,780 of 148,680: the bank may
        # pay the merchant 148,680 − 119,780 = 28,900 and the consumer 171,100, no more. An
        # instruction for 28,901 claims only the 28,900 due, and the bank cannot pay it 28,901.
        template_id = register_template(desk, refund_rule=m.RefundRule.BONUS_CONVERSION)
        agreement_id = worked_example(desk, merchant, consumer, template_id)
        desk.terminate(agreement_id, consumer.key)
        instruction_id, result = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 28_901)
        assert result.event("PaymentInstructed").args["amount"] == 28_900
        with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.MERCHANT):
            desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 1)
        before = snapshot(desk, agreement_id)
        with reverts(
            "CustodyDeskInstructionMismatch",
            instruction_id,
            agreement_id,
            m.Payee.MERCHANT,
            28_900,
        ):
            desk.confirm_payout(
                agreement_id, m.Payee.MERCHANT, 28_901, instruction_id=instruction_id
            )
        assert snapshot(desk, agreement_id) == before

        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 28_900, instruction_id=instruction_id)
        desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 171_100)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.paid_to_merchant, ledger.paid_to_consumer) == (28_900, 171_100)
        # What left custody equals what was deposited: 28,900 + 171,100 = 200,000.
        assert ledger.paid_to_merchant + ledger.paid_to_consumer == ledger.deposited
        with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.MERCHANT):
            desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 1)
        assert ledger.is_conserved()

    @pytest.mark.parametrize(
        ("paid_out", "shortfall"),
        [(0, 0), (28_500, 0), (40_000, 11_500), (78_571, 50_071)],
        ids=["none", "exactly-enough-unpaid", "part", "all"],
    )
    def test_preview_equals_what_terminate_grants(
        self, desk, merchant, consumer, paid_out, shortfall
    ):
        # 7 × 14,287 = 100,009 face value, bonus 9: paid 100,000, frozen 30,000, upfront 70,000.
        # Two lessons (28,574) release 30,000 × 28,574 ÷ 100,009 = 8,571.4 → 8,571: frozen
        # 21,429, merchant entitled to 70,000 + 8,571 = 78,571.
        # Refund 100,000 × 71,435 ÷ 100,009 = 71,428.6 → 71,500 (to the yuan); beyond the frozen
        # 21,429 that leaves 50,071, reclaimed up to 78,571 − paid_out, the rest a shortfall.
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=7, unit_price=14_287, bonus=9)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2))
        if paid_out:
            desk.confirm_payout(agreement_id, m.Payee.MERCHANT, paid_out)
        preview = desk.client.preview_refund(agreement_id)
        assert preview == v.RefundPreview(71_500, 71_500 - shortfall, shortfall)
        refund = desk.terminate(agreement_id, consumer.key).event("RefundGranted").args
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            preview.refund,
            preview.from_custody,
            preview.shortfall,
        )
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger.merchant_owed == shortfall
        assert ledger.upfront + ledger.released >= ledger.paid_to_merchant == paid_out
        assert ledger.is_conserved()

    def test_custody_left_after_the_refund_is_released_to_the_merchant(
        self, desk, merchant, consumer
    ):
        # Face value, 100 % custody, paid 200,000 + bonus 100,000, 43,400 consumed.
        # Released 200,000 × 43,400 ÷ 300,000 = 28,933.33 → 28,933; frozen left 171,067.
        # Refund by face value 200,000 − 43,400 = 156,600, all from custody;
        # 171,067 − 156,600 = 14,467 is left over and released to the merchant.
        template_id = register_template(
            desk, refund_rule=m.RefundRule.FACE_VALUE, min_custody_bps=10_000, rounding=1
        )
        agreement_id = worked_example(desk, merchant, consumer, template_id)
        result = desk.terminate(agreement_id, consumer.key)
        refund = result.event("RefundGranted").args
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            156_600,
            156_600,
            0,
        )
        settlement = result.event("FundsReleased").args
        assert (settlement["reason"], settlement["amount"]) == (2, 14_467)  # Settlement
        assert not result.named("EntitlementReclaimed")  # the frozen share covered it all
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.frozen, ledger.released, ledger.refunded, ledger.merchant_owed) == (
            0,
            28_933 + 14_467,
            156_600,
            0,
        )
        assert ledger.is_conserved()

    def test_face_value_template_refunds_paid_minus_consumed(self, desk, merchant, consumer):
        # Paid 200,000 − consumed 43,400 = 156,600 (already a whole yuan).
        # Custody 30 %: frozen 60,000, released 8,680, left 51,320; nothing paid out, so the
        # other 156,600 − 51,320 = 105,280 is reclaimed (released 8,680, upfront 96,600).
        template_id = register_template(desk, refund_rule=m.RefundRule.FACE_VALUE)
        agreement_id = worked_example(desk, merchant, consumer, template_id)
        assert desk.client.preview_refund(agreement_id) == v.RefundPreview(156_600, 156_600, 0)
        result = desk.terminate(agreement_id, consumer.key)
        assert result.event("EntitlementReclaimed").args["amount"] == 105_280
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.refund_due, ledger.refunded, ledger.merchant_owed) == (156_600, 156_600, 0)
        # The merchant keeps 140,000 − 96,600 = 43,400: exactly the value consumed.
        assert (ledger.upfront, ledger.released) == (43_400, 0)
        assert ledger.is_conserved()

    def test_face_value_refund_is_zero_once_paid_value_is_consumed(self, desk, merchant, consumer):
        # Paid 200,000; 2,500 units of 100 = 250,000 consumed ≥ paid → face value refund 0.
        # Released 60,000 × 250,000 ÷ 300,000 = 50,000; the 10,000 left frozen goes to the merchant.
        template_id = register_template(desk, refund_rule=m.RefundRule.FACE_VALUE)
        agreement_id, _ = funded_plan(
            desk,
            merchant,
            consumer,
            template_id=template_id,
            units=3000,
            unit_price=100,
            bonus=100_000,
        )
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2500))
        assert desk.client.preview_refund(agreement_id) == v.RefundPreview(0, 0, 0)
        result = desk.terminate(agreement_id, consumer.key)
        assert result.event("FundsReleased").args["amount"] == 10_000
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.refunded, ledger.released, ledger.frozen) == (0, 60_000, 0)
        assert ledger.is_conserved()

    def test_unspecified_rule_gives_the_consumer_the_better_reading(self, desk, merchant, consumer):
        # Conversion 171,066.67 → 171,067; face value 156,600; the consumer's better reading is
        # 171,067, to the fen (rounding 1). The bank paid the merchant all 148,680, so custody
        # gives the frozen 51,320 and 171,067 − 51,320 = 119,747 is owed by the merchant.
        template_id = register_template(desk, refund_rule=m.RefundRule.UNSPECIFIED, rounding=1)
        agreement_id = worked_example(desk, merchant, consumer, template_id)
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 148_680)
        assert desk.client.preview_refund(agreement_id) == v.RefundPreview(171_067, 51_320, 119_747)
        desk.terminate(agreement_id, consumer.key)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.refund_due, ledger.merchant_owed) == (171_067, 119_747)
        assert ledger.is_conserved()

    def test_refund_rounding_never_exceeds_what_was_paid(self, desk, merchant, consumer):
        # Paid 100,009 with nothing consumed: refund 100,009 would round up to 100,100; capped.
        agreement_id, _ = funded_plan(desk, merchant, consumer, units=7, unit_price=14_287)
        assert desk.client.preview_refund(agreement_id).refund == 100_009
        desk.terminate(agreement_id, consumer.key)
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger.refund_due == 100_009
        assert ledger.is_conserved()

    # ------------------------------------------------------------ refusals

    def test_termination_request_signed_by_someone_else_is_rejected(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        request, signature = desk.consumer_request(
            agreement_id, other_consumer.key, m.ConsumerAction.TERMINATE
        )
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidSignature") as caught:
            desk.client.terminate(desk.operator_key, request, signature)
        assert caught.value.args_[1:] == (consumer.address.lower(), other_consumer.address.lower())
        assert snapshot(desk, agreement_id) == before

    def test_cooling_off_request_cannot_be_used_to_terminate(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        request, signature = desk.consumer_request(
            agreement_id, consumer.key, m.ConsumerAction.COOLING_OFF
        )
        before = snapshot(desk, agreement_id)
        with reverts(
            "AgreementBookWrongRequestAction",
            m.ConsumerAction.TERMINATE,
            m.ConsumerAction.COOLING_OFF,
        ):
            desk.client.terminate(desk.operator_key, request, signature)
        assert snapshot(desk, agreement_id) == before

    def test_termination_request_past_its_deadline_is_rejected(
        self, desk, merchant, consumer, backend, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        request, signature = desk.consumer_request(
            agreement_id, consumer.key, m.ConsumerAction.TERMINATE
        )
        backend.advance_time(2 * 3600)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookRequestExpired") as caught:
            desk.client.terminate(desk.operator_key, request, signature)
        assert caught.value.args_[0] == request.deadline
        assert snapshot(desk, agreement_id) == before

    def test_termination_of_unfunded_plan_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.SIGNED):
            desk.terminate(agreement_id, consumer.key)
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.SIGNED):
            desk.client.preview_refund(agreement_id)

    def test_termination_submitted_by_a_stranger_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        request, signature = desk.consumer_request(
            agreement_id, consumer.key, m.ConsumerAction.TERMINATE
        )
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookUnauthorized", addr(desk.insurer_key)):
            desk.client.terminate(desk.insurer_key, request, signature)
        assert snapshot(desk, agreement_id) == before

    def test_termination_twice_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.terminate(agreement_id, consumer.key)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.TERMINATED):
            desk.terminate(agreement_id, consumer.key)
        assert snapshot(desk, agreement_id) == before


# ================================================================ expiry


class TestExpiry:
    def test_expiring_an_unfunded_plan_closes_it_without_money(
        self, desk, merchant, consumer, backend
    ):
        agreement_id, signed = open_plan(desk, merchant, consumer, term_days=30)
        backend.advance_time(31 * DAY)
        result = desk.client.expire(desk.insurer_key, agreement_id)  # any member may expire
        assert result.event("AgreementClosed").args["state"] == m.AgreementState.EXPIRED
        assert not result.named("RefundGranted")
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.EXPIRED
        assert desk.client.get_ledger(agreement_id) == v.Ledger(*[0] * 15)

    def test_expiring_a_funded_plan_refunds_unused_value_by_the_formula(
        self, desk, merchant, consumer, backend
    ):
        # Paid 100,000 (10 × 10,000), 3 lessons used: bonus conversion with no bonus refunds
        # 100,000 × 70,000 ÷ 100,000 = 70,000. Frozen 30,000 − released 9,000 = 21,000 from
        # the frozen share; nothing was paid out, so the other 49,000 is reclaimed from the
        # merchant's 70,000 + 9,000 = 79,000 (released 9,000, then upfront 40,000).
        agreement_id, _ = funded_plan(desk, merchant, consumer, term_days=30)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=3))
        backend.advance_time(31 * DAY)
        result = desk.client.expire(desk.operator_key, agreement_id)
        refund = result.event("RefundGranted").args
        assert refund["reason"] == 2  # Expiry
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            70_000,
            21_000 + 49_000,
            0,
        )
        assert result.event("EntitlementReclaimed").args["amount"] == 49_000
        ledger = desk.client.get_ledger(agreement_id)
        assert (
            ledger.refunded,
            ledger.released,
            ledger.upfront,
            ledger.merchant_owed,
            ledger.frozen,
        ) == (
            70_000,
            0,  # 9,000 − 9,000
            30_000,  # 70,000 − 40,000
            0,
            0,
        )
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.EXPIRED
        assert ledger.is_conserved()

    def test_expiring_after_a_payout_reclaims_only_the_unpaid_entitlement(
        self, desk, merchant, consumer, backend
    ):
        # As above, but the bank had paid the merchant 75,000 of its 79,000: 4,000 is
        # reclaimed and 70,000 − 21,000 − 4,000 = 45,000 is owed by the merchant.
        agreement_id, _ = funded_plan(desk, merchant, consumer, term_days=30)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=3))
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 75_000)
        backend.advance_time(31 * DAY)
        result = desk.client.expire(desk.operator_key, agreement_id)
        refund = result.event("RefundGranted").args
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            70_000,
            25_000,
            45_000,
        )
        assert result.event("EntitlementReclaimed").args["amount"] == 4_000
        ledger = desk.client.get_ledger(agreement_id)
        # Released 9,000 − 4,000 = 5,000; upfront untouched: 70,000 + 5,000 = 75,000 paid out.
        assert (ledger.refunded, ledger.released, ledger.upfront, ledger.merchant_owed) == (
            25_000,
            5_000,
            70_000,
            45_000,
        )
        assert ledger.is_conserved()

    def test_expiring_before_expiry_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id, signed = funded_plan(desk, merchant, consumer, term_days=30)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookNotExpired", agreement_id, signed.terms.expiry):
            desk.client.expire(desk.operator_key, agreement_id)
        assert snapshot(desk, agreement_id) == before

    def test_expiring_by_a_non_member_is_rejected(self, desk, merchant, consumer, backend, reverts):
        agreement_id, _ = funded_plan(desk, merchant, consumer, term_days=30)
        backend.advance_time(31 * DAY)
        stranger = Account.create()
        fund_accounts(backend.w3, [stranger.address])
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookUnauthorized", stranger.address.lower()):
            desk.client.expire(stranger.key.hex(), agreement_id)
        assert snapshot(desk, agreement_id) == before

    def test_consumption_after_expire_is_rejected(self, desk, merchant, consumer, backend, reverts):
        agreement_id, signed = funded_plan(desk, merchant, consumer, term_days=30)
        backend.advance_time(31 * DAY)
        desk.client.expire(desk.operator_key, agreement_id)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.EXPIRED):
            desk.consume(
                desk.sign_record(
                    agreement_id, 1, merchant.key, consumer.key, consumed_at=signed.terms.expiry
                )
            )
        with reverts("AgreementBookInvalidState", agreement_id, m.AgreementState.EXPIRED):
            desk.client.expire(desk.operator_key, agreement_id)
        assert snapshot(desk, agreement_id) == before
        assert_conserved(desk, agreement_id)


# ================================================================ default


class TestDefault:
    def _plan_with_shortfall(self, desk, merchant, consumer, paid_out=76_000):
        # Paid 100,000, frozen 30,000, upfront 70,000; 2 lessons used → released 6,000, frozen
        # 24,000. The bank paid the merchant all of its 70,000 + 6,000 = 76,000, so nothing is
        # left to reclaim: refund 100,000 × 80,000 ÷ 100,000 = 80,000 takes 24,000 from custody
        # and leaves a shortfall of 56,000.
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2))
        if paid_out:
            desk.confirm_payout(agreement_id, m.Payee.MERCHANT, paid_out)
        return agreement_id

    def _distribute(self, desk, merchant, agreement_ids, key=None):
        """Second step of a default: the set-off pool, then insurance, for these plans."""
        return desk.client.distribute_set_off(
            key or desk.regulator_key, merchant.address, list(agreement_ids)
        )

    def test_default_refunds_from_custody_then_distribution_claims_shortfall_from_insurance(
        self, desk, merchant, consumer
    ):
        policy_id = desk.write_policy(merchant.address, 100_000)
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        result = desk.client.settle_default(desk.regulator_key, [agreement_id])

        refund = result.event("RefundGranted").args
        assert refund["reason"] == 3  # Default
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            80_000,
            24_000,
            56_000,
        )
        assert result.event("AgreementClosed").args["state"] == m.AgreementState.DEFAULTED
        # Step one settles from the plan's own custody only: the shortfall is provisionally the
        # merchant's, no claim yet, and nothing was left to set aside (all 76,000 was paid out).
        assert not result.named("ClaimOpened")
        assert not result.named("SetOffSwept")
        assert desk.client.claim_of_agreement(agreement_id) == 0
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.refunded, ledger.insured_shortfall, ledger.merchant_owed) == (
            24_000,
            0,
            56_000,
        )
        assert desk.client.set_off_of(merchant.address) == (0, 1, 0)

        # Step two: the pool is empty, so insurance covers the whole 56,000.
        result = self._distribute(desk, merchant, [agreement_id])
        assert not result.named("SetOffApplied")
        claim_id = desk.client.claim_of_agreement(agreement_id)
        opened = result.event("ClaimOpened").args
        assert (
            opened["claimId"],
            bytes(opened["agreementId"]),
            opened["merchant"],
            opened["policyId"],
            opened["consumer"],
            opened["loss"],
            opened["covered"],
        ) == (claim_id, agreement_id, merchant.address, policy_id, consumer.address, 56_000, 56_000)
        covered = result.event("ClaimCovered").args
        assert (covered["claimId"], covered["policyId"], covered["amount"]) == (
            claim_id,
            policy_id,
            56_000,
        )
        assert desk.client.set_off_of(merchant.address) == (0, 1, 1)

        claim = desk.client.get_claim(claim_id)
        assert claim.policy_id == policy_id
        assert claim.status == m.ClaimStatus.OPEN
        assert (claim.agreement_id, claim.merchant, claim.consumer) == (
            agreement_id,
            merchant.address,
            consumer.address,
        )
        assert (claim.loss, claim.covered, claim.paid) == (56_000, 56_000, 0)
        assert desk.client.get_policy(policy_id).reserved == 56_000

        ledger = desk.client.get_ledger(agreement_id)
        assert (
            ledger.refund_due,
            ledger.refunded,
            ledger.set_off_covered,
            ledger.insured_shortfall,
            ledger.merchant_owed,
        ) == (
            80_000,
            24_000,
            0,
            56_000,
            0,
        )
        # refundDue = refunded + setOffCovered + insuredShortfall + merchantOwed.
        assert ledger.refund_due == (
            ledger.refunded
            + ledger.set_off_covered
            + ledger.insured_shortfall
            + ledger.merchant_owed
        )
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.DEFAULTED
        assert ledger.is_conserved()

    def test_claims_are_covered_up_to_the_remaining_cover(
        self, desk, merchant, consumer, other_consumer
    ):
        # Cover 60,000; two plans each lose 56,000: the first is covered in full,
        # the second gets the remaining 4,000 and the other 52,000 is owed by the merchant.
        desk.write_policy(merchant.address, 60_000)
        first = self._plan_with_shortfall(desk, merchant, consumer)
        second = self._plan_with_shortfall(desk, merchant, other_consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        desk.client.settle_default(desk.operator_key, [first, second])
        self._distribute(desk, merchant, [first, second], key=desk.operator_key)

        claims = [desk.client.get_claim(desk.client.claim_of_agreement(i)) for i in (first, second)]
        assert [(c.loss, c.covered, c.status) for c in claims] == [
            (56_000, 56_000, m.ClaimStatus.OPEN),
            (56_000, 4_000, m.ClaimStatus.OPEN),
        ]
        ledger = desk.client.get_ledger(second)
        assert (ledger.insured_shortfall, ledger.merchant_owed) == (4_000, 52_000)
        assert_conserved(desk, first, second)

    def test_shortfall_beyond_cover_is_owed_by_the_merchant(self, desk, merchant, consumer):
        desk.write_policy(merchant.address, 20_000)
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        desk.client.settle_default(desk.regulator_key, [agreement_id])
        self._distribute(desk, merchant, [agreement_id])
        claim = desk.client.get_claim(desk.client.claim_of_agreement(agreement_id))
        assert (claim.loss, claim.covered) == (56_000, 20_000)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.insured_shortfall, ledger.merchant_owed) == (20_000, 36_000)
        assert ledger.is_conserved()

    def test_default_without_policy_opens_an_uncovered_claim(self, desk, merchant, consumer):
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        desk.client.settle_default(desk.regulator_key, [agreement_id])
        self._distribute(desk, merchant, [agreement_id])
        claim = desk.client.get_claim(desk.client.claim_of_agreement(agreement_id))
        assert claim.status == m.ClaimStatus.UNCOVERED
        assert (claim.policy_id, claim.loss, claim.covered) == (0, 56_000, 0)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.insured_shortfall, ledger.merchant_owed, ledger.refunded) == (
            0,
            56_000,
            24_000,
        )
        assert ledger.is_conserved()

    def test_default_with_nothing_paid_out_refunds_all_from_custody_and_claims_nothing(
        self, desk, merchant, consumer
    ):
        # Refund 80,000: frozen 24,000 + 56,000 of the merchant's unpaid 76,000 reclaimed
        # (released 6,000, then upfront 50,000); no shortfall, so no insurance claim.
        policy_id = desk.write_policy(merchant.address, 100_000)
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer, paid_out=0)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        result = desk.client.settle_default(desk.regulator_key, [agreement_id])

        refund = result.event("RefundGranted").args
        assert (refund["reason"], refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            3,  # Default
            80_000,
            80_000,
            0,
        )
        assert result.event("EntitlementReclaimed").args["amount"] == 56_000
        # The 20,000 of upfront the refund left the merchant is set aside for its consumers.
        assert result.event("SetOffSwept").args["amount"] == 20_000
        result = self._distribute(desk, merchant, [agreement_id])
        assert not result.named("SetOffApplied")
        assert not result.named("ClaimOpened")
        assert desk.client.claim_of_agreement(agreement_id) == 0
        assert desk.client.get_policy(policy_id).reserved == 0
        # Nobody is short, so the pool keeps it (the merchant comes last).
        assert desk.client.set_off_of(merchant.address) == (20_000, 1, 1)
        ledger = desk.client.get_ledger(agreement_id)
        assert (
            ledger.refunded,
            ledger.released,
            ledger.upfront,
            ledger.insured_shortfall,
            ledger.merchant_owed,
            ledger.set_off_given,
            ledger.set_off_covered,
        ) == (
            80_000,  # 24,000 + 56,000
            0,  # 6,000 − 6,000
            20_000,  # 70,000 − 50,000
            0,
            0,
            20_000,
            0,
        )
        assert ledger.is_conserved()

    def test_default_after_a_partial_payout_claims_only_what_custody_cannot_cover(
        self, desk, merchant, consumer
    ):
        # The bank paid the merchant 50,000 of 76,000: 26,000 is reclaimed and the claim is for
        # 80,000 − 24,000 − 26,000 = 30,000.
        policy_id = desk.write_policy(merchant.address, 100_000)
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer, paid_out=50_000)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        result = desk.client.settle_default(desk.regulator_key, [agreement_id])

        refund = result.event("RefundGranted").args
        assert (refund["refund"], refund["fromCustody"], refund["shortfall"]) == (
            80_000,
            24_000 + 26_000,
            30_000,
        )
        assert result.event("EntitlementReclaimed").args["amount"] == 26_000
        # Everything the merchant keeps (50,000) was paid out: nothing to set aside.
        assert not result.named("SetOffSwept")
        result = self._distribute(desk, merchant, [agreement_id])
        assert result.event("ClaimOpened").args["loss"] == 30_000
        claim = desk.client.get_claim(desk.client.claim_of_agreement(agreement_id))
        assert (claim.policy_id, claim.loss, claim.covered) == (policy_id, 30_000, 30_000)
        ledger = desk.client.get_ledger(agreement_id)
        # Released 6,000 − 6,000 = 0, upfront 70,000 − 20,000 = 50,000 = what was paid out.
        assert (ledger.released, ledger.upfront, ledger.refunded) == (0, 50_000, 50_000)
        assert (ledger.insured_shortfall, ledger.merchant_owed) == (30_000, 0)
        assert ledger.is_conserved()

    def test_consumer_exits_are_refused_once_the_merchant_is_in_default(
        self, desk, merchant, consumer, other_consumer, backend, reverts
    ):
        # Cooling-off, termination and expiry would close the plan without the insurance
        # claim a default opens; after a default only settleDefault may close it.
        desk.write_policy(merchant.address, 100_000)
        used = self._plan_with_shortfall(desk, merchant, consumer)
        unused, _ = funded_plan(desk, merchant, other_consumer, term_days=30)
        # The unused plan's upfront can be paid only once its cooling-off period is over.
        backend.advance_time(COOLING_OFF_DAYS * DAY + 10)
        desk.confirm_payout(unused, m.Payee.MERCHANT, 70_000)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        before = snapshot(desk, used, unused)
        stopped = (
            "AgreementBookMerchantStopped",
            merchant.address.lower(),
            m.MerchantStatus.DEFAULTED,
        )

        with reverts(*stopped):
            desk.cool_off(unused, other_consumer.key)
        with reverts(*stopped):
            desk.terminate(used, consumer.key)
        backend.advance_time(24 * DAY)  # 31 days after funding: past the 30-day term
        with reverts(*stopped):
            desk.client.expire(desk.operator_key, unused)
        assert snapshot(desk, used, unused) == before

        # settleDefault and distributeSetOff still close both, claiming what custody cannot cover:
        # used 80,000 − 24,000 = 56,000; unused 100,000 − 30,000 = 70,000 (cover 100,000 left
        # 44,000 for it, the other 26,000 is owed by the merchant).
        desk.client.settle_default(desk.regulator_key, [used, unused])
        self._distribute(desk, merchant, [used, unused])
        claims = [desk.client.get_claim(desk.client.claim_of_agreement(i)) for i in (used, unused)]
        assert [(c.loss, c.covered) for c in claims] == [(56_000, 56_000), (70_000, 44_000)]
        for agreement_id in (used, unused):
            assert desk.client.get_agreement(agreement_id).state == m.AgreementState.DEFAULTED
        assert_conserved(desk, used, unused)

    def test_default_settlement_closes_unfunded_plans_without_money(self, desk, merchant, consumer):
        agreement_id, _ = open_plan(desk, merchant, consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        result = desk.client.settle_default(desk.regulator_key, [agreement_id])
        assert not result.named("SetOffSwept")
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.DEFAULTED
        assert desk.client.set_off_of(merchant.address) == (0, 1, 0)
        result = self._distribute(desk, merchant, [agreement_id])
        assert result.events == ()
        assert desk.client.get_ledger(agreement_id) == v.Ledger(*[0] * 15)
        assert desk.client.claim_of_agreement(agreement_id) == 0
        assert desk.client.set_off_of(merchant.address) == (0, 1, 1)

    def test_distribution_waits_until_every_plan_of_the_merchant_is_settled(
        self, desk, merchant, consumer, other_consumer, reverts
    ):
        desk.write_policy(merchant.address, 100_000)
        short = self._plan_with_shortfall(desk, merchant, consumer)
        unfunded, _ = open_plan(desk, merchant, other_consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        desk.client.settle_default(desk.regulator_key, [short])
        before = snapshot(desk, short, unfunded)
        with reverts("AgreementBookSetOffNotReady", merchant.address.lower(), 1, 2):
            self._distribute(desk, merchant, [short])
        assert snapshot(desk, short, unfunded) == before
        assert desk.client.claim_of_agreement(short) == 0
        # The desk settles the last plan and then distributes every plan of the merchant.
        results = desk.settle_default(merchant.address, [unfunded])
        assert len(results) == 2
        assert results[1].event("ClaimOpened").args["loss"] == 56_000
        assert desk.client.set_off_of(merchant.address) == (0, 2, 2)
        assert desk.client.get_ledger(short).insured_shortfall == 56_000

    def test_settling_plans_of_a_merchant_not_in_default_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer)
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookMerchantNotDefaulted", merchant.address.lower()):
            desk.client.settle_default(desk.regulator_key, [agreement_id])
        assert snapshot(desk, agreement_id) == before
        assert desk.client.claim_of_agreement(agreement_id) == 0

    def test_settling_by_a_non_member_is_rejected(self, desk, merchant, consumer, backend, reverts):
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        stranger = Account.create()
        fund_accounts(backend.w3, [stranger.address])
        before = snapshot(desk, agreement_id)
        with reverts("AgreementBookUnauthorized", stranger.address.lower()):
            desk.client.settle_default(stranger.key.hex(), [agreement_id])
        assert snapshot(desk, agreement_id) == before

    def test_settling_twice_changes_nothing(self, desk, merchant, consumer, reverts):
        desk.write_policy(merchant.address, 100_000)
        agreement_id = self._plan_with_shortfall(desk, merchant, consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        desk.client.settle_default(desk.regulator_key, [agreement_id])
        before = snapshot(desk, agreement_id)
        result = desk.client.settle_default(desk.regulator_key, [agreement_id])
        assert result.events == ()
        assert snapshot(desk, agreement_id) == before
        assert desk.client.set_off_of(merchant.address) == (0, 1, 0)
        # Distributed once: a second distribution is refused and opens no second claim.
        self._distribute(desk, merchant, [agreement_id])
        before = snapshot(desk, agreement_id)
        claim_id = desk.client.claim_of_agreement(agreement_id)
        assert claim_id != 0
        with reverts("AgreementBookNotAwaitingSetOff", agreement_id):
            self._distribute(desk, merchant, [agreement_id])
        assert desk.client.settle_default(desk.regulator_key, [agreement_id]).events == ()
        assert snapshot(desk, agreement_id) == before
        assert desk.client.claim_of_agreement(agreement_id) == claim_id
        assert desk.client.set_off_of(merchant.address) == (0, 1, 1)
        assert_conserved(desk, agreement_id)

    def test_settlement_leaves_closed_plans_closed_but_sets_their_unpaid_entitlement_off(
        self, desk, merchant, consumer, other_consumer
    ):
        # The completed plan (paid 100: upfront 70 + released 30) owes its merchant 100 the bank
        # never paid; in default that 100 is set aside for the merchant's consumers and pays
        # 100 of the active plan's 56,000 shortfall before any insurer (no policy here).
        completed, _ = funded_plan(desk, merchant, consumer, units=1, unit_price=100)
        desk.consume(desk.sign_record(completed, 1, merchant.key, consumer.key))
        active = self._plan_with_shortfall(desk, merchant, other_consumer)
        desk.client.declare_default(desk.regulator_key, merchant.address)
        [(agreement_before, ledger_before)] = snapshot(desk, completed)
        result = desk.client.settle_default(desk.regulator_key, [completed, active])
        # The closed plan is not settled again: no refund, same agreement ...
        assert [bytes(e.args["agreementId"]) for e in result.named("RefundGranted")] == [active]
        assert desk.client.get_agreement(completed) == agreement_before
        assert agreement_before.state == m.AgreementState.COMPLETED
        # ... but its merchant's unpaid entitlement is swept into the set-off pool.
        swept = result.event("SetOffSwept").args
        assert (bytes(swept["agreementId"]), swept["merchant"], swept["amount"]) == (
            completed,
            merchant.address,
            100,
        )
        assert desk.client.get_ledger(completed) == replace(ledger_before, set_off_given=100)
        assert desk.client.set_off_of(merchant.address) == (100, 2, 0)
        assert desk.client.get_agreement(active).state == m.AgreementState.DEFAULTED

        result = self._distribute(desk, merchant, [completed, active])
        applied = result.event("SetOffApplied").args
        assert (bytes(applied["agreementId"]), applied["amount"]) == (active, 100)
        ledger = desk.client.get_ledger(active)
        assert (ledger.set_off_covered, ledger.insured_shortfall, ledger.merchant_owed) == (
            100,
            0,
            55_900,
        )
        claim = desk.client.get_claim(desk.client.claim_of_agreement(active))
        assert (claim.loss, claim.covered) == (55_900, 0)
        assert desk.client.claim_of_agreement(completed) == 0
        assert desk.client.set_off_of(merchant.address) == (0, 2, 2)
        assert_conserved(desk, completed, active)


# ================================================================ confirmPayout


class TestConfirmPayout:
    def _consumed_plan(self, desk, merchant, consumer):
        # Upfront 70,000 + released 6,000 (2 of 10 lessons): merchant entitled to 76,000.
        agreement_id, _ = funded_plan(desk, merchant, consumer)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2))
        return agreement_id

    def test_merchant_payout_up_to_upfront_plus_released_is_recorded(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id = self._consumed_plan(desk, merchant, consumer)
        reference = desk.next_bank_reference()
        result = desk.confirm_payout(
            agreement_id, m.Payee.MERCHANT, 70_000, bank_reference=reference
        )
        event = result.event("PayoutConfirmed").args
        assert (bytes(event["bankReference"]), event["payee"], event["amount"]) == (
            reference,
            0,
            70_000,
        )
        digest = bytes(result.event("ReportAccepted").args["digest"])
        assert desk.client.lookup_evidence(digest).kind == m.EvidenceKind.PAYOUT_CONFIRMED
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 6_000)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.paid_to_merchant, ledger.paid_to_consumer) == (76_000, 0)
        assert ledger.instructed_to_merchant == 76_000
        assert desk.client.call(desk.client.custody.functions.isBankReferenceUsed(reference))
        assert ledger.is_conserved()
        with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.MERCHANT):
            desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 1)

    def test_consumer_payout_up_to_refunded_is_recorded(self, desk, merchant, consumer, reverts):
        agreement_id = self._consumed_plan(desk, merchant, consumer)
        with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.CONSUMER):
            desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 1)
        # Refund 80,000: frozen 24,000 + 56,000 reclaimed from the unpaid 76,000.
        desk.terminate(agreement_id, consumer.key)
        desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 30_000)
        desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 50_000)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.refunded, ledger.paid_to_consumer) == (80_000, 80_000)
        assert ledger.instructed_to_consumer == 80_000
        assert ledger.is_conserved()

    def test_instruction_beyond_what_is_due_is_clamped_and_a_larger_payout_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        # After the termination the merchant keeps 76,000 − 56,000 reclaimed = 20,000 and the
        # consumer is owed 80,000 from custody. Instructions asking for one fen more claim only
        # what is due; the bank cannot report paying more than an instruction claimed.
        agreement_id = self._consumed_plan(desk, merchant, consumer)
        desk.terminate(agreement_id, consumer.key)
        with reverts("AgreementBookNothingToInstruct", agreement_id, m.Payee.CONSUMER):
            desk.instruct_payment(agreement_id, m.Payee.CONSUMER, 0)
        to_merchant, result = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 20_001)
        assert result.event("PaymentInstructed").args["amount"] == 20_000
        to_consumer, result = desk.instruct_payment(agreement_id, m.Payee.CONSUMER, 80_001)
        assert result.event("PaymentInstructed").args["amount"] == 80_000
        for payee in (m.Payee.MERCHANT, m.Payee.CONSUMER):
            with reverts("AgreementBookNothingToInstruct", agreement_id, payee):
                desk.instruct_payment(agreement_id, payee, 1)
        before = snapshot(desk, agreement_id)
        reference = desk.next_bank_reference()
        with reverts(
            "CustodyDeskInstructionMismatch", to_merchant, agreement_id, m.Payee.MERCHANT, 20_000
        ):
            desk.confirm_payout(
                agreement_id,
                m.Payee.MERCHANT,
                20_001,
                bank_reference=reference,
                instruction_id=to_merchant,
            )
        with reverts(
            "CustodyDeskInstructionMismatch", to_consumer, agreement_id, m.Payee.CONSUMER, 80_000
        ):
            desk.confirm_payout(
                agreement_id,
                m.Payee.CONSUMER,
                80_001,
                bank_reference=reference,
                instruction_id=to_consumer,
            )
        assert snapshot(desk, agreement_id) == before
        assert not desk.client.call(desk.client.custody.functions.isBankReferenceUsed(reference))

    def test_payout_with_a_used_bank_reference_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id = self._consumed_plan(desk, merchant, consumer)
        payout_reference = desk.next_bank_reference()
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 10_000, bank_reference=payout_reference)
        instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 10_000)
        before = snapshot(desk, agreement_id)
        with reverts("CustodyDeskDuplicateBankReference", payout_reference):
            desk.confirm_payout(
                agreement_id,
                m.Payee.MERCHANT,
                10_000,
                bank_reference=payout_reference,
                instruction_id=instruction_id,
            )
        assert snapshot(desk, agreement_id) == before
        assert desk.client.get_instruction(instruction_id).state == m.InstructionState.INSTRUCTED

    def test_payout_quoting_a_funding_bank_reference_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id, signed = open_plan(desk, merchant, consumer)
        funding_reference = desk.next_bank_reference()
        desk.fund(agreement_id, signed.terms.total_paid, bank_reference=funding_reference)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
        instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 10_000)
        before = snapshot(desk, agreement_id)
        with reverts("CustodyDeskDuplicateBankReference", funding_reference):
            desk.confirm_payout(
                agreement_id,
                m.Payee.MERCHANT,
                10_000,
                bank_reference=funding_reference,
                instruction_id=instruction_id,
            )
        # One register of bank references for credits and payouts alike: the custody desk's.
        assert snapshot(desk, agreement_id) == before
        assert desk.client.get_instruction(instruction_id).state == m.InstructionState.INSTRUCTED

    def test_payout_from_a_non_oracle_is_rejected(self, desk, merchant, consumer, reverts):
        agreement_id = self._consumed_plan(desk, merchant, consumer)
        payout = m.PayoutReport(
            agreement_id, m.Payee.MERCHANT, 1_000, desk.next_bank_reference(), sha256("i")
        )
        report, signatures = desk.client.make_report(
            m.FEED_BANK, agreement_id, payout, desk.bank_signers
        )
        before = snapshot(desk, agreement_id)
        with reverts("CustodyDeskUnauthorized", merchant.address.lower()):
            desk.client.confirm_payout(merchant.key, payout, report, signatures)
        assert snapshot(desk, agreement_id) == before

    def test_payout_whose_report_carries_another_payload_is_rejected(
        self, desk, merchant, consumer, reverts
    ):
        agreement_id = self._consumed_plan(desk, merchant, consumer)
        instruction_id, _ = desk.instruct_payment(agreement_id, m.Payee.MERCHANT, 1_000)
        payout = m.PayoutReport(
            agreement_id, m.Payee.MERCHANT, 1_000, desk.next_bank_reference(), instruction_id
        )
        inflated = replace(payout, amount=76_000)
        report, signatures = desk.client.make_report(
            m.FEED_BANK, agreement_id, inflated, desk.bank_signers
        )
        before = snapshot(desk, agreement_id)
        with reverts("CustodyDeskReportMismatch", payout.abi_hash(), inflated.abi_hash()):
            desk.client.confirm_payout(desk.bank_oracle_key, payout, report, signatures)
        assert snapshot(desk, agreement_id) == before

    def test_payout_on_unknown_agreement_is_rejected(self, desk, reverts):
        unknown = sha256("no such agreement")
        with reverts("AgreementBookUnknownAgreement", unknown):
            desk.confirm_payout(unknown, m.Payee.MERCHANT, 1)


# ================================================================ views


def test_agreements_of_pages_a_merchants_plans(desk, merchant, consumer, other_consumer):
    ids = [open_plan(desk, merchant, party)[0] for party in (consumer, other_consumer, consumer)]
    assert desk.client.agreement_count(merchant.address) == 3
    assert desk.client.agreements_of(merchant.address) == ids
    assert desk.client.agreements_of(merchant.address, 1, 1) == ids[1:2]
    assert desk.client.agreements_of(merchant.address, 2, 10) == ids[2:]
    assert desk.client.agreements_of(merchant.address, 5, 10) == []
    assert desk.client.agreements_of(merchant.address, 1, 0) == []


def test_agreements_of_with_huge_limit_returns_the_rest(desk, merchant, consumer, other_consumer):
    # offset + limit would overflow uint256; the page is simply the rest.
    ids = [open_plan(desk, merchant, party)[0] for party in (consumer, other_consumer)]
    assert desk.client.agreements_of(merchant.address, 1, 2**256 - 1) == ids[1:]
    assert desk.client.agreements_of(merchant.address, 0, 2**256 - 1) == ids
    assert desk.client.agreements_of(merchant.address, 2, 2**256 - 1) == []
    assert desk.client.agreements_of(merchant.address, 2**256 - 1, 2**256 - 1) == []


def test_unknown_agreement_views_are_rejected(desk, reverts):
    unknown = sha256("no such agreement")
    with reverts("AgreementBookUnknownAgreement", unknown):
        desk.client.get_agreement(unknown)
    with reverts("AgreementBookUnknownAgreement", unknown):
        desk.client.get_ledger(unknown)
    with reverts("AgreementBookUnknownAgreement", unknown):
        desk.client.preview_refund(unknown)


def test_client_digests_match_the_contracts(desk, merchant, consumer):
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=1, unit_price=100
    )
    domain = desk.client.book_domain()
    assert bytes(desk.client.book.functions.agreementDigest(signed.terms.as_abi()).call()) == (
        signed.terms.digest(domain)
    )
    record = m.ConsumptionRecord(sha256("a"), 1, 1, 100, 5, sha256("r"))
    assert bytes(desk.client.book.functions.recordDigest(record.as_abi()).call()) == record.digest(
        domain
    )
    request = m.ConsumerRequest(sha256("a"), m.ConsumerAction.TERMINATE, 90_000, 7, 99)
    assert bytes(desk.client.book.functions.requestDigest(request.as_abi()).call()) == (
        request.digest(domain)
    )


# ================================================================ errors naming a term


def test_custom_error_naming_a_term_reaches_the_caller_by_name(desk, merchant, consumer, reverts):
    # The term is a left-aligned ASCII bytes32 (a string first argument was decoded as
    # Error(string) by web3's eth-tester provider and lost); both backends now see the error.
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=61, unit_price=100
    )
    with reverts(
        "AgreementBookOutsideTemplate", m.label("maxUnits"), TRAINING_MAX_UNITS, 61
    ) as caught:
        desk.open(signed)
    assert caught.value.args_[0] == b"maxUnits" + bytes(24)
    # The client's message shows the label as text.
    assert str(caught.value) == "AgreementBookOutsideTemplate('maxUnits', 60, 61)"


# ================================================================ one document, two plans


def test_two_plans_differing_only_in_salt_can_both_be_opened(desk, merchant, consumer):
    first = desk.sign_agreement(
        merchant.key,
        consumer.key,
        merchant.template_id,
        units=1,
        unit_price=100,
        salt=b"\x01" * 32,
        document="the same filled contract",
    )
    second = sign_terms(desk, replace(first.terms, salt=b"\x02" * 32), merchant.key, consumer.key)
    first_id, _ = desk.open(first)
    second_id, _ = desk.open(second)
    assert first_id != second_id
    assert first.terms.document_hash == second.terms.document_hash
    for agreement_id in (first_id, second_id):
        assert desk.client.get_agreement(agreement_id).state == m.AgreementState.SIGNED
        anchor = desk.client.lookup_evidence(agreement_id)
        assert (anchor.kind, anchor.subject) == (m.EvidenceKind.AGREEMENT_OPENED, agreement_id)
    assert desk.client.agreements_of(merchant.address) == [first_id, second_id]
