"""ComplaintDesk: consumers' signed complaints, merchants' answers, the regulator's rulings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from chain import messages as m
from chain.messages import ComplaintStatus, EvidenceKind
from chain.scenario import sha256
from chain.views import ComplaintStats

LIFETIME = 3_600


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
def operator(config):
    return config.organisations["operator"].key


@pytest.fixture
def agreement(desk, merchant, consumer) -> bytes:
    """A signed (unfunded) plan between the onboarded merchant and the consumer."""
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    return agreement_id


def signed_complaint(
    client, agreement_id: bytes, signer_key: str, text: str = "no lesson on Monday", **changes
) -> tuple[bytes, int, bytes]:
    """Evidence hash, deadline and the signer's EIP-712 signature of a complaint."""
    evidence = changes.get("evidence", sha256(text))
    deadline = changes.get("deadline", client.latest_timestamp() + LIFETIME)
    request = m.ComplaintRequest(agreement_id, evidence, deadline)
    return evidence, deadline, request.sign(signer_key, client.complaints_domain())


def desk_state(client, merchant: str) -> tuple[Any, ...]:
    count = client.call(client.complaints.functions.complaintCount())
    complaints = tuple(client.get_complaint(i) for i in range(1, count + 1))
    return count, complaints, client.complaint_stats(merchant)


# ---------------------------------------------------------------- file


def test_the_operator_files_a_consumers_signed_complaint(
    client, operator, agreement, merchant, consumer, backend
):
    evidence, deadline, signature = signed_complaint(client, agreement, consumer.key)

    complaint_id, result = client.file_complaint(
        operator.private_key, agreement, evidence, deadline, signature
    )

    assert complaint_id == 1
    assert result.event("ComplaintFiled").args == {
        "complaintId": 1,
        "agreementId": agreement,
        "merchant": merchant.address,
        "consumer": consumer.address,
        "evidenceHash": evidence,
    }
    complaint = client.get_complaint(complaint_id)
    assert (complaint.agreement_id, complaint.merchant, complaint.consumer) == (
        agreement,
        merchant.address,
        consumer.address,
    )
    assert complaint.status == ComplaintStatus.FILED
    assert not complaint.upheld
    assert complaint.filed_at == backend.w3.eth.get_block(result.block_number)["timestamp"]
    assert complaint.evidence_hash == evidence
    assert complaint.answer_hash == complaint.resolution_hash == bytes(32)
    assert client.call(client.complaints.functions.complaintCount()) == 1
    assert client.complaint_stats(merchant.address) == ComplaintStats(filed=1, open=1, upheld=0)

    digest = client.call(client.complaints.functions.complaintDigest(agreement, evidence, deadline))
    anchor = client.lookup_evidence(digest)
    assert (anchor.kind, anchor.subject) == (EvidenceKind.COMPLAINT_FILED, agreement)


def test_the_desk_helper_files_through_the_same_path(desk, client, agreement, merchant, consumer):
    complaint_id = desk.file_complaint(agreement, consumer.key, "teacher absent")
    assert client.get_complaint(complaint_id).evidence_hash == sha256("teacher absent")
    assert client.complaint_stats(merchant.address).filed == 1


def test_only_an_operator_may_file(client, agreement, merchant, consumer, backend, reverts):
    evidence, deadline, signature = signed_complaint(client, agreement, consumer.key)
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskUnauthorized", merchant.address.lower()),
    ):
        client.file_complaint(merchant.key, agreement, evidence, deadline, signature)


def test_a_complaint_signed_by_someone_else_is_refused(
    client, operator, agreement, merchant, consumer, other_consumer, backend, reverts
):
    evidence, deadline, signature = signed_complaint(client, agreement, other_consumer.key)
    digest = client.call(client.complaints.functions.complaintDigest(agreement, evidence, deadline))
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts(
            "ComplaintDeskInvalidSignature",
            digest,
            consumer.address.lower(),
            other_consumer.address.lower(),
        ),
    ):
        client.file_complaint(operator.private_key, agreement, evidence, deadline, signature)


def test_a_complaint_signed_by_the_merchant_is_refused(
    client, operator, agreement, merchant, backend, reverts
):
    evidence, deadline, signature = signed_complaint(client, agreement, merchant.key)
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskInvalidSignature") as caught,
    ):
        client.file_complaint(operator.private_key, agreement, evidence, deadline, signature)
    assert caught.value.args_[2] == merchant.address.lower()


def test_a_signature_over_other_evidence_is_refused(
    client, operator, agreement, merchant, consumer, backend, reverts
):
    _, deadline, signature = signed_complaint(client, agreement, consumer.key)
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskInvalidSignature"),
    ):
        client.file_complaint(
            operator.private_key, agreement, sha256("changed evidence"), deadline, signature
        )


def test_a_malformed_signature_is_refused(
    client, operator, agreement, merchant, consumer, backend, reverts
):
    evidence, deadline, signature = signed_complaint(client, agreement, consumer.key)
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskInvalidSignature"),
    ):
        client.file_complaint(operator.private_key, agreement, evidence, deadline, signature[:64])


def test_a_complaint_past_its_deadline_is_refused(
    client, operator, agreement, merchant, consumer, backend, reverts
):
    deadline = client.latest_timestamp() - 1
    evidence, _, signature = signed_complaint(client, agreement, consumer.key, deadline=deadline)
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskRequestExpired") as caught,
    ):
        client.file_complaint(operator.private_key, agreement, evidence, deadline, signature)
    assert caught.value.args_[0] == deadline
    assert caught.value.args_[1] > deadline


def test_a_complaint_whose_deadline_passed_while_waiting_is_refused(
    client, operator, agreement, merchant, consumer, backend, reverts
):
    evidence, deadline, signature = signed_complaint(client, agreement, consumer.key)
    backend.advance_time(LIFETIME + 60)
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskRequestExpired"),
    ):
        client.file_complaint(operator.private_key, agreement, evidence, deadline, signature)


def test_the_same_complaint_cannot_be_filed_twice(
    client, operator, agreement, merchant, consumer, backend, reverts
):
    evidence, deadline, signature = signed_complaint(client, agreement, consumer.key)
    client.file_complaint(operator.private_key, agreement, evidence, deadline, signature)
    digest = client.call(client.complaints.functions.complaintDigest(agreement, evidence, deadline))
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskDuplicateComplaint", digest),
    ):
        client.file_complaint(operator.private_key, agreement, evidence, deadline, signature)


def test_a_zero_evidence_hash_is_refused(
    client, operator, agreement, merchant, consumer, backend, reverts
):
    evidence, deadline, signature = signed_complaint(
        client, agreement, consumer.key, evidence=bytes(32)
    )
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskMissingHash", m.label("evidenceHash")),
    ):
        client.file_complaint(operator.private_key, agreement, evidence, deadline, signature)


def test_a_complaint_about_an_unknown_agreement_is_refused(
    client, operator, merchant, consumer, backend, reverts
):
    unknown = sha256("no such agreement")
    evidence, deadline, signature = signed_complaint(client, unknown, consumer.key)
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("AgreementBookUnknownAgreement", unknown),
    ):
        client.file_complaint(operator.private_key, unknown, evidence, deadline, signature)


# ---------------------------------------------------------------- answer


@pytest.fixture
def filed(desk, agreement, consumer) -> int:
    return desk.file_complaint(agreement, consumer.key, "lesson cancelled without notice")


def test_the_merchant_answers_a_filed_complaint(client, merchant, filed, agreement):
    answer = sha256("we rescheduled the lesson")
    result = client.answer_complaint(merchant.key, filed, answer)

    assert result.event("ComplaintAnswered").args == {
        "complaintId": filed,
        "merchant": merchant.address,
        "answerHash": answer,
    }
    complaint = client.get_complaint(filed)
    assert (complaint.status, complaint.answer_hash) == (ComplaintStatus.ANSWERED, answer)
    # Answering does not close the complaint.
    assert client.complaint_stats(merchant.address) == ComplaintStats(filed=1, open=1, upheld=0)
    evidence = keccak(
        abi_encode(["string", "uint64", "bytes32"], ["yufu.complaint.answer", filed, answer])
    )
    anchor = client.lookup_evidence(evidence)
    assert (anchor.kind, anchor.subject) == (EvidenceKind.COMPLAINT_ANSWERED, agreement)


@pytest.mark.parametrize("who", ["operator", "regulator", "other merchant"])
def test_only_the_complaints_merchant_may_answer(
    desk, client, config, merchant, filed, backend, reverts, who
):
    if who == "other merchant":
        other = config.demo.merchants[1]
        desk.admit_merchant(other.key.private_key, other.name)
        key, address = other.key.private_key, other.address
    else:
        key, address = config.organisations[who].key.private_key, config.organisations[who].address
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskUnauthorized", address.lower()),
    ):
        client.answer_complaint(key, filed, sha256("answer"))


def test_an_answered_complaint_cannot_be_answered_again(client, merchant, filed, backend, reverts):
    client.answer_complaint(merchant.key, filed, sha256("first answer"))
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskInvalidStatus", filed, ComplaintStatus.ANSWERED),
    ):
        client.answer_complaint(merchant.key, filed, sha256("second answer"))


def test_a_resolved_complaint_cannot_be_answered(
    client, merchant, regulator, filed, backend, reverts
):
    client.resolve_complaint(regulator.private_key, filed, False, sha256("ruling"))
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskInvalidStatus", filed, ComplaintStatus.RESOLVED),
    ):
        client.answer_complaint(merchant.key, filed, sha256("late answer"))


def test_a_zero_answer_hash_is_refused(client, merchant, filed, backend, reverts):
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskMissingHash", m.label("answerHash")),
    ):
        client.answer_complaint(merchant.key, filed, bytes(32))


def test_answering_an_unknown_complaint_is_refused(client, merchant, backend, reverts):
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskUnknownComplaint", 5),
    ):
        client.answer_complaint(merchant.key, 5, sha256("answer"))


# ---------------------------------------------------------------- resolve


@pytest.mark.parametrize("upheld", [True, False], ids=["upheld", "dismissed"])
def test_the_regulator_resolves_a_filed_complaint(
    client, regulator, merchant, filed, agreement, upheld
):
    ruling = sha256(f"ruling upheld={upheld}")
    result = client.resolve_complaint(regulator.private_key, filed, upheld, ruling)

    assert result.event("ComplaintResolved").args == {
        "complaintId": filed,
        "merchant": merchant.address,
        "upheld": upheld,
        "resolutionHash": ruling,
    }
    complaint = client.get_complaint(filed)
    assert complaint.status == ComplaintStatus.RESOLVED
    assert complaint.upheld is upheld
    assert complaint.resolution_hash == ruling
    assert client.complaint_stats(merchant.address) == ComplaintStats(
        filed=1, open=0, upheld=int(upheld)
    )
    evidence = keccak(
        abi_encode(
            ["string", "uint64", "bool", "bytes32"],
            ["yufu.complaint.resolution", filed, upheld, ruling],
        )
    )
    anchor = client.lookup_evidence(evidence)
    assert (anchor.kind, anchor.subject) == (EvidenceKind.COMPLAINT_RESOLVED, agreement)


def test_stats_count_filed_open_and_upheld_complaints(
    desk, client, regulator, merchant, consumer, agreement
):
    ids = [desk.file_complaint(agreement, consumer.key, f"complaint {i}") for i in range(4)]
    assert client.complaint_stats(merchant.address) == ComplaintStats(filed=4, open=4, upheld=0)

    client.answer_complaint(merchant.key, ids[0], sha256("answer"))
    client.resolve_complaint(regulator.private_key, ids[0], True, sha256("r0"))
    client.resolve_complaint(regulator.private_key, ids[1], False, sha256("r1"))
    client.resolve_complaint(regulator.private_key, ids[2], True, sha256("r2"))

    assert client.complaint_stats(merchant.address) == ComplaintStats(filed=4, open=1, upheld=2)
    assert client.call(client.complaints.functions.complaintCount()) == 4
    other = Account.create().address
    assert client.complaint_stats(other) == ComplaintStats(filed=0, open=0, upheld=0)


def test_an_answered_complaint_can_be_resolved(client, regulator, merchant, filed):
    client.answer_complaint(merchant.key, filed, sha256("answer"))
    client.resolve_complaint(regulator.private_key, filed, True, sha256("ruling"))
    assert client.get_complaint(filed).status == ComplaintStatus.RESOLVED
    assert client.get_complaint(filed).answer_hash == sha256("answer")


def test_a_complaint_cannot_be_resolved_twice(client, regulator, merchant, filed, backend, reverts):
    client.resolve_complaint(regulator.private_key, filed, False, sha256("ruling"))
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskInvalidStatus", filed, ComplaintStatus.RESOLVED),
    ):
        client.resolve_complaint(regulator.private_key, filed, True, sha256("second ruling"))


def test_only_a_regulator_may_resolve(client, merchant, operator, filed, backend, reverts):
    for key, address in (
        (operator.private_key, operator.address),
        (merchant.key, merchant.address),
    ):
        with (
            unchanged(backend, lambda: desk_state(client, merchant.address)),
            reverts("ComplaintDeskUnauthorized", address.lower()),
        ):
            client.resolve_complaint(key, filed, True, sha256("ruling"))


def test_a_zero_resolution_hash_is_refused(client, regulator, merchant, filed, backend, reverts):
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskMissingHash", m.label("resolutionHash")),
    ):
        client.resolve_complaint(regulator.private_key, filed, True, bytes(32))


def test_resolving_an_unknown_complaint_is_refused(client, regulator, merchant, backend, reverts):
    with (
        unchanged(backend, lambda: desk_state(client, merchant.address)),
        reverts("ComplaintDeskUnknownComplaint", 3),
    ):
        client.resolve_complaint(regulator.private_key, 3, True, sha256("ruling"))


def test_reading_an_unknown_complaint_is_refused(client, reverts):
    with reverts("ComplaintDeskUnknownComplaint", 0):
        client.get_complaint(0)
