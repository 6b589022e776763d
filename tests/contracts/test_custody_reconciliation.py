"""Custody reconciliation: the bank's daily statement against the custody the desk holds.

``CustodyDesk.custodyHeld(merchant)`` is every deposit the bank confirmed minus every payout it
confirmed (each one of a registered payment instruction), to the merchant or to consumers: what
the merchant's custody account at the bank should hold; an instruction not yet paid is still in
it. ``reconcileCustody`` compares it with the closing balance of the bank's end-of-day
statement. A match is recorded; a mismatch is recorded as an anomaly and raises the merchant's
risk tier to at least High (``MerchantRegistry.flagCustodyAnomaly``), never lowers it.

Each refusal asserts the custom error and that nothing changed: no block was mined, and the
desk's custody, the merchant's record and tier, its anomaly record and the bank feed's sequence
for the merchant read the same afterwards.

Amounts are fen (1 RMB = 100 fen); business days count days since 1970-01-01.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from eth_account import Account

from chain import messages as m
from chain import views as v
from chain.deploy import fund_accounts
from chain.scenario import SECONDS_PER_DAY, sha256

# A training plan of the fixtures: 10 lessons × 100 RMB, 30 % frozen (30,000) and 70,000 upfront.
PLAN_PAID = 100_000


# ---------------------------------------------------------------- helpers


def addr(key: str) -> str:
    """The address of a key, lower case as revert arguments decode."""
    return Account.from_key(key).address.lower()


def today(desk) -> int:
    """The business day of the latest block."""
    return desk.client.latest_timestamp() // SECONDS_PER_DAY


def funded_plan(desk, merchant, consumer, *, units: int = 10, unit_price: int = 10_000) -> bytes:
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=units, unit_price=unit_price
    )
    agreement_id, _ = desk.open(signed)
    desk.fund(agreement_id, signed.terms.total_paid)
    return agreement_id


def custody_state(desk, merchant: str) -> tuple[Any, ...]:
    """Everything a reconciliation may change about a merchant."""
    client = desk.client
    return (
        client.custody_held(merchant),
        client.last_reconciled_day(merchant),
        client.get_merchant(merchant),
        client.custody_anomalies(merchant),
        client.last_sequence(m.FEED_BANK, m.address_subject(merchant)),
    )


@contextlib.contextmanager
def unchanged(desk, backend, merchant: str) -> Iterator[None]:
    """Assert the block enclosed mined nothing and changed nothing about ``merchant``."""
    before = custody_state(desk, merchant)
    block = backend.w3.eth.block_number
    yield
    assert backend.w3.eth.block_number == block
    assert custody_state(desk, merchant) == before


def reconciliation(
    merchant: str, day: int, balance: int, statement: str = "statement"
) -> m.CustodyReconciliation:
    return m.CustodyReconciliation(
        merchant=merchant,
        business_day=day,
        statement_balance=balance,
        statement_hash=sha256(f"camt.053 {statement} {merchant} {day}"),
    )


def signed(
    desk,
    payload: m.CustodyReconciliation,
    *,
    feed: bytes = m.FEED_BANK,
    subject: str | None = None,
    signer_keys: list[str] | None = None,
    **report_fields: Any,
) -> tuple[m.OracleReport, list[bytes]]:
    """A report carrying ``payload``, about ``subject`` (the payload's merchant by default)."""
    return desk.client.make_report(
        feed,
        m.address_subject(subject or payload.merchant),
        payload,
        desk.bank_signers if signer_keys is None else signer_keys,
        **report_fields,
    )


def submit(desk, payload, report, signatures, sender_key: str | None = None):
    return desk.client.reconcile_custody(
        sender_key or desk.bank_oracle_key, payload, report, signatures
    )


@pytest.fixture
def fitness_merchant(desk, config):
    """The second demo merchant (fitness), onboarded; only its address is needed."""
    demo = config.demo.merchants[1]
    return desk.onboard(demo.key.private_key, demo.uscc, demo.name, demo.industry)


# ================================================================ custodyHeld


class TestCustodyHeld:
    def test_a_merchant_without_plans_holds_nothing(self, desk, merchant):
        assert desk.client.custody_held(merchant.address) == 0
        assert desk.client.last_reconciled_day(merchant.address) == 0
        assert desk.client.custody_anomalies(merchant.address) == v.CustodyAnomalies(
            0, 0, bytes(32)
        )

    def test_funding_adds_the_whole_payment_not_only_the_frozen_share(
        self, desk, merchant, consumer, other_consumer, fitness_merchant
    ):
        first = funded_plan(desk, merchant, consumer)
        assert desk.client.custody_held(merchant.address) == PLAN_PAID
        # 20 lessons × 90 RMB = 180,000 more.
        funded_plan(desk, merchant, other_consumer, units=20, unit_price=9_000)
        assert desk.client.custody_held(merchant.address) == PLAN_PAID + 180_000
        assert desk.client.get_ledger(first).frozen == 30_000
        # Another merchant's custody account is its own.
        assert desk.client.custody_held(fitness_merchant) == 0

    def test_an_opened_but_unpaid_plan_adds_nothing(self, desk, merchant, consumer):
        signed_terms = desk.sign_agreement(
            merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
        )
        desk.open(signed_terms)
        assert desk.client.custody_held(merchant.address) == 0

    def test_releases_and_refunds_change_nothing_until_the_bank_pays_them(
        self, desk, merchant, consumer
    ):
        agreement_id = funded_plan(desk, merchant, consumer)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2))
        assert desk.client.get_ledger(agreement_id).released == 6_000
        assert desk.client.custody_held(merchant.address) == PLAN_PAID
        desk.terminate(agreement_id, consumer.key)
        assert desk.client.get_ledger(agreement_id).refunded == 80_000
        assert desk.client.custody_held(merchant.address) == PLAN_PAID
        # Instructing a payment does not move money either; only the bank's payout does.
        desk.instruct_payment(agreement_id, m.Payee.CONSUMER, 80_000)
        assert desk.client.get_ledger(agreement_id).instructed_to_consumer == 80_000
        assert desk.client.custody_held(merchant.address) == PLAN_PAID

    def test_confirmed_payouts_to_merchant_and_consumer_leave_custody(
        self, desk, merchant, consumer
    ):
        # Upfront 70,000 + released 6,000 after 2 of 10 lessons: the merchant is owed 76,000.
        agreement_id = funded_plan(desk, merchant, consumer)
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key, units=2))
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 50_000)
        assert desk.client.custody_held(merchant.address) == 50_000
        # Termination owes 80,000: custody pays the frozen 24,000 and takes back the merchant's
        # unpaid 26,000 (76,000 − 50,000 paid), 50,000 in all; the merchant owes the other 30,000.
        desk.terminate(agreement_id, consumer.key)
        ledger = desk.client.get_ledger(agreement_id)
        assert (ledger.refunded, ledger.merchant_owed) == (50_000, 30_000)
        desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 20_000)
        assert desk.client.custody_held(merchant.address) == 30_000
        desk.confirm_payout(agreement_id, m.Payee.CONSUMER, 30_000)
        assert desk.client.custody_held(merchant.address) == 0
        ledger = desk.client.get_ledger(agreement_id)
        assert ledger.deposited - ledger.paid_to_merchant - ledger.paid_to_consumer == 0
        assert ledger.is_conserved()

    def test_custody_held_is_the_sum_over_the_merchants_ledgers(
        self, desk, merchant, consumer, other_consumer
    ):
        first = funded_plan(desk, merchant, consumer)
        second = funded_plan(desk, merchant, other_consumer, units=4, unit_price=25_000)
        # The first lesson ends the cooling-off right and releases the upfront 70,000.
        desk.consume(desk.sign_record(first, 1, merchant.key, consumer.key))
        desk.confirm_payout(first, m.Payee.MERCHANT, 70_000)
        desk.cool_off(second, other_consumer.key)
        desk.confirm_payout(second, m.Payee.CONSUMER, 100_000)
        ledgers = [desk.client.get_ledger(i) for i in desk.client.agreements_of(merchant.address)]
        expected = sum(x.deposited - x.paid_to_merchant - x.paid_to_consumer for x in ledgers)
        assert desk.client.custody_held(merchant.address) == expected == 30_000


# ================================================================ reconcileCustody


class TestReconcileCustody:
    def test_a_matching_statement_is_recorded_and_the_tier_is_unchanged(
        self, desk, merchant, consumer
    ):
        funded_plan(desk, merchant, consumer)
        day = today(desk)
        payload = reconciliation(merchant.address, day, PLAN_PAID)
        report, signatures = signed(desk, payload)

        result = submit(desk, payload, report, signatures)

        assert result.event("CustodyReconciled").args == {
            "merchant": merchant.address,
            "businessDay": day,
            "statementBalance": PLAN_PAID,
            "custodyHeld": PLAN_PAID,
            "statementHash": payload.statement_hash,
        }
        assert result.named("CustodyAnomaly") == []
        assert result.named("CustodyAnomalyFlagged") == []
        assert result.named("RiskTierChanged") == []
        accepted = result.event("ReportAccepted").args
        assert (accepted["feed"], accepted["subject"]) == (
            m.FEED_BANK,
            m.address_subject(merchant.address),
        )
        assert desk.client.last_reconciled_day(merchant.address) == day
        assert desk.client.get_merchant(merchant.address).tier == m.RiskTier.LOW
        assert desk.client.custody_anomalies(merchant.address).count == 0
        # Only an anomaly anchors the statement; a match is in the event.
        assert desk.client.lookup_evidence(payload.statement_hash).block_number == 0

    def test_a_merchant_without_plans_reconciles_against_zero(self, desk, merchant):
        result = desk.reconcile_custody(merchant.address, today(desk), 0)
        assert result.event("CustodyReconciled").args["custodyHeld"] == 0
        assert result.named("CustodyAnomaly") == []

    @pytest.mark.parametrize("difference", [-1, 1, 25_000])
    def test_a_mismatch_records_an_anomaly_and_raises_the_tier_to_high(
        self, desk, merchant, consumer, difference
    ):
        funded_plan(desk, merchant, consumer)
        day = today(desk)
        payload = reconciliation(merchant.address, day, PLAN_PAID + difference)
        report, signatures = signed(desk, payload)

        result = submit(desk, payload, report, signatures)

        reconciled = result.event("CustodyReconciled").args
        assert (reconciled["statementBalance"], reconciled["custodyHeld"]) == (
            PLAN_PAID + difference,
            PLAN_PAID,
        )
        assert result.event("CustodyAnomaly").args == {
            "merchant": merchant.address,
            "businessDay": day,
            "custodyHeld": PLAN_PAID,
            "statementBalance": PLAN_PAID + difference,
        }
        assert result.event("CustodyAnomalyFlagged").args == {
            "merchant": merchant.address,
            "count": 1,
            "reasonHash": payload.statement_hash,
        }
        tier_changed = result.event("RiskTierChanged").args
        assert (tier_changed["previous"], tier_changed["current"]) == (
            m.RiskTier.LOW,
            m.RiskTier.HIGH,
        )
        record = desk.client.get_merchant(merchant.address)
        assert record.tier == m.RiskTier.HIGH
        assert record.status == m.MerchantStatus.APPROVED  # raised, not suspended
        block = desk.client.w3.eth.get_block(result.block_number)
        assert desk.client.custody_anomalies(merchant.address) == v.CustodyAnomalies(
            1, block["timestamp"], payload.statement_hash
        )
        anchor = desk.client.lookup_evidence(payload.statement_hash)
        assert (anchor.kind, anchor.subject, anchor.submitter, anchor.block_number) == (
            m.EvidenceKind.CUSTODY_ANOMALY,
            m.address_subject(merchant.address),
            desk.client.addresses.merchants,
            result.block_number,
        )
        # The book still holds what it held; the next plan is frozen at the High floor (80 %).
        assert desk.client.custody_held(merchant.address) == PLAN_PAID
        assert desk.client.custody_ratio_bps(merchant.address, 3000) == 8000

    def test_a_medium_tier_merchant_is_raised_to_high(self, desk, merchant):
        desk.client.set_risk_tier(desk.regulator_key, merchant.address, m.RiskTier.MEDIUM)
        result = desk.reconcile_custody(merchant.address, today(desk), 1)
        assert result.event("RiskTierChanged").args["previous"] == m.RiskTier.MEDIUM
        assert desk.client.get_merchant(merchant.address).tier == m.RiskTier.HIGH

    @pytest.mark.parametrize("tier", [m.RiskTier.HIGH, m.RiskTier.BLOCKED])
    def test_a_mismatch_never_lowers_a_tier_at_or_above_high(self, desk, merchant, tier):
        desk.client.set_risk_tier(desk.regulator_key, merchant.address, tier)
        result = desk.reconcile_custody(merchant.address, today(desk), 500)
        assert result.named("RiskTierChanged") == []
        assert result.event("CustodyAnomaly").args["statementBalance"] == 500
        assert result.event("CustodyAnomalyFlagged").args["count"] == 1
        assert desk.client.get_merchant(merchant.address).tier == tier

    def test_anomalies_are_counted_and_a_later_match_keeps_the_raised_tier(
        self, desk, merchant, consumer, backend
    ):
        funded_plan(desk, merchant, consumer)
        day = today(desk)
        desk.reconcile_custody(merchant.address, day, PLAN_PAID - 100)
        # Each statement is reported on its own day (a statement cannot be dated after its report).
        backend.advance_time(SECONDS_PER_DAY)
        second = desk.reconcile_custody(
            merchant.address, day + 1, PLAN_PAID + 100, statement_hash=sha256("day 2")
        )
        assert second.event("CustodyAnomalyFlagged").args["count"] == 2
        assert second.named("RiskTierChanged") == []
        backend.advance_time(SECONDS_PER_DAY)
        matched = desk.reconcile_custody(merchant.address, day + 2, PLAN_PAID)
        assert matched.named("CustodyAnomaly") == []
        anomalies = desk.client.custody_anomalies(merchant.address)
        assert (anomalies.count, anomalies.last_reason_hash) == (2, sha256("day 2"))
        assert desk.client.get_merchant(merchant.address).tier == m.RiskTier.HIGH
        assert desk.client.last_reconciled_day(merchant.address) == day + 2

    def test_payouts_between_statements_are_followed(self, desk, merchant, consumer, backend):
        agreement_id = funded_plan(desk, merchant, consumer)
        day = today(desk)
        assert (
            desk.reconcile_custody(merchant.address, day, PLAN_PAID).named("CustodyAnomaly") == []
        )
        desk.consume(desk.sign_record(agreement_id, 1, merchant.key, consumer.key))
        desk.confirm_payout(agreement_id, m.Payee.MERCHANT, 70_000)
        backend.advance_time(SECONDS_PER_DAY)
        result = desk.reconcile_custody(merchant.address, day + 1, 30_000)
        assert result.named("CustodyAnomaly") == []
        assert result.event("CustodyReconciled").args["custodyHeld"] == 30_000

    def test_a_suspended_merchant_is_still_reconciled(self, desk, merchant, consumer):
        funded_plan(desk, merchant, consumer)
        desk.client.suspend_merchant(desk.regulator_key, merchant.address)
        result = desk.reconcile_custody(merchant.address, today(desk), PLAN_PAID)
        assert result.event("CustodyReconciled").args["custodyHeld"] == PLAN_PAID

    def test_a_statement_day_counts_from_the_unix_epoch(self):
        assert m.business_day(date(1970, 1, 1)) == 0
        assert m.business_day(date(2025, 3, 14)) == 20_161

    # ------------------------------------------------------------ refusals

    def test_reconciliation_from_a_non_oracle_is_refused(
        self, desk, merchant, consumer, config, backend, reverts
    ):
        funded_plan(desk, merchant, consumer)
        payload = reconciliation(merchant.address, today(desk), 1)
        report, signatures = signed(desk, payload)
        bank_key = config.organisations["bank"].key.private_key
        for key in (desk.operator_key, merchant.key, desk.regulator_key, bank_key):
            with (
                unchanged(desk, backend, merchant.address),
                reverts("CustodyDeskUnauthorized", addr(key)),
            ):
                submit(desk, payload, report, signatures, sender_key=key)
        # The same report still counts when the bank feed submits it.
        submit(desk, payload, report, signatures)
        assert desk.client.custody_anomalies(merchant.address).count == 1

    def test_a_report_signed_by_one_of_three_bank_signers_is_refused(
        self, desk, merchant, backend, reverts
    ):
        payload = reconciliation(merchant.address, today(desk), 1)
        report, signatures = signed(desk, payload, signer_keys=desk.bank_signers[:1])
        with (
            unchanged(desk, backend, merchant.address),
            reverts("OracleHubInsufficientSignatures", 1, 2),
        ):
            submit(desk, payload, report, signatures)

    def test_a_report_of_the_licence_feed_is_refused(self, desk, merchant, backend, reverts):
        payload = reconciliation(merchant.address, today(desk), 1)
        report, signatures = signed(
            desk, payload, feed=m.FEED_LICENCE, signer_keys=desk.licence_signers
        )
        with (
            unchanged(desk, backend, merchant.address),
            reverts("CustodyDeskReportMismatch", payload.abi_hash(), payload.abi_hash()),
        ):
            submit(desk, payload, report, signatures)

    def test_a_bank_report_signed_by_the_licence_feeds_signers_is_refused(
        self, desk, merchant, backend, reverts
    ):
        payload = reconciliation(merchant.address, today(desk), 1)
        report, signatures = signed(desk, payload, signer_keys=desk.licence_signers)
        with (
            unchanged(desk, backend, merchant.address),
            reverts("OracleHubUnknownSigner") as caught,
        ):
            submit(desk, payload, report, signatures)
        index, signer = caught.value.args_
        assert index == 0
        licence_signers = {addr(key) for key in desk.licence_signers}
        assert signer.lower() in licence_signers

    def test_a_report_carrying_another_balance_is_refused(self, desk, merchant, backend, reverts):
        payload = reconciliation(merchant.address, today(desk), 1)
        other = replace(payload, statement_balance=0)
        report, signatures = signed(desk, other)
        with (
            unchanged(desk, backend, merchant.address),
            reverts("CustodyDeskReportMismatch", payload.abi_hash(), other.abi_hash()),
        ):
            submit(desk, payload, report, signatures)

    def test_a_report_about_another_merchant_is_refused(
        self, desk, merchant, fitness_merchant, backend, reverts
    ):
        payload = reconciliation(merchant.address, today(desk), 1)
        report, signatures = signed(desk, payload, subject=fitness_merchant)
        with (
            unchanged(desk, backend, merchant.address),
            unchanged(desk, backend, fitness_merchant),
            reverts("CustodyDeskReportMismatch", payload.abi_hash(), payload.abi_hash()),
        ):
            submit(desk, payload, report, signatures)

    def test_a_stale_report_is_refused(self, desk, merchant, backend, reverts):
        max_age = desk.client.call(desk.client.oracle_hub.functions.maxReportAge())
        issued_at = desk.client.latest_timestamp() - max_age - 120
        payload = reconciliation(merchant.address, today(desk), 1)
        report, signatures = signed(desk, payload, issued_at=issued_at)
        with unchanged(desk, backend, merchant.address), reverts("OracleHubStaleReport") as caught:
            submit(desk, payload, report, signatures)
        assert caught.value.args_[0] == issued_at
        assert caught.value.args_[2] == max_age

    def test_a_replayed_report_is_refused(self, desk, merchant, consumer, backend, reverts):
        funded_plan(desk, merchant, consumer)
        day = today(desk)
        payload = reconciliation(merchant.address, day, 1)
        report, signatures = signed(desk, payload)
        submit(desk, payload, report, signatures)
        with (
            unchanged(desk, backend, merchant.address),
            reverts("CustodyDeskAlreadyReconciled", merchant.address.lower(), day, day),
        ):
            submit(desk, payload, report, signatures)
        assert desk.client.custody_anomalies(merchant.address).count == 1

    def test_a_report_reusing_a_spent_sequence_is_refused(self, desk, merchant, backend, reverts):
        day = today(desk)
        first = desk.reconcile_custody(merchant.address, day, 0)
        sequence = first.event("ReportAccepted").args["sequence"]
        backend.advance_time(SECONDS_PER_DAY)
        payload = reconciliation(merchant.address, day + 1, 0)
        report, signatures = signed(desk, payload, sequence=sequence)
        subject = m.address_subject(merchant.address)
        with (
            unchanged(desk, backend, merchant.address),
            reverts("OracleHubSequenceNotIncreasing", m.FEED_BANK, subject, sequence, sequence),
        ):
            submit(desk, payload, report, signatures)

    def test_an_unknown_merchant_is_refused(self, desk, backend, reverts):
        stranger = Account.create().address
        payload = reconciliation(stranger, today(desk), 0)
        report, signatures = signed(desk, payload)
        with (
            unchanged(desk, backend, stranger),
            reverts("CustodyDeskUnknownMerchant", stranger.lower()),
        ):
            submit(desk, payload, report, signatures)

    def test_the_same_day_twice_is_refused(self, desk, merchant, consumer, backend, reverts):
        funded_plan(desk, merchant, consumer)
        day = today(desk)
        desk.reconcile_custody(merchant.address, day, PLAN_PAID)
        # Even a corrected statement for the same day (new file, new report) is refused.
        with (
            unchanged(desk, backend, merchant.address),
            reverts("CustodyDeskAlreadyReconciled", merchant.address.lower(), day, day),
        ):
            desk.reconcile_custody(merchant.address, day, 1)

    def test_an_earlier_day_than_the_last_reconciled_is_refused(
        self, desk, merchant, backend, reverts
    ):
        day = today(desk)
        desk.reconcile_custody(merchant.address, day, 0)
        with (
            unchanged(desk, backend, merchant.address),
            reverts("CustodyDeskAlreadyReconciled", merchant.address.lower(), day, day - 1),
        ):
            desk.reconcile_custody(merchant.address, day - 1, 0)

    def test_a_reconciliation_without_statement_hash_is_refused(
        self, desk, merchant, backend, reverts
    ):
        payload = replace(
            reconciliation(merchant.address, today(desk), 1), statement_hash=bytes(32)
        )
        report, signatures = signed(desk, payload)
        with (
            unchanged(desk, backend, merchant.address),
            reverts("CustodyDeskMissingStatementHash", merchant.address.lower()),
        ):
            submit(desk, payload, report, signatures)


# ================================================================ flagCustodyAnomaly


class TestFlagCustodyAnomaly:
    @pytest.mark.parametrize("role", ["regulator", "bank", "bank_feed", "operator"])
    def test_only_a_system_account_may_flag(self, desk, merchant, config, backend, reverts, role):
        key = config.organisations[role].key
        with (
            unchanged(desk, backend, merchant.address),
            reverts("MerchantRegistryUnauthorized", key.address.lower()),
        ):
            desk.client.flag_custody_anomaly(key.private_key, merchant.address, sha256("x"))

    def test_the_merchant_itself_may_not_flag(self, desk, merchant, backend, reverts):
        with (
            unchanged(desk, backend, merchant.address),
            reverts("MerchantRegistryUnauthorized", merchant.address.lower()),
        ):
            desk.client.flag_custody_anomaly(merchant.key, merchant.address, sha256("x"))

    def test_a_system_account_flags_a_known_merchant_but_not_an_unknown_one(
        self, desk, merchant, backend, reverts
    ):
        system = Account.create()
        fund_accounts(backend.w3, [system.address])
        system_key = "0x" + bytes(system.key).hex()
        desk.client.admit(desk.regulator_key, system.address, m.Role.SYSTEM, sha256("test system"))

        result = desk.client.flag_custody_anomaly(system_key, merchant.address, sha256("reason"))
        assert result.event("CustodyAnomalyFlagged").args["count"] == 1
        assert desk.client.get_merchant(merchant.address).tier == m.RiskTier.HIGH

        stranger = Account.create().address
        with (
            unchanged(desk, backend, stranger),
            reverts("MerchantRegistryInvalidStatus", stranger.lower(), m.MerchantStatus.NONE),
        ):
            desk.client.flag_custody_anomaly(system_key, stranger, sha256("other reason"))
