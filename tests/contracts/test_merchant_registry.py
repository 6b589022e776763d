"""MerchantRegistry: onboarding, licence attestations, status, risk tiers and custody floors."""

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
from chain.messages import EvidenceKind, LicenceStatus, MerchantStatus, RiskTier
from chain.scenario import SECONDS_PER_DAY, sha256

ZERO = bytes(32)


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
def demo(config):
    """The second demo merchant (fitness), not yet a member."""
    return config.demo.merchants[1]


@pytest.fixture
def applied(desk, demo):
    """The demo merchant admitted and applied, with no licence attested yet."""
    desk.admit_merchant(demo.key.private_key, demo.name)
    desk.apply(demo.key.private_key, demo.uscc, demo.name, demo.industry)
    return demo


@pytest.fixture
def licensed(desk, applied):
    """The applied merchant with a valid licence attested, not yet approved."""
    desk.attest_licence(applied.address)
    return applied


def record(client, address: str) -> tuple[Any, ...]:
    """A merchant's record and whether it may sell."""
    return client.get_merchant(address), client.can_sell(address)


def days_ago(client, days: int) -> int:
    return client.latest_timestamp() - days * SECONDS_PER_DAY


def report_risk(desk, merchant: str, tier: RiskTier, score: int = 640):
    risk = m.RiskReport(merchant, tier, score, sha256(f"signals {merchant} {tier} {score}"))
    report, signatures = desk.client.make_report(
        m.FEED_RISK, m.address_subject(merchant), risk, desk.risk_signers
    )
    return desk.client.report_risk(desk.risk_oracle_key, risk, report, signatures)


def fresh_attestation(client, merchant: str, **changes: Any) -> m.LicenceAttestation:
    now = client.latest_timestamp()
    fields: dict[str, Any] = {
        "merchant": merchant,
        "status": LicenceStatus.ACTIVE,
        "licensed_since": now - 400 * SECONDS_PER_DAY,
        "flags": 0,
        "checked_at": now,
        "response_hash": sha256(f"registry response {merchant} {now}"),
    }
    fields.update(changes)
    return m.LicenceAttestation(**fields)


def reason(text: str) -> bytes:
    return sha256(f"reason: {text}")


# ---------------------------------------------------------------- apply


def test_a_merchant_applies_with_hashes_of_its_code_name_industry_and_account(desk, client, demo):
    desk.admit_merchant(demo.key.private_key, demo.name)
    uscc, name = sha256(demo.uscc), sha256(demo.name)
    industry, account = m.industry_id(demo.industry), sha256(f"account {demo.uscc}")

    result = client.apply_as_merchant(demo.key.private_key, uscc, name, industry, account)

    assert result.event("MerchantApplied").args == {
        "merchant": demo.address,
        "usccHash": uscc,
        "industry": industry,
        "nameHash": name,
        "receivingAccountHash": account,
    }
    assert result.event("MerchantStatusChanged").args == {
        "merchant": demo.address,
        "previous": MerchantStatus.NONE,
        "current": MerchantStatus.APPLIED,
        "reasonHash": ZERO,
    }
    merchant = client.get_merchant(demo.address)
    assert merchant.status == MerchantStatus.APPLIED
    assert merchant.tier == RiskTier.LOW
    assert merchant.licence == LicenceStatus.UNKNOWN
    assert (merchant.licence_flags, merchant.licensed_since, merchant.licence_checked_at) == (
        0,
        0,
        0,
    )
    assert (merchant.industry, merchant.uscc_hash, merchant.name_hash) == (industry, uscc, name)
    assert merchant.receiving_account_hash == account
    assert not client.can_sell(demo.address)
    assert not client.licence_valid(demo.address)

    evidence = keccak(
        abi_encode(
            ["address", "bytes32", "bytes32", "bytes32", "bytes32"],
            [demo.address, uscc, name, industry, account],
        )
    )
    anchor = client.lookup_evidence(evidence)
    assert anchor.block_number == result.block_number
    assert anchor.kind == EvidenceKind.MERCHANT_APPLIED
    assert anchor.subject == m.address_subject(demo.address)


def test_an_account_without_the_merchant_role_cannot_apply(desk, client, config, backend, reverts):
    bank = config.organisations["bank"].key
    with (
        unchanged(backend, lambda: record(client, bank.address)),
        reverts("MerchantRegistryUnauthorized", bank.address.lower()),
    ):
        desk.apply(bank.private_key, "91350111498229274M", "Bank", "training")


def test_a_non_member_cannot_apply(desk, client, backend, reverts):
    stranger = Account.create()
    fund_accounts(backend.w3, [stranger.address])
    with (
        unchanged(backend, lambda: record(client, stranger.address)),
        reverts("MerchantRegistryUnauthorized", stranger.address.lower()),
    ):
        desk.apply("0x" + bytes(stranger.key).hex(), "x", "Stranger", "training")


def test_a_merchant_cannot_apply_twice(desk, client, applied, backend, reverts):
    with (
        unchanged(backend, lambda: record(client, applied.address)),
        reverts("MerchantRegistryInvalidStatus", applied.address.lower(), MerchantStatus.APPLIED),
    ):
        desk.apply(applied.key.private_key, applied.uscc, "Another name", applied.industry)


@pytest.mark.parametrize("missing", ["usccHash", "nameHash", "industry", "receivingAccountHash"])
def test_an_application_with_a_zero_field_is_refused(desk, client, demo, backend, reverts, missing):
    desk.admit_merchant(demo.key.private_key, demo.name)
    fields = {
        "usccHash": sha256(demo.uscc),
        "nameHash": sha256(demo.name),
        "industry": m.industry_id(demo.industry),
        "receivingAccountHash": sha256("account"),
    }
    fields[missing] = ZERO
    with (
        unchanged(backend, lambda: record(client, demo.address)),
        reverts("MerchantRegistryMissingField", m.label(missing)),
    ):
        client.apply_as_merchant(demo.key.private_key, *fields.values())


# ---------------------------------------------------------------- attestLicence


def test_the_licence_feed_attests_a_licence(desk, client, applied):
    attestation = fresh_attestation(client, applied.address)
    report, signatures = client.make_report(
        m.FEED_LICENCE, m.address_subject(applied.address), attestation, desk.licence_signers
    )

    result = client.attest_licence(desk.licence_oracle_key, attestation, report, signatures)

    assert result.event("LicenceAttested").args == {
        "merchant": applied.address,
        "status": LicenceStatus.ACTIVE,
        "flags": 0,
        "licensedSince": attestation.licensed_since,
        "checkedAt": attestation.checked_at,
        "responseHash": attestation.response_hash,
    }
    assert result.named("MerchantStatusChanged") == []
    merchant = client.get_merchant(applied.address)
    assert merchant.status == MerchantStatus.APPLIED
    assert merchant.licence == LicenceStatus.ACTIVE
    assert merchant.licensed_since == attestation.licensed_since
    assert merchant.licence_checked_at == attestation.checked_at
    assert client.licence_valid(applied.address)
    assert not client.can_sell(applied.address)  # not approved yet

    digest = report.digest(client.hub_domain())
    anchor = client.lookup_evidence(digest)
    assert anchor.kind == EvidenceKind.LICENCE_ATTESTED
    assert anchor.subject == m.address_subject(applied.address)


def test_only_an_oracle_may_attest_a_licence(desk, client, applied, regulator, backend, reverts):
    attestation = fresh_attestation(client, applied.address)
    report, signatures = client.make_report(
        m.FEED_LICENCE, m.address_subject(applied.address), attestation, desk.licence_signers
    )
    with (
        unchanged(backend, lambda: record(client, applied.address)),
        reverts("MerchantRegistryUnauthorized", regulator.address.lower()),
    ):
        client.attest_licence(regulator.private_key, attestation, report, signatures)


def test_a_licence_of_a_merchant_that_never_applied_is_refused(
    desk, client, demo, backend, reverts
):
    with (
        unchanged(backend, lambda: record(client, demo.address)),
        reverts("MerchantRegistryInvalidStatus", demo.address.lower(), MerchantStatus.NONE),
    ):
        desk.attest_licence(demo.address)


@pytest.mark.parametrize("mismatch", ["feed", "subject", "payload"])
def test_a_licence_report_that_does_not_match_its_attestation_is_refused(
    desk, client, applied, merchant, backend, reverts, mismatch
):
    attestation = fresh_attestation(client, applied.address)
    feed, subject, payload = m.FEED_LICENCE, m.address_subject(applied.address), attestation
    if mismatch == "feed":
        feed = m.FEED_RISK
    elif mismatch == "subject":
        subject = m.address_subject(merchant.address)
    else:
        payload = fresh_attestation(client, applied.address, flags=1)
    report, signatures = client.make_report(feed, subject, payload, desk.licence_signers)
    with (
        unchanged(backend, lambda: record(client, applied.address)),
        reverts("MerchantRegistryReportMismatch", attestation.abi_hash(), payload.abi_hash()),
    ):
        client.attest_licence(desk.licence_oracle_key, attestation, report, signatures)


# ---------------------------------------------------------------- approve


def test_regulator_approves_a_licensed_merchant(client, licensed, regulator):
    result = client.approve_merchant(regulator.private_key, licensed.address, reason("approve"))

    assert result.event("MerchantStatusChanged").args == {
        "merchant": licensed.address,
        "previous": MerchantStatus.APPLIED,
        "current": MerchantStatus.APPROVED,
        "reasonHash": reason("approve"),
    }
    assert client.get_merchant(licensed.address).status == MerchantStatus.APPROVED
    assert client.can_sell(licensed.address)
    anchored = [e.args for e in result.named("EvidenceAnchored")]
    assert [a["kind"] for a in anchored] == [EvidenceKind.MERCHANT_STATUS_CHANGED]


@pytest.mark.parametrize(
    ("licence", "flags"),
    [
        (LicenceStatus.REVOKED, 0),
        (LicenceStatus.CANCELLED, 0),
        (LicenceStatus.IN_DEREGISTRATION, 0),
        (LicenceStatus.ACTIVE, m.LicenceFlag.ABNORMAL_OPERATIONS),
        (LicenceStatus.ACTIVE, m.LicenceFlag.DISHONEST_DEBTOR),
        (LicenceStatus.ACTIVE, m.LicenceFlag.NAME_MISMATCH),
        (LicenceStatus.ACTIVE, m.LicenceFlag.SCOPE_MISMATCH),
    ],
    ids=["revoked", "cancelled", "deregistering", "abnormal", "debtor", "name", "scope"],
)
def test_approval_is_refused_for_a_failing_licence(
    desk, client, applied, regulator, backend, reverts, licence, flags
):
    since = days_ago(client, 400)
    desk.attest_licence(applied.address, status=licence, flags=flags, licensed_since=since)
    assert not client.licence_valid(applied.address)
    with (
        unchanged(backend, lambda: record(client, applied.address)),
        reverts("MerchantRegistryLicenceNotValid", applied.address.lower(), licence, flags, since),
    ):
        client.approve_merchant(regulator.private_key, applied.address)


def test_approval_is_refused_for_a_licence_younger_than_the_minimum_age(
    desk, client, applied, regulator, backend, reverts
):
    since = days_ago(client, 30)
    desk.attest_licence(applied.address, licensed_since=since)
    with (
        unchanged(backend, lambda: record(client, applied.address)),
        reverts(
            "MerchantRegistryLicenceNotValid",
            applied.address.lower(),
            LicenceStatus.ACTIVE,
            0,
            since,
        ),
    ):
        client.approve_merchant(regulator.private_key, applied.address)


def test_approval_is_refused_without_any_licence_attestation(
    client, applied, regulator, backend, reverts
):
    with (
        unchanged(backend, lambda: record(client, applied.address)),
        reverts(
            "MerchantRegistryLicenceNotValid",
            applied.address.lower(),
            LicenceStatus.UNKNOWN,
            0,
            0,
        ),
    ):
        client.approve_merchant(regulator.private_key, applied.address)


def test_approving_an_unknown_merchant_is_refused(client, demo, regulator, backend, reverts):
    with (
        unchanged(backend, lambda: record(client, demo.address)),
        reverts("MerchantRegistryInvalidStatus", demo.address.lower(), MerchantStatus.NONE),
    ):
        client.approve_merchant(regulator.private_key, demo.address)


def test_approving_an_approved_merchant_is_refused(client, merchant, regulator, backend, reverts):
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts("MerchantRegistryInvalidStatus", merchant.address.lower(), MerchantStatus.APPROVED),
    ):
        client.approve_merchant(regulator.private_key, merchant.address)


def test_a_non_regulator_cannot_approve(client, licensed, config, backend, reverts):
    operator = config.organisations["operator"].key
    with (
        unchanged(backend, lambda: record(client, licensed.address)),
        reverts("MerchantRegistryUnauthorized", operator.address.lower()),
    ):
        client.approve_merchant(operator.private_key, licensed.address)


# ---------------------------------------------------------------- licence re-checks


def test_a_revoked_licence_suspends_an_approved_merchant_at_once(desk, client, merchant):
    assert client.can_sell(merchant.address)

    result = desk.attest_licence(merchant.address, status=LicenceStatus.REVOKED)

    attested = result.event("LicenceAttested").args
    assert attested["status"] == LicenceStatus.REVOKED
    assert result.event("MerchantStatusChanged").args == {
        "merchant": merchant.address,
        "previous": MerchantStatus.APPROVED,
        "current": MerchantStatus.SUSPENDED,
        "reasonHash": attested["responseHash"],
    }
    assert client.get_merchant(merchant.address).status == MerchantStatus.SUSPENDED
    assert not client.can_sell(merchant.address)


def test_a_flagged_licence_suspends_an_approved_merchant_at_once(desk, client, merchant):
    result = desk.attest_licence(merchant.address, flags=m.LicenceFlag.DISHONEST_DEBTOR)
    assert result.event("MerchantStatusChanged").args["current"] == MerchantStatus.SUSPENDED
    assert not client.can_sell(merchant.address)


def test_a_valid_licence_re_check_leaves_an_approved_merchant_selling(desk, client, merchant):
    result = desk.attest_licence(merchant.address)
    assert result.named("MerchantStatusChanged") == []
    assert client.get_merchant(merchant.address).status == MerchantStatus.APPROVED
    assert client.can_sell(merchant.address)


def test_a_failing_licence_of_an_applied_merchant_changes_no_status(desk, client, applied):
    result = desk.attest_licence(applied.address, status=LicenceStatus.REVOKED)
    assert result.named("MerchantStatusChanged") == []
    assert client.get_merchant(applied.address).status == MerchantStatus.APPLIED


def test_a_suspended_merchant_with_a_revoked_licence_cannot_be_reinstated(
    desk, client, merchant, regulator, backend, reverts
):
    desk.attest_licence(merchant.address, status=LicenceStatus.REVOKED)
    merchant_record = client.get_merchant(merchant.address)
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts(
            "MerchantRegistryLicenceNotValid",
            merchant.address.lower(),
            LicenceStatus.REVOKED,
            0,
            merchant_record.licensed_since,
        ),
    ):
        client.approve_merchant(regulator.private_key, merchant.address)

    desk.attest_licence(merchant.address)
    client.approve_merchant(regulator.private_key, merchant.address)
    assert client.can_sell(merchant.address)


# ---------------------------------------------------------------- suspend / revoke / default


def test_regulator_suspends_and_reinstates_a_merchant(client, merchant, regulator):
    result = client.suspend_merchant(regulator.private_key, merchant.address, reason("suspend"))
    assert result.event("MerchantStatusChanged").args == {
        "merchant": merchant.address,
        "previous": MerchantStatus.APPROVED,
        "current": MerchantStatus.SUSPENDED,
        "reasonHash": reason("suspend"),
    }
    assert not client.can_sell(merchant.address)

    result = client.approve_merchant(regulator.private_key, merchant.address, reason("again"))
    assert result.event("MerchantStatusChanged").args == {
        "merchant": merchant.address,
        "previous": MerchantStatus.SUSPENDED,
        "current": MerchantStatus.APPROVED,
        "reasonHash": reason("again"),
    }
    assert client.can_sell(merchant.address)


@pytest.mark.parametrize("state", ["applied", "suspended", "unknown"])
def test_only_an_approved_merchant_can_be_suspended(
    desk, client, merchant, applied, demo, regulator, backend, reverts, state
):
    if state == "applied":
        target, status = applied.address, MerchantStatus.APPLIED
    elif state == "suspended":
        client.suspend_merchant(regulator.private_key, merchant.address)
        target, status = merchant.address, MerchantStatus.SUSPENDED
    else:
        target, status = Account.create().address, MerchantStatus.NONE
    with (
        unchanged(backend, lambda: record(client, target)),
        reverts("MerchantRegistryInvalidStatus", target.lower(), status),
    ):
        client.suspend_merchant(regulator.private_key, target)


def _bring_to(client, regulator, merchant_address: str, state: str) -> None:
    if state in ("suspended", "revoked-from-suspended"):
        client.suspend_merchant(regulator.private_key, merchant_address)
    if state in ("revoked", "revoked-from-suspended"):
        client.revoke_merchant(regulator.private_key, merchant_address)


@pytest.mark.parametrize(
    ("state", "previous"),
    [("approved", MerchantStatus.APPROVED), ("suspended", MerchantStatus.SUSPENDED)],
)
def test_regulator_revokes_an_approved_or_suspended_merchant(
    client, merchant, regulator, state, previous
):
    _bring_to(client, regulator, merchant.address, state)
    result = client.revoke_merchant(regulator.private_key, merchant.address, reason("revoke"))
    assert result.event("MerchantStatusChanged").args == {
        "merchant": merchant.address,
        "previous": previous,
        "current": MerchantStatus.REVOKED,
        "reasonHash": reason("revoke"),
    }
    assert client.get_merchant(merchant.address).status == MerchantStatus.REVOKED
    assert not client.can_sell(merchant.address)


def test_regulator_revokes_an_applied_merchant(client, applied, regulator):
    result = client.revoke_merchant(regulator.private_key, applied.address)
    assert result.event("MerchantStatusChanged").args["previous"] == MerchantStatus.APPLIED
    assert client.get_merchant(applied.address).status == MerchantStatus.REVOKED


@pytest.mark.parametrize("state", ["revoked", "defaulted", "unknown"])
def test_revoking_a_revoked_defaulted_or_unknown_merchant_is_refused(
    client, merchant, regulator, backend, reverts, state
):
    target = merchant.address
    if state == "revoked":
        client.revoke_merchant(regulator.private_key, target)
        status = MerchantStatus.REVOKED
    elif state == "defaulted":
        client.declare_default(regulator.private_key, target)
        status = MerchantStatus.DEFAULTED
    else:
        target, status = Account.create().address, MerchantStatus.NONE
    with (
        unchanged(backend, lambda: record(client, target)),
        reverts("MerchantRegistryInvalidStatus", target.lower(), status),
    ):
        client.revoke_merchant(regulator.private_key, target)


def test_a_revoked_merchant_cannot_be_reinstated(client, merchant, regulator, backend, reverts):
    client.revoke_merchant(regulator.private_key, merchant.address)
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts("MerchantRegistryInvalidStatus", merchant.address.lower(), MerchantStatus.REVOKED),
    ):
        client.approve_merchant(regulator.private_key, merchant.address)


@pytest.mark.parametrize(
    ("state", "previous"),
    [
        ("approved", MerchantStatus.APPROVED),
        ("suspended", MerchantStatus.SUSPENDED),
        ("revoked", MerchantStatus.REVOKED),
    ],
)
def test_regulator_declares_default_from_approved_suspended_or_revoked(
    client, merchant, regulator, state, previous
):
    _bring_to(client, regulator, merchant.address, state)
    result = client.declare_default(regulator.private_key, merchant.address, reason("default"))
    assert result.event("MerchantStatusChanged").args == {
        "merchant": merchant.address,
        "previous": previous,
        "current": MerchantStatus.DEFAULTED,
        "reasonHash": reason("default"),
    }
    assert client.get_merchant(merchant.address).status == MerchantStatus.DEFAULTED
    assert not client.can_sell(merchant.address)


@pytest.mark.parametrize("state", ["applied", "defaulted", "unknown"])
def test_declaring_default_is_refused_from_applied_defaulted_or_unknown(
    client, merchant, applied, regulator, backend, reverts, state
):
    if state == "applied":
        target, status = applied.address, MerchantStatus.APPLIED
    elif state == "defaulted":
        client.declare_default(regulator.private_key, merchant.address)
        target, status = merchant.address, MerchantStatus.DEFAULTED
    else:
        target, status = Account.create().address, MerchantStatus.NONE
    with (
        unchanged(backend, lambda: record(client, target)),
        reverts("MerchantRegistryInvalidStatus", target.lower(), status),
    ):
        client.declare_default(regulator.private_key, target)


def test_two_identical_status_changes_anchor_distinct_evidence(client, merchant, regulator):
    first = client.suspend_merchant(regulator.private_key, merchant.address)
    client.approve_merchant(regulator.private_key, merchant.address)
    second = client.suspend_merchant(regulator.private_key, merchant.address)
    hashes = {result.event("EvidenceAnchored").args["hash"] for result in (first, second)}
    assert len(hashes) == 2


@pytest.mark.parametrize("action", ["suspend", "revoke", "declare_default", "set_risk_tier"])
def test_a_non_regulator_cannot_change_a_merchants_standing(
    client, merchant, config, backend, reverts, action
):
    bank = config.organisations["bank"].key
    calls = {
        "suspend": lambda: client.suspend_merchant(bank.private_key, merchant.address),
        "revoke": lambda: client.revoke_merchant(bank.private_key, merchant.address),
        "declare_default": lambda: client.declare_default(bank.private_key, merchant.address),
        "set_risk_tier": lambda: client.set_risk_tier(
            bank.private_key, merchant.address, RiskTier.HIGH
        ),
    }
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts("MerchantRegistryUnauthorized", bank.address.lower()),
    ):
        calls[action]()


# ---------------------------------------------------------------- risk tiers


def test_regulator_sets_a_risk_tier_and_the_custody_ratio_follows(client, merchant, regulator):
    assert client.custody_ratio_bps(merchant.address, 3_000) == 3_000
    result = client.set_risk_tier(
        regulator.private_key, merchant.address, RiskTier.MEDIUM, reason("complaints")
    )
    assert result.event("RiskTierChanged").args == {
        "merchant": merchant.address,
        "previous": RiskTier.LOW,
        "current": RiskTier.MEDIUM,
        "score": 0,
    }
    assert client.get_merchant(merchant.address).tier == RiskTier.MEDIUM
    # The larger of the template's minimum and the tier's floor (5000 for medium).
    assert client.custody_ratio_bps(merchant.address, 3_000) == 5_000
    assert client.custody_ratio_bps(merchant.address, 6_500) == 6_500
    assert client.can_sell(merchant.address)

    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.HIGH)
    assert client.custody_ratio_bps(merchant.address, 3_000) == 8_000
    assert client.custody_ratio_bps(merchant.address, 9_000) == 9_000


def test_a_higher_tier_freezes_more_of_a_new_plan(desk, client, merchant, consumer, regulator):
    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.HIGH)
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    funded = desk.fund(agreement_id, signed.terms.total_paid).event("AgreementFunded").args
    assert funded["custodyBps"] == 8_000
    assert funded["frozen"] == 80_000


def test_the_blocked_tier_stops_new_sales(client, merchant, regulator):
    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.BLOCKED)
    assert client.get_merchant(merchant.address).status == MerchantStatus.APPROVED
    assert not client.can_sell(merchant.address)
    assert client.custody_ratio_bps(merchant.address, 3_000) == 10_000

    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.LOW)
    assert client.can_sell(merchant.address)


def test_setting_the_tier_of_an_unknown_merchant_is_refused(
    client, demo, regulator, backend, reverts
):
    with (
        unchanged(backend, lambda: record(client, demo.address)),
        reverts("MerchantRegistryInvalidStatus", demo.address.lower(), MerchantStatus.NONE),
    ):
        client.set_risk_tier(regulator.private_key, demo.address, RiskTier.HIGH)


def test_the_risk_feed_reports_a_tier_with_its_score(desk, client, merchant):
    result = report_risk(desk, merchant.address, RiskTier.BLOCKED, score=910)

    assert result.event("RiskTierChanged").args == {
        "merchant": merchant.address,
        "previous": RiskTier.LOW,
        "current": RiskTier.BLOCKED,
        "score": 910,
    }
    assert result.event("ReportAccepted").args["feed"] == m.FEED_RISK
    assert client.get_merchant(merchant.address).tier == RiskTier.BLOCKED
    assert not client.can_sell(merchant.address)
    anchored = result.event("EvidenceAnchored").args
    assert anchored["kind"] == EvidenceKind.RISK_TIER_CHANGED


def test_only_an_oracle_may_report_risk(desk, client, merchant, regulator, backend, reverts):
    risk = m.RiskReport(merchant.address, RiskTier.HIGH, 700, sha256("signals"))
    report, signatures = client.make_report(
        m.FEED_RISK, m.address_subject(merchant.address), risk, desk.risk_signers
    )
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts("MerchantRegistryUnauthorized", regulator.address.lower()),
    ):
        client.report_risk(regulator.private_key, risk, report, signatures)


def test_a_risk_report_on_the_licence_feed_is_refused(desk, client, merchant, backend, reverts):
    risk = m.RiskReport(merchant.address, RiskTier.HIGH, 700, sha256("signals"))
    report, signatures = client.make_report(
        m.FEED_LICENCE, m.address_subject(merchant.address), risk, desk.licence_signers
    )
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts("MerchantRegistryReportMismatch", risk.abi_hash(), risk.abi_hash()),
    ):
        client.report_risk(desk.risk_oracle_key, risk, report, signatures)


def test_a_risk_report_carrying_another_payload_is_refused(
    desk, client, merchant, backend, reverts
):
    risk = m.RiskReport(merchant.address, RiskTier.LOW, 10, sha256("signals"))
    signed = m.RiskReport(merchant.address, RiskTier.BLOCKED, 990, sha256("signals"))
    report, signatures = client.make_report(
        m.FEED_RISK, m.address_subject(merchant.address), signed, desk.risk_signers
    )
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts("MerchantRegistryReportMismatch", risk.abi_hash(), signed.abi_hash()),
    ):
        client.report_risk(desk.risk_oracle_key, risk, report, signatures)


# ---------------------------------------------------------------- tier floors


def custody_mismatch(desk, merchant: str):
    """The bank's statement disagrees with the book: a custody anomaly raises the floor."""
    day = desk.client.latest_timestamp() // SECONDS_PER_DAY
    return desk.reconcile_custody(merchant, day, 1)


def test_the_risk_feed_cannot_lower_a_tier_the_regulator_blocked(desk, client, merchant, regulator):
    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.BLOCKED)

    result = report_risk(desk, merchant.address, RiskTier.LOW, score=10)

    assert client.get_merchant(merchant.address).tier == RiskTier.BLOCKED
    assert not client.can_sell(merchant.address)
    # The report is still recorded, with its score; the tier it applies is the floor.
    assert result.event("RiskTierChanged").args == {
        "merchant": merchant.address,
        "previous": RiskTier.BLOCKED,
        "current": RiskTier.BLOCKED,
        "score": 10,
    }
    assert client.get_merchant(merchant.address).tier_floor == RiskTier.BLOCKED


def test_the_risk_feed_cannot_lower_a_tier_below_high_after_a_custody_anomaly(
    desk, client, merchant
):
    custody_mismatch(desk, merchant.address)
    assert client.get_merchant(merchant.address).tier == RiskTier.HIGH

    report_risk(desk, merchant.address, RiskTier.LOW, score=10)

    merchant_record = client.get_merchant(merchant.address)
    assert merchant_record.tier == RiskTier.HIGH
    assert client.custody_ratio_bps(merchant.address, 3_000) == 8_000
    assert merchant_record.tier_floor == RiskTier.HIGH


def test_a_custody_anomaly_raises_the_tier_floor_to_high(desk, client, merchant):
    result = custody_mismatch(desk, merchant.address)

    assert result.event("RiskTierFloorChanged").args == {
        "merchant": merchant.address,
        "previous": RiskTier.LOW,
        "current": RiskTier.HIGH,
        "reasonHash": result.event("CustodyAnomalyFlagged").args["reasonHash"],
    }
    assert client.get_merchant(merchant.address).tier_floor == RiskTier.HIGH


def test_a_custody_anomaly_keeps_a_higher_floor(desk, client, merchant, regulator):
    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.BLOCKED)
    result = custody_mismatch(desk, merchant.address)
    assert result.named("RiskTierFloorChanged") == []
    assert client.get_merchant(merchant.address).tier_floor == RiskTier.BLOCKED


def test_the_risk_feed_raises_a_tier_and_lowers_it_no_further_than_the_floor(
    desk, client, merchant, regulator
):
    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.MEDIUM)

    raised = report_risk(desk, merchant.address, RiskTier.BLOCKED, score=950)
    assert raised.event("RiskTierChanged").args["current"] == RiskTier.BLOCKED
    assert raised.named("RiskTierFloorChanged") == []
    assert not client.can_sell(merchant.address)

    lowered = report_risk(desk, merchant.address, RiskTier.LOW, score=20)
    assert lowered.event("RiskTierChanged").args["current"] == RiskTier.MEDIUM
    merchant_record = client.get_merchant(merchant.address)
    assert (merchant_record.tier, merchant_record.tier_floor) == (RiskTier.MEDIUM, RiskTier.MEDIUM)
    assert client.can_sell(merchant.address)


def test_the_regulator_lowers_a_tier_and_its_floor(desk, client, merchant, regulator):
    custody_mismatch(desk, merchant.address)
    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.BLOCKED)

    result = client.set_risk_tier(
        regulator.private_key, merchant.address, RiskTier.LOW, reason("statement was wrong")
    )

    assert result.event("RiskTierFloorChanged").args == {
        "merchant": merchant.address,
        "previous": RiskTier.BLOCKED,
        "current": RiskTier.LOW,
        "reasonHash": reason("statement was wrong"),
    }
    assert result.event("RiskTierChanged").args["current"] == RiskTier.LOW
    merchant_record = client.get_merchant(merchant.address)
    assert (merchant_record.tier, merchant_record.tier_floor) == (RiskTier.LOW, RiskTier.LOW)
    assert client.can_sell(merchant.address)
    # With the floor lowered, the feed decides again, from Low.
    report_risk(desk, merchant.address, RiskTier.MEDIUM)
    assert client.get_merchant(merchant.address).tier == RiskTier.MEDIUM
    report_risk(desk, merchant.address, RiskTier.LOW)
    assert client.get_merchant(merchant.address).tier == RiskTier.LOW


# ---------------------------------------------------------------- receiving account


def test_a_merchant_changes_its_receiving_account(client, merchant):
    before = client.get_merchant(merchant.address).receiving_account_hash
    new_account = sha256("new receiving account")

    result = client.change_receiving_account(merchant.key, new_account)

    assert result.event("ReceivingAccountChanged").args == {
        "merchant": merchant.address,
        "previousHash": before,
        "currentHash": new_account,
    }
    assert client.get_merchant(merchant.address).receiving_account_hash == new_account


def test_a_zero_receiving_account_is_refused(client, merchant, backend, reverts):
    with (
        unchanged(backend, lambda: record(client, merchant.address)),
        reverts("MerchantRegistryMissingField", m.label("receivingAccountHash")),
    ):
        client.change_receiving_account(merchant.key, ZERO)


def test_a_merchant_that_never_applied_cannot_change_its_account(
    desk, client, demo, backend, reverts
):
    desk.admit_merchant(demo.key.private_key, demo.name)
    with (
        unchanged(backend, lambda: record(client, demo.address)),
        reverts("MerchantRegistryInvalidStatus", demo.address.lower(), MerchantStatus.NONE),
    ):
        client.change_receiving_account(demo.key.private_key, sha256("account"))


def test_a_non_merchant_cannot_change_a_receiving_account(client, config, backend, reverts):
    operator = config.organisations["operator"].key
    with (
        unchanged(backend, lambda: record(client, operator.address)),
        reverts("MerchantRegistryUnauthorized", operator.address.lower()),
    ):
        client.change_receiving_account(operator.private_key, sha256("account"))


# ---------------------------------------------------------------- custody floors


def floors(client) -> list[int]:
    return [client.custody_floor(tier) for tier in RiskTier]


def test_deployment_set_the_configured_custody_floors(client, config):
    configured = config.rules.custody_floor_bps
    assert floors(client) == [
        configured.low,
        configured.medium,
        configured.high,
        configured.blocked,
    ]


def test_regulator_sets_a_custody_floor(client, merchant, regulator):
    result = client.set_custody_floor(regulator.private_key, RiskTier.MEDIUM, 6_000)
    assert result.event("CustodyFloorSet").args == {"tier": RiskTier.MEDIUM, "bps": 6_000}
    assert floors(client) == [3_000, 6_000, 8_000, 10_000]

    client.set_risk_tier(regulator.private_key, merchant.address, RiskTier.MEDIUM)
    assert client.custody_ratio_bps(merchant.address, 3_000) == 6_000


def test_floors_may_equal_their_neighbours(client, regulator):
    client.set_custody_floor(regulator.private_key, RiskTier.MEDIUM, 3_000)
    client.set_custody_floor(regulator.private_key, RiskTier.HIGH, 10_000)
    client.set_custody_floor(regulator.private_key, RiskTier.LOW, 0)
    assert floors(client) == [0, 3_000, 10_000, 10_000]


@pytest.mark.parametrize(
    ("tier", "bps"),
    [
        (RiskTier.MEDIUM, 2_999),  # below low
        (RiskTier.MEDIUM, 8_001),  # above high
        (RiskTier.LOW, 5_001),  # above medium
        (RiskTier.BLOCKED, 7_999),  # below high
        (RiskTier.BLOCKED, 10_001),  # above 100 %
    ],
    ids=["medium<low", "medium>high", "low>medium", "blocked<high", "blocked>100%"],
)
def test_a_floor_breaking_the_order_of_tiers_is_refused(
    client, regulator, backend, reverts, tier, bps
):
    with (
        unchanged(backend, lambda: floors(client)),
        reverts("MerchantRegistryInvalidCustodyFloor", tier, bps),
    ):
        client.set_custody_floor(regulator.private_key, tier, bps)


def test_a_non_regulator_cannot_set_a_custody_floor(client, config, backend, reverts):
    bank = config.organisations["bank"].key
    with (
        unchanged(backend, lambda: floors(client)),
        reverts("MerchantRegistryUnauthorized", bank.address.lower()),
    ):
        client.set_custody_floor(bank.private_key, RiskTier.MEDIUM, 6_000)


# ---------------------------------------------------------------- minimum licence age


def min_licence_age(client) -> int:
    return int(client.call(client.merchants.functions.minLicenceAge()))


def test_regulator_sets_the_minimum_licence_age(desk, client, applied, regulator, config):
    assert min_licence_age(client) == config.rules.min_licence_age_days * SECONDS_PER_DAY
    desk.attest_licence(applied.address, licensed_since=days_ago(client, 30))
    assert not client.licence_valid(applied.address)

    result = client.set_min_licence_age(regulator.private_key, 20 * SECONDS_PER_DAY)

    assert result.event("MinLicenceAgeSet").args == {"secondsRequired": 20 * SECONDS_PER_DAY}
    assert min_licence_age(client) == 20 * SECONDS_PER_DAY
    assert client.licence_valid(applied.address)
    client.approve_merchant(regulator.private_key, applied.address)
    assert client.can_sell(applied.address)


def test_raising_the_minimum_licence_age_stops_a_young_licence_from_selling(
    client, merchant, regulator
):
    assert client.can_sell(merchant.address)
    client.set_min_licence_age(regulator.private_key, 1_000 * SECONDS_PER_DAY)
    assert not client.licence_valid(merchant.address)
    assert not client.can_sell(merchant.address)


def test_a_non_regulator_cannot_set_the_minimum_licence_age(client, config, backend, reverts):
    oracle = config.organisations["licence_feed"].key
    with (
        unchanged(backend, lambda: min_licence_age(client)),
        reverts("MerchantRegistryUnauthorized", oracle.address.lower()),
    ):
        client.set_min_licence_age(oracle.private_key, 0)


def test_the_minimum_licence_age_may_be_at_most_a_century(client, regulator):
    century = 36_500 * SECONDS_PER_DAY
    result = client.set_min_licence_age(regulator.private_key, century)
    assert result.event("MinLicenceAgeSet").args == {"secondsRequired": century}
    assert min_licence_age(client) == century


@pytest.mark.parametrize(
    "seconds", [36_500 * SECONDS_PER_DAY + 1, 2**64 - 1], ids=["century+1s", "uint64-max"]
)
def test_a_minimum_licence_age_above_a_century_is_refused(
    client, merchant, regulator, backend, reverts, seconds
):
    with (
        unchanged(backend, lambda: (min_licence_age(client), client.can_sell(merchant.address))),
        reverts("MerchantRegistryInvalidLicenceAge", seconds),
    ):
        client.set_min_licence_age(regulator.private_key, seconds)


def test_a_licence_dated_at_the_end_of_time_is_not_valid(desk, client, applied):
    desk.attest_licence(applied.address, licensed_since=2**64 - 1)
    assert client.get_merchant(applied.address).licensed_since == 2**64 - 1
    assert not client.licence_valid(applied.address)


# ---------------------------------------------------------------- licence check validity


def licence_validity(client) -> int:
    return int(client.call(client.merchants.functions.licenceValidity()))


def test_one_licence_check_does_not_let_a_merchant_sell_forever(client, merchant, backend):
    assert client.can_sell(merchant.address)
    backend.advance_time(367 * SECONDS_PER_DAY)  # longer than any validity the regulator may set
    assert not client.licence_valid(merchant.address)
    assert not client.can_sell(merchant.address)


def test_a_licence_check_stops_sales_once_older_than_its_validity(
    desk, client, merchant, backend, config
):
    validity = config.rules.licence_validity_days * SECONDS_PER_DAY
    assert licence_validity(client) == validity
    checked_at = client.get_merchant(merchant.address).licence_checked_at

    backend.advance_time(checked_at + validity - 3_600 - client.latest_timestamp())
    assert client.can_sell(merchant.address)

    backend.advance_time(2 * 3_600)
    assert not client.licence_valid(merchant.address)
    assert not client.can_sell(merchant.address)
    # Expired, not failed: the status stays; the next good check lets it sell again.
    assert client.get_merchant(merchant.address).status == MerchantStatus.APPROVED

    result = desk.attest_licence(merchant.address)
    assert result.named("MerchantStatusChanged") == []
    assert client.can_sell(merchant.address)


def test_an_attestation_checked_long_ago_does_not_suspend_an_approved_merchant(
    desk, client, merchant, regulator
):
    stale = fresh_attestation(client, merchant.address, checked_at=days_ago(client, 2 * 366))
    report, signatures = client.make_report(
        m.FEED_LICENCE, m.address_subject(merchant.address), stale, desk.licence_signers
    )
    result = client.attest_licence(desk.licence_oracle_key, stale, report, signatures)
    assert result.named("MerchantStatusChanged") == []
    assert client.get_merchant(merchant.address).status == MerchantStatus.APPROVED
    assert not client.can_sell(merchant.address)


def test_approval_is_refused_for_an_expired_licence_check(
    client, licensed, regulator, backend, reverts
):
    checked_at = client.get_merchant(licensed.address).licence_checked_at
    expires_at = checked_at + licence_validity(client)
    backend.advance_time(expires_at + 60 - client.latest_timestamp())
    with (
        unchanged(backend, lambda: record(client, licensed.address)),
        reverts(
            "MerchantRegistryLicenceCheckExpired", licensed.address.lower(), checked_at, expires_at
        ),
    ):
        client.approve_merchant(regulator.private_key, licensed.address)


def test_regulator_sets_the_licence_validity(client, merchant, regulator):
    result = client.set_licence_validity(regulator.private_key, 7 * SECONDS_PER_DAY)

    assert result.event("LicenceValiditySet").args == {"secondsValid": 7 * SECONDS_PER_DAY}
    assert licence_validity(client) == 7 * SECONDS_PER_DAY
    assert client.can_sell(merchant.address)


def test_shortening_the_licence_validity_stops_a_merchant_checked_too_long_ago(
    client, merchant, regulator, backend
):
    backend.advance_time(2 * SECONDS_PER_DAY)
    assert client.can_sell(merchant.address)
    client.set_licence_validity(regulator.private_key, SECONDS_PER_DAY)
    assert not client.can_sell(merchant.address)


def test_a_non_regulator_cannot_set_the_licence_validity(client, config, backend, reverts):
    oracle = config.organisations["licence_feed"].key
    with (
        unchanged(backend, lambda: licence_validity(client)),
        reverts("MerchantRegistryUnauthorized", oracle.address.lower()),
    ):
        client.set_licence_validity(oracle.private_key, SECONDS_PER_DAY)


def test_the_licence_validity_may_be_one_second_to_a_leap_year(client, regulator):
    for seconds in (1, 366 * SECONDS_PER_DAY):
        result = client.set_licence_validity(regulator.private_key, seconds)
        assert result.event("LicenceValiditySet").args == {"secondsValid": seconds}
        assert licence_validity(client) == seconds


@pytest.mark.parametrize(
    "seconds", [0, 366 * SECONDS_PER_DAY + 1, 2**64 - 1], ids=["zero", "leap-year+1s", "uint64-max"]
)
def test_a_licence_validity_of_zero_or_above_a_leap_year_is_refused(
    client, regulator, backend, reverts, seconds
):
    with (
        unchanged(backend, lambda: licence_validity(client)),
        reverts("MerchantRegistryInvalidLicenceValidity", seconds),
    ):
        client.set_licence_validity(regulator.private_key, seconds)
