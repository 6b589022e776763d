"""TemplateRegistry: the regulator's standard contracts and the limits the chain enforces."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account

from chain import messages as m
from chain import views as v
from chain.deploy import fund_accounts
from chain.messages import EvidenceKind
from chain.scenario import sha256

INDUSTRY = m.industry_id("music")


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


def music_terms(**changes: Any) -> v.Template:
    terms = v.Template(
        industry=INDUSTRY,
        document_hash=sha256("Music lessons contract (model text) 2024.1"),
        version=3,
        max_amount=300_000,
        max_term_days=180,
        max_units=48,
        cooling_off_days=10,
        min_custody_bps=4_000,
        refund_rule=m.RefundRule.FACE_VALUE,
        refund_rounding_fen=100,
        active=False,  # ignored: a new template is active at once
    )
    return dataclasses.replace(terms, **changes)


def registry_state(client, document_hash: bytes) -> tuple[Any, ...]:
    return (
        client.template_count(),
        client.call(client.templates.functions.templateOfDocument(document_hash)),
        client.lookup_evidence(document_hash),
    )


# ---------------------------------------------------------------- register


def test_deployment_registered_the_configured_templates(client, deployed):
    assert client.template_count() == len(deployed.template_ids) == 5
    training = client.get_template(deployed.template_ids[("training", "training")])
    assert training.industry == m.industry_id("training")
    assert training.max_amount == 500_000
    assert training.max_units == 60
    assert training.active


def test_regulator_registers_a_template_and_reads_every_term_back(client, regulator):
    count = client.template_count()
    terms = music_terms()

    template_id, result = client.register_template(regulator.private_key, terms)

    assert template_id == count + 1
    assert client.template_count() == count + 1
    assert result.event("TemplateRegistered").args == {
        "templateId": template_id,
        "industry": terms.industry,
        "documentHash": terms.document_hash,
        "version": 3,
        "maxAmount": 300_000,
        "maxTermDays": 180,
        "maxUnits": 48,
        "coolingOffDays": 10,
        "minCustodyBps": 4_000,
        "refundRule": m.RefundRule.FACE_VALUE,
        "refundRoundingFen": 100,
    }
    assert client.get_template(template_id) == dataclasses.replace(terms, active=True)
    templates = client.templates.functions
    assert client.call(templates.templateOfDocument(terms.document_hash)) == template_id


def test_registering_anchors_the_document_hash_as_evidence(client, regulator, backend):
    terms = music_terms()
    template_id, result = client.register_template(regulator.private_key, terms)

    anchored = result.event("EvidenceAnchored").args
    assert anchored["hash"] == terms.document_hash
    assert anchored["kind"] == EvidenceKind.TEMPLATE_REGISTERED
    anchor = client.lookup_evidence(terms.document_hash)
    assert anchor.block_number == result.block_number
    assert anchor.timestamp == backend.w3.eth.get_block(result.block_number)["timestamp"]
    assert anchor.kind == EvidenceKind.TEMPLATE_REGISTERED
    assert anchor.submitter == client.addresses.templates
    assert anchor.subject == template_id.to_bytes(32, "big")


def test_unknown_document_maps_to_template_zero(client):
    templates = client.templates.functions
    assert client.call(templates.templateOfDocument(sha256("no such contract"))) == 0


def test_boundary_terms_are_accepted(client, regulator):
    terms = music_terms(
        max_amount=1,
        max_term_days=1,
        max_units=0,
        min_custody_bps=10_000,
        refund_rounding_fen=1,
        refund_rule=m.RefundRule.UNSPECIFIED,
    )
    template_id, _ = client.register_template(regulator.private_key, terms)
    assert client.get_template(template_id) == dataclasses.replace(terms, active=True)


@pytest.mark.parametrize(
    ("changes", "term", "value"),
    [
        ({"industry": bytes(32)}, "industry", 0),
        ({"max_amount": 0}, "maxAmount", 0),
        ({"max_term_days": 0}, "maxTermDays", 0),
        ({"min_custody_bps": 10_001}, "minCustodyBps", 10_001),
        ({"refund_rounding_fen": 0}, "refundRoundingFen", 0),
        ({"document_hash": bytes(32)}, "documentHash", 0),
    ],
    ids=["industry", "maxAmount", "maxTermDays", "minCustodyBps", "rounding", "documentHash"],
)
def test_an_invalid_term_is_refused(client, regulator, backend, reverts, changes, term, value):
    terms = music_terms(**changes)
    with (
        unchanged(backend, lambda: registry_state(client, terms.document_hash)),
        reverts("TemplateRegistryInvalidTerm", m.label(term), value),
    ):
        client.register_template(regulator.private_key, terms)


def test_an_invalid_term_is_named_as_text_in_the_error_message(client, regulator, reverts):
    with reverts("TemplateRegistryInvalidTerm", m.label("maxAmount"), 0) as caught:
        client.register_template(regulator.private_key, music_terms(max_amount=0))
    assert str(caught.value) == "TemplateRegistryInvalidTerm('maxAmount', 0)"


def test_a_document_already_registered_is_refused(client, regulator, deployed, backend, reverts):
    existing_id = deployed.template_ids[("named_card", "fitness")]
    existing = client.get_template(existing_id)
    terms = music_terms(document_hash=existing.document_hash)
    with (
        unchanged(backend, lambda: registry_state(client, terms.document_hash)),
        reverts("TemplateRegistryDuplicateDocument", existing.document_hash, existing_id),
    ):
        client.register_template(regulator.private_key, terms)


def test_a_document_of_an_inactive_template_is_still_a_duplicate(
    client, regulator, backend, reverts
):
    template_id, _ = client.register_template(regulator.private_key, music_terms())
    client.set_template_active(regulator.private_key, template_id, False)
    terms = music_terms(version=4)
    with (
        unchanged(backend, lambda: registry_state(client, terms.document_hash)),
        reverts("TemplateRegistryDuplicateDocument", terms.document_hash, template_id),
    ):
        client.register_template(regulator.private_key, terms)


def test_a_non_regulator_cannot_register(client, config, backend, reverts):
    operator = config.organisations["operator"].key
    terms = music_terms()
    with (
        unchanged(backend, lambda: registry_state(client, terms.document_hash)),
        reverts("TemplateRegistryUnauthorized", operator.address.lower()),
    ):
        client.register_template(operator.private_key, terms)


def test_a_document_anchored_earlier_by_a_member_can_still_be_registered(client, regulator, config):
    terms = music_terms()
    member = config.organisations["operator"].key
    client.anchor(member.private_key, terms.document_hash, EvidenceKind.DOCUMENT, bytes(32))

    template_id, result = client.register_template(regulator.private_key, terms)
    assert client.get_template(template_id).document_hash == terms.document_hash
    # The registry's anchor is the one lookup returns; the member's is kept apart.
    anchor = client.lookup_evidence(terms.document_hash)
    assert (anchor.kind, anchor.submitter, anchor.block_number) == (
        EvidenceKind.TEMPLATE_REGISTERED,
        client.addresses.templates,
        result.block_number,
    )
    member_anchor = client.lookup_member_anchor(terms.document_hash)
    assert (member_anchor.kind, member_anchor.submitter) == (EvidenceKind.DOCUMENT, member.address)


# ---------------------------------------------------------------- setTemplateActive


def test_regulator_switches_a_template_off_and_on(client, regulator, deployed):
    template_id = deployed.template_ids[("training", "training")]

    result = client.set_template_active(regulator.private_key, template_id, False)
    assert result.event("TemplateActiveSet").args == {"templateId": template_id, "active": False}
    assert not client.get_template(template_id).active

    result = client.set_template_active(regulator.private_key, template_id, True)
    assert result.event("TemplateActiveSet").args == {"templateId": template_id, "active": True}
    assert client.get_template(template_id).active


def test_an_inactive_template_refuses_new_plans(desk, merchant, consumer, regulator, reverts):
    desk.client.set_template_active(regulator.private_key, merchant.template_id, False)
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=5, unit_price=10_000
    )
    with reverts("AgreementBookTemplateInactive", merchant.template_id):
        desk.open(signed)


def test_a_non_regulator_cannot_switch_a_template(client, deployed, config, backend, reverts):
    template_id = deployed.template_ids[("training", "training")]
    auditor = config.organisations["auditor"].key
    with (
        unchanged(backend, lambda: client.get_template(template_id)),
        reverts("TemplateRegistryUnauthorized", auditor.address.lower()),
    ):
        client.set_template_active(auditor.private_key, template_id, False)


@pytest.mark.parametrize("template_id", [0, 6, 2**64 - 1])
def test_switching_an_unknown_template_is_refused(client, regulator, backend, reverts, template_id):
    with (
        unchanged(backend, client.template_count),
        reverts("TemplateRegistryUnknownTemplate", template_id),
    ):
        client.set_template_active(regulator.private_key, template_id, True)


@pytest.mark.parametrize("template_id", [0, 6])
def test_reading_an_unknown_template_is_refused(client, reverts, template_id):
    with reverts("TemplateRegistryUnknownTemplate", template_id):
        client.get_template(template_id)


def test_a_non_member_cannot_register(client, backend, reverts):
    stranger = Account.create()
    fund_accounts(backend.w3, [stranger.address])
    terms = music_terms()
    with (
        unchanged(backend, lambda: registry_state(client, terms.document_hash)),
        reverts("TemplateRegistryUnauthorized", stranger.address.lower()),
    ):
        client.register_template("0x" + bytes(stranger.key).hex(), terms)
