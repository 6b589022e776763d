"""EvidenceRegistry: anchoring hashes and Merkle batches, and looking them up."""

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
from chain.messages import EvidenceKind

SUBJECT = m.address_subject("0x00000000000000000000000000000000000000aa")


@contextlib.contextmanager
def unchanged(backend: Any, read: Callable[[], Any]) -> Iterator[None]:
    """Assert the block enclosed mined nothing and left ``read()`` as it was."""
    before = read()
    block = backend.w3.eth.block_number
    yield
    assert backend.w3.eth.block_number == block
    assert read() == before


# ---------------------------------------------------------------- a tiny Merkle tree


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative node hash: keccak(min(a, b) ‖ max(a, b))."""
    return keccak(a + b) if a < b else keccak(b + a)


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the sorted-pair tree, leaves first; an odd last node moves up as is."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [hash_pair(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    return merkle_levels(leaves)[-1][0]


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    proof = []
    for level in merkle_levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def verify_offline(root: bytes, leaf: bytes, proof: list[bytes]) -> bool:
    computed = leaf
    for node in proof:
        computed = hash_pair(computed, node)
    return computed == root


def test_the_test_tree_builder_is_self_consistent():
    leaves = [keccak(text=f"leaf {i}") for i in range(7)]
    root = merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        assert verify_offline(root, leaf, merkle_proof(leaves, index))
    assert not verify_offline(root, keccak(text="stranger"), merkle_proof(leaves, 0))


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def client(deployed):
    return deployed.client


@pytest.fixture
def auditor(config):
    return config.organisations["auditor"].key


@pytest.fixture
def stranger(backend):
    account = Account.create()
    fund_accounts(backend.w3, [account.address])
    return account


def key_of(account: Any) -> str:
    return "0x" + bytes(account.key).hex()


# ---------------------------------------------------------------- anchor


def test_member_anchors_a_hash_and_lookup_returns_block_time_kind_submitter_subject(
    client, auditor, backend
):
    digest = keccak(text="a court exhibit")
    result = client.anchor(auditor.private_key, digest, EvidenceKind.DOCUMENT, SUBJECT)

    assert result.event("EvidenceAnchored").args == {
        "hash": digest,
        "kind": EvidenceKind.DOCUMENT,
        "subject": SUBJECT,
        "submitter": auditor.address,
    }
    block = backend.w3.eth.get_block(result.block_number)
    anchor = client.lookup_evidence(digest)
    assert anchor.block_number == result.block_number
    assert anchor.timestamp == block["timestamp"]
    assert anchor.kind == EvidenceKind.DOCUMENT
    assert anchor.submitter == auditor.address
    assert anchor.subject == SUBJECT
    # A member's anchor lives in the members' namespace; with no system anchor, lookup returns it.
    assert client.lookup_member_anchor(digest) == anchor


def test_lookup_of_a_never_anchored_hash_has_block_zero(client):
    digest = keccak(text="never anchored")
    for anchor in (client.lookup_evidence(digest), client.lookup_member_anchor(digest)):
        assert anchor.block_number == 0
        assert anchor.timestamp == 0
        assert anchor.submitter == "0x" + "00" * 20


def test_a_hash_anchored_twice_is_refused_with_the_first_block(
    client, auditor, config, backend, reverts
):
    digest = keccak(text="once only")
    first = client.anchor(auditor.private_key, digest, EvidenceKind.DOCUMENT, SUBJECT)
    backend.advance_time(10)
    bank = config.organisations["bank"].key

    with (
        unchanged(backend, lambda: client.lookup_evidence(digest)),
        reverts("EvidenceRegistryAlreadyAnchored", digest, first.block_number),
    ):
        client.anchor(bank.private_key, digest, EvidenceKind.DOCUMENT, bytes(32))
    assert client.lookup_evidence(digest).submitter == auditor.address
    assert client.lookup_member_anchor(digest).submitter == auditor.address


@pytest.mark.parametrize("kind", [EvidenceKind.AGREEMENT_OPENED, EvidenceKind.DEFAULT_SETTLED])
def test_a_member_cannot_anchor_with_a_life_cycle_kind(client, auditor, backend, reverts, kind):
    digest = keccak(text=f"pretending to be kind {kind}")
    with (
        unchanged(backend, lambda: client.lookup_evidence(digest)),
        reverts("EvidenceRegistryKindReserved", kind),
    ):
        client.anchor(auditor.private_key, digest, kind, SUBJECT)
    with reverts("EvidenceRegistryKindReserved", kind):
        client.anchor_batch(auditor.private_key, digest, kind, SUBJECT, 3)


def test_the_zero_hash_is_refused(client, auditor, backend, reverts):
    with (
        unchanged(backend, lambda: client.lookup_evidence(bytes(32))),
        reverts("EvidenceRegistryZeroHash"),
    ):
        client.anchor(auditor.private_key, bytes(32), EvidenceKind.DOCUMENT, SUBJECT)


def test_a_non_member_cannot_anchor(client, stranger, backend, reverts):
    digest = keccak(text="from outside")
    with (
        unchanged(backend, lambda: client.lookup_evidence(digest)),
        reverts("EvidenceRegistryUnauthorized", stranger.address.lower()),
    ):
        client.anchor(key_of(stranger), digest, EvidenceKind.DOCUMENT, SUBJECT)


def test_a_removed_member_cannot_anchor(client, config, backend, reverts):
    regulator = config.organisations["regulator"].key
    auditor = config.organisations["auditor"]
    client.remove(regulator.private_key, auditor.address, m.Role.AUDITOR)
    digest = keccak(text="after removal")
    with (
        unchanged(backend, lambda: client.lookup_evidence(digest)),
        reverts("EvidenceRegistryUnauthorized", auditor.address.lower()),
    ):
        client.anchor(auditor.key.private_key, digest, EvidenceKind.DOCUMENT, SUBJECT)


# ---------------------------------------------------------------- batches


@pytest.fixture
def batch(client, auditor):
    """Five consumption record hashes anchored as one batch."""
    leaves = [keccak(text=f"consumption record {i}") for i in range(5)]
    root = merkle_root(leaves)
    result = client.anchor_batch(
        auditor.private_key, root, EvidenceKind.DOCUMENT, SUBJECT, len(leaves)
    )
    return leaves, root, result


def test_anchor_batch_stores_the_root_with_kind_batch_and_emits_both_events(client, auditor, batch):
    leaves, root, result = batch
    assert result.event("BatchAnchored").args == {
        "root": root,
        "kind": EvidenceKind.DOCUMENT,
        "subject": SUBJECT,
        "leafCount": 5,
    }
    assert result.event("EvidenceAnchored").args == {
        "hash": root,
        "kind": EvidenceKind.BATCH,
        "subject": SUBJECT,
        "submitter": auditor.address,
    }
    anchor = client.lookup_evidence(root)
    assert anchor.block_number == result.block_number
    assert anchor.kind == EvidenceKind.BATCH
    assert anchor.submitter == auditor.address
    assert anchor.subject == SUBJECT


def test_every_leaf_of_an_anchored_batch_verifies(client, batch):
    leaves, root, _ = batch
    for index, leaf in enumerate(leaves):
        assert client.verify_in_batch(root, leaf, merkle_proof(leaves, index))


def test_a_leaf_not_in_the_batch_does_not_verify(client, batch):
    leaves, root, _ = batch
    outsider = keccak(text="consumption record 99")
    assert not client.verify_in_batch(root, outsider, merkle_proof(leaves, 0))
    # A real leaf with another leaf's proof does not verify either.
    assert not client.verify_in_batch(root, leaves[1], merkle_proof(leaves, 2))


def test_a_proof_against_a_root_that_is_not_an_anchored_batch_does_not_verify(client, auditor):
    leaves = [keccak(text=f"document {i}") for i in range(4)]
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, 1)
    assert verify_offline(root, leaves[1], proof)

    # Not anchored at all.
    assert not client.verify_in_batch(root, leaves[1], proof)
    # Anchored, but as a single document rather than a batch.
    client.anchor(auditor.private_key, root, EvidenceKind.DOCUMENT, SUBJECT)
    assert not client.verify_in_batch(root, leaves[1], proof)


def test_an_empty_batch_is_refused(client, auditor, backend, reverts):
    root = keccak(text="empty")
    with (
        unchanged(backend, lambda: client.lookup_evidence(root)),
        reverts("EvidenceRegistryEmptyBatch", root),
    ):
        client.anchor_batch(auditor.private_key, root, EvidenceKind.DOCUMENT, SUBJECT, 0)


def test_a_batch_root_already_anchored_is_refused(client, auditor, batch, backend, reverts):
    _, root, result = batch
    with (
        unchanged(backend, lambda: client.lookup_evidence(root)),
        reverts("EvidenceRegistryAlreadyAnchored", root, result.block_number),
    ):
        client.anchor_batch(auditor.private_key, root, EvidenceKind.DOCUMENT, SUBJECT, 5)


def test_a_zero_batch_root_is_refused(client, auditor, backend, reverts):
    with (
        unchanged(backend, lambda: client.lookup_evidence(bytes(32))),
        reverts("EvidenceRegistryZeroHash"),
    ):
        client.anchor_batch(auditor.private_key, bytes(32), EvidenceKind.DOCUMENT, SUBJECT, 3)


def test_a_non_member_cannot_anchor_a_batch(client, stranger, backend, reverts):
    root = keccak(text="outsider batch")
    with (
        unchanged(backend, lambda: client.lookup_evidence(root)),
        reverts("EvidenceRegistryUnauthorized", stranger.address.lower()),
    ):
        client.anchor_batch(key_of(stranger), root, EvidenceKind.DOCUMENT, SUBJECT, 2)


# ---------------------------------------------------------------- namespaces


@pytest.fixture
def system_key(client, config, backend):
    """A fresh account holding Role.SYSTEM, as Yufu's own contracts do."""
    account = Account.create()
    fund_accounts(backend.w3, [account.address])
    regulator = config.organisations["regulator"].key.private_key
    client.admit(regulator, account.address, m.Role.SYSTEM, m.organisation_id("yufu-test-system"))
    return key_of(account)


def test_a_system_anchor_after_a_members_anchor_of_the_same_hash_is_accepted(
    client, auditor, system_key
):
    digest = keccak(text="predictable life-cycle evidence")
    early = client.anchor(auditor.private_key, digest, EvidenceKind.DOCUMENT, SUBJECT)
    late = client.anchor(system_key, digest, EvidenceKind.AGREEMENT_OPENED, bytes(32))

    # lookup prefers the system anchor; the member's stays readable on its own.
    system = client.lookup_evidence(digest)
    assert (system.block_number, system.kind, system.submitter, system.subject) == (
        late.block_number,
        EvidenceKind.AGREEMENT_OPENED,
        Account.from_key(system_key).address,
        bytes(32),
    )
    member = client.lookup_member_anchor(digest)
    assert (member.block_number, member.kind, member.submitter, member.subject) == (
        early.block_number,
        EvidenceKind.DOCUMENT,
        auditor.address,
        SUBJECT,
    )


def test_a_members_anchor_after_a_system_anchor_of_the_same_hash_is_accepted(
    client, auditor, system_key
):
    digest = keccak(text="system first")
    first = client.anchor(system_key, digest, EvidenceKind.AGREEMENT_OPENED, bytes(32))
    assert client.lookup_member_anchor(digest).block_number == 0
    second = client.anchor(auditor.private_key, digest, EvidenceKind.DOCUMENT, SUBJECT)
    assert client.lookup_evidence(digest).block_number == first.block_number
    assert client.lookup_member_anchor(digest).block_number == second.block_number


def test_a_hash_anchored_twice_in_the_system_namespace_is_refused(
    client, auditor, system_key, backend, reverts
):
    digest = keccak(text="system twice")
    client.anchor(auditor.private_key, digest, EvidenceKind.DOCUMENT, SUBJECT)
    first = client.anchor(system_key, digest, EvidenceKind.AGREEMENT_OPENED, bytes(32))
    with (
        unchanged(
            backend, lambda: (client.lookup_evidence(digest), client.lookup_member_anchor(digest))
        ),
        reverts("EvidenceRegistryAlreadyAnchored", digest, first.block_number),
    ):
        client.anchor(system_key, digest, EvidenceKind.AGREEMENT_FUNDED, bytes(32))


def test_the_namespace_follows_the_callers_system_role_at_the_time(client, config, system_key):
    # An account with the System role anchors as the system; once the role is removed (it keeps
    # another role, so it is still a member) its anchors go to the members' namespace.
    regulator = config.organisations["regulator"].key.private_key
    address = Account.from_key(system_key).address
    client.admit(regulator, address, m.Role.AUDITOR, m.organisation_id("yufu-test-system"))
    before = keccak(text="while system")
    client.anchor(system_key, before, EvidenceKind.DOCUMENT, SUBJECT)
    client.remove(regulator, address, m.Role.SYSTEM)
    after = keccak(text="after the role went")
    client.anchor(system_key, after, EvidenceKind.DOCUMENT, SUBJECT)

    assert client.lookup_member_anchor(before).block_number == 0
    assert client.lookup_evidence(before).submitter == address
    assert client.lookup_member_anchor(after).submitter == address
    assert client.lookup_evidence(after) == client.lookup_member_anchor(after)


def test_a_batch_anchored_by_a_system_account_verifies(client, system_key):
    leaves = [keccak(text=f"system record {i}") for i in range(3)]
    root = merkle_root(leaves)
    client.anchor_batch(system_key, root, EvidenceKind.CONSUMPTION_RECORDED, SUBJECT, 3)
    assert client.lookup_evidence(root).kind == EvidenceKind.BATCH
    assert client.lookup_member_anchor(root).block_number == 0
    for index, leaf in enumerate(leaves):
        assert client.verify_in_batch(root, leaf, merkle_proof(leaves, index))


# ---------------------------------------------------------------- pre-anchored evidence


def test_a_member_cannot_block_a_default_settlement_by_anchoring_its_evidence_first(
    desk, merchant, consumer, config
):
    # settleDefault anchors keccak256(abi.encode("yufu.agreement.default", agreementId)), which
    # anyone can compute; the defaulting merchant (still a member) anchors it first.
    client = desk.client
    regulator = config.organisations["regulator"].key.private_key
    signed = desk.sign_agreement(
        merchant.key, consumer.key, merchant.template_id, units=10, unit_price=10_000
    )
    agreement_id, _ = desk.open(signed)
    desk.fund(agreement_id, signed.terms.total_paid)
    settlement_evidence = keccak(
        abi_encode(["string", "bytes32"], ["yufu.agreement.default", agreement_id])
    )
    early = client.anchor(merchant.key, settlement_evidence, EvidenceKind.DOCUMENT, bytes(32))
    client.declare_default(regulator, merchant.address)

    result = client.settle_default(regulator, [agreement_id])

    assert client.get_agreement(agreement_id).state == m.AgreementState.DEFAULTED
    system = client.lookup_evidence(settlement_evidence)
    assert (system.block_number, system.kind, system.submitter, system.subject) == (
        result.block_number,
        EvidenceKind.DEFAULT_SETTLED,
        client.addresses.book,
        agreement_id,
    )
    member = client.lookup_member_anchor(settlement_evidence)
    assert (member.block_number, member.kind, member.submitter) == (
        early.block_number,
        EvidenceKind.DOCUMENT,
        merchant.address,
    )
