"""OracleHub: k-of-n signed reports, exercised through the contracts that consume them.

Only registered consumers (MerchantRegistry, AgreementBook) may spend a report, so most tests
submit licence attestations through ``MerchantRegistry.attestLicence`` and bank reports through
``AgreementBook.confirmFunding``; a few register a plain account as consumer to reach the
hub's own checks directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak, to_canonical_address

from chain import messages as m
from chain.deploy import fund_accounts
from chain.scenario import SECONDS_PER_DAY, sha256
from chain.views import FeedConfig

FEED = m.FEED_LICENCE
UNKNOWN_FEED = keccak(text="yufu.feed.weather")


@contextlib.contextmanager
def unchanged(backend: Any, read: Callable[[], Any]) -> Iterator[None]:
    """Assert the block enclosed mined nothing and left ``read()`` as it was."""
    before = read()
    block = backend.w3.eth.block_number
    yield
    assert backend.w3.eth.block_number == block
    assert read() == before


@pytest.fixture
def client(deployed):
    return deployed.client


@pytest.fixture
def regulator(config):
    return config.organisations["regulator"].key


@pytest.fixture
def stranger(backend):
    account = Account.create()
    fund_accounts(backend.w3, [account.address])
    return account


def key_of(account: Any) -> str:
    return "0x" + bytes(account.key).hex()


def by_address(keys: Sequence[str]) -> list[str]:
    """Signer keys in ascending address order."""
    return sorted(keys, key=lambda key: to_canonical_address(Account.from_key(key).address))


def address_of(key: str) -> str:
    return Account.from_key(key).address


def licence_attestation(client, merchant: str) -> m.LicenceAttestation:
    now = client.latest_timestamp()
    return m.LicenceAttestation(
        merchant=merchant,
        status=m.LicenceStatus.ACTIVE,
        licensed_since=now - 400 * SECONDS_PER_DAY,
        flags=0,
        checked_at=now,
        response_hash=sha256(f"registry response {merchant} {now}"),
    )


def signed_attestation(
    desk, merchant: str, signer_keys: Sequence[str] | None = None, **report_fields: Any
) -> tuple[m.LicenceAttestation, m.OracleReport, list[bytes]]:
    """A licence attestation and a report on it, signed by ``signer_keys`` (all by default)."""
    attestation = licence_attestation(desk.client, merchant)
    report, signatures = desk.client.make_report(
        FEED,
        m.address_subject(merchant),
        attestation,
        desk.licence_signers if signer_keys is None else signer_keys,
        **report_fields,
    )
    return attestation, report, signatures


def submit(desk, attestation, report, signatures):
    return desk.client.attest_licence(desk.licence_oracle_key, attestation, report, signatures)


def hub_state(client, merchant: str) -> tuple[Any, ...]:
    return (
        client.last_sequence(FEED, m.address_subject(merchant)),
        client.get_merchant(merchant),
        client.feed_config(FEED),
    )


# ---------------------------------------------------------------- configureFeed


def test_deployment_configured_each_feed_with_its_signers(client, config):
    for handle, feed in (
        ("bank_feed", m.FEED_BANK),
        ("licence_feed", m.FEED_LICENCE),
        ("risk_feed", m.FEED_RISK),
    ):
        configured = client.feed_config(feed)
        expected = config.oracle_feeds[handle]
        assert sorted(configured.signers) == sorted(expected.signer_addresses)
        assert configured.threshold == expected.threshold
        assert configured.version == 1
    assert client.call(client.oracle_hub.functions.maxReportAge()) == (
        config.rules.oracle_max_report_age_seconds
    )


def test_regulator_reconfigures_a_feed_and_the_version_goes_up(client, regulator):
    keys = by_address([key_of(Account.create()) for _ in range(4)])
    signers = [address_of(key) for key in keys]

    result = client.configure_feed(regulator.private_key, FEED, signers, 3)

    assert result.event("FeedConfigured").args == {
        "feed": FEED,
        "version": 2,
        "signers": signers,
        "threshold": 3,
    }
    assert client.feed_config(FEED) == FeedConfig(tuple(signers), 3, 2)


def test_configuring_a_new_feed_starts_at_version_one(client, regulator):
    signer = Account.create().address
    result = client.configure_feed(regulator.private_key, UNKNOWN_FEED, [signer], 1)
    assert result.event("FeedConfigured").args["version"] == 1
    assert client.feed_config(UNKNOWN_FEED) == FeedConfig((signer,), 1, 1)


def _configure_raw(client, key, feed, signers, threshold):
    """configureFeed without the client's sorting."""
    return client.transact(key, client.oracle_hub.functions.configureFeed(feed, signers, threshold))


def test_unsorted_signers_are_refused(client, regulator, backend, reverts):
    low, high = sorted(
        (Account.create().address for _ in range(2)), key=lambda a: to_canonical_address(a)
    )
    with (
        unchanged(backend, lambda: client.feed_config(FEED)),
        reverts("OracleHubSignersNotSorted", 1, low.lower()),
    ):
        _configure_raw(client, regulator.private_key, FEED, [high, low], 1)


def test_a_repeated_signer_is_refused(client, regulator, backend, reverts):
    signer = Account.create().address
    with (
        unchanged(backend, lambda: client.feed_config(FEED)),
        reverts("OracleHubSignersNotSorted", 1, signer.lower()),
    ):
        _configure_raw(client, regulator.private_key, FEED, [signer, signer], 1)


def test_the_zero_address_as_signer_is_refused(client, regulator, backend, reverts):
    zero = "0x" + "00" * 20
    with (
        unchanged(backend, lambda: client.feed_config(FEED)),
        reverts("OracleHubSignersNotSorted", 0, zero),
    ):
        _configure_raw(client, regulator.private_key, FEED, [zero, Account.create().address], 1)


@pytest.mark.parametrize("threshold", [0, 4])
def test_threshold_zero_or_above_the_signer_count_is_refused(
    client, regulator, backend, reverts, threshold
):
    signers = [Account.create().address for _ in range(3)]
    with (
        unchanged(backend, lambda: client.feed_config(FEED)),
        reverts("OracleHubInvalidThreshold", threshold, 3),
    ):
        client.configure_feed(regulator.private_key, FEED, signers, threshold)


def test_a_non_regulator_cannot_configure_a_feed(client, config, backend, reverts):
    oracle = config.organisations["licence_feed"].key
    with (
        unchanged(backend, lambda: client.feed_config(FEED)),
        reverts("OracleHubUnauthorized", oracle.address.lower()),
    ):
        client.configure_feed(oracle.private_key, FEED, [Account.create().address], 1)


# ---------------------------------------------------------------- setConsumer / setMaxReportAge


def max_age(client) -> int:
    return int(client.call(client.oracle_hub.functions.maxReportAge()))


def test_regulator_sets_the_maximum_report_age(client, regulator):
    result = client.set_max_report_age(regulator.private_key, 600)
    assert result.event("MaxReportAgeSet").args == {"maxAge": 600}
    assert max_age(client) == 600


def test_a_zero_maximum_report_age_is_refused(client, regulator, backend, reverts):
    with unchanged(backend, lambda: max_age(client)), reverts("OracleHubInvalidMaxAge", 0):
        client.set_max_report_age(regulator.private_key, 0)


def test_a_non_regulator_cannot_set_the_maximum_report_age(client, config, backend, reverts):
    bank = config.organisations["bank"].key
    with (
        unchanged(backend, lambda: max_age(client)),
        reverts("OracleHubUnauthorized", bank.address.lower()),
    ):
        client.set_max_report_age(bank.private_key, 600)


def test_regulator_sets_a_consumer(client, regulator, stranger):
    result = client.set_report_consumer(regulator.private_key, stranger.address, True)
    assert result.event("ConsumerSet").args == {"consumer": stranger.address, "allowed": True}
    result = client.set_report_consumer(regulator.private_key, stranger.address, False)
    assert result.event("ConsumerSet").args == {"consumer": stranger.address, "allowed": False}


def test_a_non_regulator_cannot_set_a_consumer(desk, config, stranger, backend, reverts):
    client = desk.client
    bank = config.organisations["bank"].key
    with (
        unchanged(backend, lambda: None),
        reverts("OracleHubUnauthorized", bank.address.lower()),
    ):
        client.set_report_consumer(bank.private_key, stranger.address, True)
    # The stranger is still no consumer.
    payload = m.RiskReport(stranger.address, m.RiskTier.LOW, 1, bytes(32))
    report, signatures = client.make_report(m.FEED_RISK, bytes(32), payload, desk.risk_signers)
    with reverts("OracleHubUnauthorized", stranger.address.lower()):
        consume_directly(client, key_of(stranger), report, signatures)


# ---------------------------------------------------------------- consume: who


def consume_directly(client, sender_key, report, signatures):
    function = client.oracle_hub.functions.consume(report.as_abi(), list(signatures))
    return client.transact(sender_key, function)


def test_a_non_consumer_cannot_consume_a_valid_report(desk, merchant, regulator, backend, reverts):
    client = desk.client
    _, report, signatures = signed_attestation(desk, merchant.address)
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubUnauthorized", regulator.address.lower()),
    ):
        consume_directly(client, regulator.private_key, report, signatures)
    # The report was not burnt: its consumer still accepts it.
    submit(desk, *signed_attestation(desk, merchant.address))


def test_a_registered_account_consumes_directly_until_deregistered(
    desk, regulator, stranger, backend, reverts
):
    if backend.name == "yufu-node":
        pytest.skip("a non-member cannot send transactions on the permissioned Yufu node")
    client = desk.client
    client.set_report_consumer(regulator.private_key, stranger.address, True)
    subject = keccak(text="direct subject")
    payload = m.RiskReport(stranger.address, m.RiskTier.LOW, 1, bytes(32))
    report, signatures = client.make_report(m.FEED_RISK, subject, payload, desk.risk_signers)

    result = consume_directly(client, key_of(stranger), report, signatures)

    digest = report.digest(client.hub_domain())
    assert result.event("ReportAccepted").args == {
        "feed": m.FEED_RISK,
        "subject": subject,
        "sequence": 1,
        "digest": digest,
        "consumer": stranger.address,
    }
    assert client.last_sequence(m.FEED_RISK, subject) == 1

    client.set_report_consumer(regulator.private_key, stranger.address, False)
    report, signatures = client.make_report(m.FEED_RISK, subject, payload, desk.risk_signers)
    with (
        unchanged(backend, lambda: client.last_sequence(m.FEED_RISK, subject)),
        reverts("OracleHubUnauthorized", stranger.address.lower()),
    ):
        consume_directly(client, key_of(stranger), report, signatures)


def test_a_report_of_an_unconfigured_feed_is_refused(desk, regulator, stranger, backend, reverts):
    client = desk.client
    client.set_report_consumer(regulator.private_key, stranger.address, True)
    subject = keccak(text="subject")
    report = m.OracleReport(
        UNKNOWN_FEED, subject, 1, client.latest_timestamp(), 1, keccak(text="payload")
    )
    signatures = report.sign_by(desk.risk_signers, client.hub_domain())
    with (
        unchanged(backend, lambda: client.last_sequence(UNKNOWN_FEED, subject)),
        reverts("OracleHubUnknownFeed", UNKNOWN_FEED),
    ):
        consume_directly(client, key_of(stranger), report, signatures)


# ---------------------------------------------------------------- consume: signatures


def test_two_of_three_signatures_are_accepted(desk, merchant):
    client = desk.client
    keys = by_address(desk.licence_signers)[1:]
    attestation, report, signatures = signed_attestation(desk, merchant.address, keys)

    result = submit(desk, attestation, report, signatures)

    accepted = result.event("ReportAccepted").args
    assert accepted == {
        "feed": FEED,
        "subject": m.address_subject(merchant.address),
        "sequence": report.sequence,
        "digest": report.digest(client.hub_domain()),
        "consumer": client.addresses.merchants,
    }
    assert (
        client.call(client.oracle_hub.functions.reportDigest(report.as_abi()))
        == (accepted["digest"])
    )
    assert client.last_sequence(FEED, m.address_subject(merchant.address)) == report.sequence


def test_all_three_signatures_are_accepted(desk, merchant):
    attestation, report, signatures = signed_attestation(desk, merchant.address)
    assert len(signatures) == 3
    result = submit(desk, attestation, report, signatures)
    assert result.event("ReportAccepted").args["sequence"] == report.sequence


def test_one_of_three_signatures_is_refused(desk, merchant, backend, reverts):
    keys = by_address(desk.licence_signers)[:1]
    attestation, report, signatures = signed_attestation(desk, merchant.address, keys)
    with (
        unchanged(backend, lambda: hub_state(desk.client, merchant.address)),
        reverts("OracleHubInsufficientSignatures", 1, 2),
    ):
        submit(desk, attestation, report, signatures)


def test_no_signatures_are_refused(desk, merchant, backend, reverts):
    attestation, report, _ = signed_attestation(desk, merchant.address)
    with (
        unchanged(backend, lambda: hub_state(desk.client, merchant.address)),
        reverts("OracleHubInsufficientSignatures", 0, 2),
    ):
        submit(desk, attestation, report, [])


def test_a_bank_report_with_one_signature_does_not_fund_an_agreement(
    desk, merchant, consumer, backend, reverts
):
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    one_signer = by_address(desk.bank_signers)[:1]
    with (
        unchanged(backend, lambda: desk.client.get_agreement(agreement_id)),
        reverts("OracleHubInsufficientSignatures", 1, 2),
    ):
        desk.fund(agreement_id, signed.terms.total_paid, signer_keys=one_signer)

    result = desk.fund(agreement_id, signed.terms.total_paid, signer_keys=desk.bank_signers[:2])
    assert result.event("ReportAccepted").args["consumer"] == desk.client.addresses.book
    assert desk.client.get_agreement(agreement_id).state == m.AgreementState.ACTIVE


def test_a_signature_by_someone_outside_the_signer_set_is_refused(desk, merchant, backend, reverts):
    outsider = key_of(Account.create())
    keys = [outsider, *desk.licence_signers[:2]]
    attestation, report, signatures = signed_attestation(desk, merchant.address, keys)
    index = by_address(keys).index(outsider)
    with (
        unchanged(backend, lambda: hub_state(desk.client, merchant.address)),
        reverts("OracleHubUnknownSigner", index, address_of(outsider).lower()),
    ):
        submit(desk, attestation, report, signatures)


def test_signatures_out_of_signer_order_are_refused(desk, merchant, backend, reverts):
    keys = by_address(desk.licence_signers)[:2]
    attestation, report, signatures = signed_attestation(desk, merchant.address, keys)
    with (
        unchanged(backend, lambda: hub_state(desk.client, merchant.address)),
        reverts("OracleHubSignaturesNotSorted", 1, address_of(keys[0]).lower()),
    ):
        submit(desk, attestation, report, list(reversed(signatures)))


def test_the_same_signer_twice_is_refused(desk, merchant, backend, reverts):
    key = by_address(desk.licence_signers)[0]
    attestation, report, signatures = signed_attestation(desk, merchant.address, [key])
    with (
        unchanged(backend, lambda: hub_state(desk.client, merchant.address)),
        reverts("OracleHubSignaturesNotSorted", 1, address_of(key).lower()),
    ):
        submit(desk, attestation, report, signatures * 2)


def test_a_malformed_signature_is_refused(desk, merchant, backend, reverts):
    attestation, report, signatures = signed_attestation(desk, merchant.address)
    with (
        unchanged(backend, lambda: hub_state(desk.client, merchant.address)),
        reverts("OracleHubInvalidSignature", 1),
    ):
        submit(desk, attestation, report, [signatures[0], signatures[1][:64]])


def test_a_signature_over_another_report_counts_as_an_unknown_signer(
    desk, merchant, backend, reverts
):
    attestation, report, signatures = signed_attestation(desk, merchant.address)
    _, other_report, other_signatures = signed_attestation(
        desk, merchant.address, sequence=report.sequence + 1
    )
    with (
        unchanged(backend, lambda: hub_state(desk.client, merchant.address)),
        reverts("OracleHubUnknownSigner") as caught,
    ):
        submit(desk, attestation, report, [signatures[0], other_signatures[1]])
    assert caught.value.args_[0] == 1


# ---------------------------------------------------------------- consume: versions


def test_a_report_signed_under_the_old_configuration_is_refused_after_reconfiguring(
    desk, merchant, regulator, config, backend, reverts
):
    client = desk.client
    feed = config.oracle_feeds["licence_feed"]
    attestation, report, signatures = signed_attestation(desk, merchant.address)
    assert report.config_version == 1
    client.configure_feed(regulator.private_key, FEED, feed.signer_addresses, feed.threshold)

    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubConfigVersionMismatch", FEED, 2, 1),
    ):
        submit(desk, attestation, report, signatures)

    # Signed again under version 2, the same signers are accepted.
    attestation, report, signatures = signed_attestation(desk, merchant.address)
    assert report.config_version == 2
    submit(desk, attestation, report, signatures)


def test_signers_dropped_by_a_reconfiguration_no_longer_count(
    desk, merchant, regulator, backend, reverts
):
    client = desk.client
    old_keys = by_address(desk.licence_signers)
    new_keys = by_address([key_of(Account.create()) for _ in range(2)])
    client.configure_feed(regulator.private_key, FEED, [address_of(k) for k in new_keys], 2)

    attestation, report, signatures = signed_attestation(desk, merchant.address, old_keys[:2])
    assert report.config_version == 2
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubUnknownSigner", 0, address_of(old_keys[0]).lower()),
    ):
        submit(desk, attestation, report, signatures)

    submit(desk, *signed_attestation(desk, merchant.address, new_keys))


# ---------------------------------------------------------------- consume: time


def test_a_stale_report_is_refused(desk, merchant, backend, reverts):
    client = desk.client
    issued_at = client.latest_timestamp() - max_age(client) - 120
    attestation, report, signatures = signed_attestation(
        desk, merchant.address, issued_at=issued_at
    )
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubStaleReport") as caught,
    ):
        submit(desk, attestation, report, signatures)
    stale_issued_at, now, allowed = caught.value.args_
    assert stale_issued_at == issued_at
    assert allowed == max_age(client)
    assert now - issued_at > allowed


def test_a_report_within_the_maximum_age_is_accepted(desk, merchant):
    client = desk.client
    issued_at = client.latest_timestamp() - max_age(client) // 2
    result = submit(desk, *signed_attestation(desk, merchant.address, issued_at=issued_at))
    assert result.event("ReportAccepted").args["sequence"] == 2


def test_lowering_the_maximum_age_makes_an_older_report_stale(
    desk, merchant, regulator, backend, reverts
):
    client = desk.client
    issued_at = client.latest_timestamp() - 600
    attestation, report, signatures = signed_attestation(
        desk, merchant.address, issued_at=issued_at
    )
    client.set_max_report_age(regulator.private_key, 300)
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubStaleReport") as caught,
    ):
        submit(desk, attestation, report, signatures)
    assert caught.value.args_[0] == issued_at
    assert caught.value.args_[2] == 300


def test_a_report_from_the_future_is_refused(desk, merchant, backend, reverts):
    client = desk.client
    issued_at = client.latest_timestamp() + 3_600
    attestation, report, signatures = signed_attestation(
        desk, merchant.address, issued_at=issued_at
    )
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubReportFromFuture") as caught,
    ):
        submit(desk, attestation, report, signatures)
    assert caught.value.args_[0] == issued_at
    assert caught.value.args_[1] < issued_at


# ---------------------------------------------------------------- consume: sequence


def test_a_reused_sequence_is_refused(desk, merchant, backend, reverts):
    client = desk.client
    subject = m.address_subject(merchant.address)
    last = client.last_sequence(FEED, subject)
    assert last == 1  # the onboarding attestation
    attestation, report, signatures = signed_attestation(desk, merchant.address, sequence=last)
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubSequenceNotIncreasing", FEED, subject, last, last),
    ):
        submit(desk, attestation, report, signatures)


def test_a_replayed_report_is_refused(desk, merchant, backend, reverts):
    client = desk.client
    attestation, report, signatures = signed_attestation(desk, merchant.address)
    submit(desk, attestation, report, signatures)
    subject = m.address_subject(merchant.address)
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubSequenceNotIncreasing", FEED, subject, report.sequence, report.sequence),
    ):
        submit(desk, attestation, report, signatures)


def test_sequences_may_skip_ahead_but_never_go_back(desk, merchant, backend, reverts):
    client = desk.client
    subject = m.address_subject(merchant.address)
    submit(desk, *signed_attestation(desk, merchant.address, sequence=10))
    assert client.last_sequence(FEED, subject) == 10
    with (
        unchanged(backend, lambda: hub_state(client, merchant.address)),
        reverts("OracleHubSequenceNotIncreasing", FEED, subject, 10, 7),
    ):
        submit(desk, *signed_attestation(desk, merchant.address, sequence=7))


def test_sequences_are_counted_per_subject(desk, merchant, config):
    client = desk.client
    other = config.demo.merchants[1]
    desk.admit_merchant(other.key.private_key, other.name)
    desk.apply(other.key.private_key, other.uscc, other.name, other.industry)
    assert client.last_sequence(FEED, m.address_subject(merchant.address)) == 1

    submit(desk, *signed_attestation(desk, other.address, sequence=1))
    assert client.last_sequence(FEED, m.address_subject(other.address)) == 1
    assert client.last_sequence(FEED, m.address_subject(merchant.address)) == 1
