"""Tests for chain/messages.py: typed EIP-712 messages, their digests and signatures.

The manual digests (``keccak256(typehash ‖ abi.encode(fields))`` under the domain separator)
are checked against eth-account's general EIP-712 encoder for every message type, and, in one
test on the deployed system, against the contracts' own digest views.
"""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_canonical_address

from chain import messages as m
from chain.errors import ContractRevert

SIGNER_KEYS = [keccak(text=f"yufu-test/signer-{i}").hex() for i in range(5)]
MERCHANT = Account.from_key(keccak(text="yufu-test/merchant")).address
CONSUMER = Account.from_key(keccak(text="yufu-test/consumer")).address
H1, H2, H3 = (keccak(text=f"hash {i}") for i in range(3))
MAX64, MAX128 = 2**64 - 1, 2**128 - 1

DOMAIN = m.Domain("Yufu AgreementBook", "1", 20211, "0x" + "ab" * 20)

SAMPLES: dict[str, m._Message] = {
    "agreement": m.AgreementTerms(
        MERCHANT, CONSUMER, 3, H1, 20, 15_000, 280_000, 20_000, 1_800_000_000, H2
    ),
    "agreement-max": m.AgreementTerms(
        MERCHANT, CONSUMER, MAX64, H1, MAX64, MAX128, MAX128, MAX128, MAX64, H3
    ),
    "record": m.ConsumptionRecord(H1, 7, 2, 30_000, 1_750_000_000, H2),
    "request": m.ConsumerRequest(H1, m.ConsumerAction.TERMINATE, 90_000, 7, 1_750_003_600),
    "complaint": m.ComplaintRequest(H1, H2, 1_750_003_600),
    "report": m.OracleReport(m.FEED_BANK, H1, 42, 1_750_000_000, 3, H2),
    "funding": m.FundingReport(H1, 100_000, H2, 1_750_000_000),
    "payout": m.PayoutReport(H1, m.Payee.CONSUMER, 70_000, H2, H3),
    "licence": m.LicenceAttestation(
        MERCHANT, m.LicenceStatus.ACTIVE, 1_700_000_000, 0b1010, 1_750_000_000, H3
    ),
    "risk": m.RiskReport(MERCHANT, m.RiskTier.HIGH, 812, H3),
}

# The type strings as the contracts spell them in their typehashes.
CONTRACT_TYPES = {
    m.AgreementTerms: (
        "Agreement(address merchant,address consumer,uint64 templateId,bytes32 documentHash,"
        "uint64 units,uint128 unitPrice,uint128 totalPaid,uint128 bonus,uint64 expiry,"
        "bytes32 salt)"
    ),
    m.ConsumptionRecord: (
        "ConsumptionRecord(bytes32 agreementId,uint64 sequence,uint64 units,uint128 amount,"
        "uint64 consumedAt,bytes32 receiptHash)"
    ),
    m.ConsumerRequest: (
        "ConsumerRequest(bytes32 agreementId,uint8 action,uint128 minRefund,uint64 nonce,"
        "uint64 deadline)"
    ),
    m.ComplaintRequest: "Complaint(bytes32 agreementId,bytes32 evidenceHash,uint64 deadline)",
    m.OracleReport: (
        "Report(bytes32 feed,bytes32 subject,uint64 sequence,uint64 issuedAt,"
        "uint32 configVersion,bytes32 payloadHash)"
    ),
}


def reference_digest(message: m._Message, domain: m.Domain) -> bytes:
    """The digest by eth-account's general EIP-712 encoder."""
    signable = encode_typed_data(full_message=message.eip712(domain))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_digest_equals_eth_accounts_reference_encoder(name):
    message = SAMPLES[name]
    assert message.digest(DOMAIN) == reference_digest(message, DOMAIN)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_domain_separator_and_struct_hash_equal_the_reference_parts(name):
    message = SAMPLES[name]
    signable = encode_typed_data(full_message=message.eip712(DOMAIN))
    assert signable.version == b"\x01"
    assert signable.header == DOMAIN.separator()
    assert signable.body == message.struct_hash()


@pytest.mark.parametrize("message_type", list(CONTRACT_TYPES), ids=lambda t: t.__name__)
def test_type_strings_match_the_contracts_typehashes(message_type):
    assert message_type.type_string() == CONTRACT_TYPES[message_type]


@pytest.mark.parametrize(
    "other",
    [
        m.Domain("Yufu AgreementBook", "1", 20212, DOMAIN.verifying_contract),
        m.Domain("Yufu AgreementBook", "1", 20211, "0x" + "cd" * 20),
        m.Domain("Yufu OracleHub", "1", 20211, DOMAIN.verifying_contract),
        m.Domain("Yufu AgreementBook", "2", 20211, DOMAIN.verifying_contract),
    ],
    ids=["chain", "contract", "name", "version"],
)
def test_a_digest_is_bound_to_its_domain(other):
    message = SAMPLES["record"]
    assert message.digest(other) != message.digest(DOMAIN)
    assert message.digest(other) == reference_digest(message, other)


def test_each_field_changes_the_digest():
    record = SAMPLES["record"]
    changed = [
        m.ConsumptionRecord(H3, *record.as_abi()[1:]),
        m.ConsumptionRecord(record.agreement_id, 8, *record.as_abi()[2:]),
        m.ConsumptionRecord(*record.as_abi()[:2], 3, *record.as_abi()[3:]),
        m.ConsumptionRecord(*record.as_abi()[:3], 30_001, *record.as_abi()[4:]),
        m.ConsumptionRecord(*record.as_abi()[:4], 1_750_000_001, record.receipt_hash),
        m.ConsumptionRecord(*record.as_abi()[:5], H3),
    ]
    digests = {message.digest(DOMAIN) for message in changed}
    assert len(digests) == len(changed)
    assert record.digest(DOMAIN) not in digests


def test_abi_hash_is_keccak_of_the_abi_encoded_fields():
    funding = SAMPLES["funding"]
    expected = keccak(
        abi_encode(["bytes32", "uint128", "bytes32", "uint64"], [H1, 100_000, H2, 1_750_000_000])
    )
    assert funding.abi_hash() == expected


def test_sign_and_recover_round_trip():
    key = SIGNER_KEYS[0]
    message = SAMPLES["complaint"]
    signature = message.sign(key, DOMAIN)
    assert len(signature) == m.SIGNATURE_LENGTH
    assert signature[-1] in (27, 28)
    assert m.recover_signer(message.digest(DOMAIN), signature) == Account.from_key(key).address
    # The signature also verifies under eth-account's own typed-data signer.
    reference = Account.sign_typed_data(key, full_message=message.eip712(DOMAIN))
    assert bytes(reference.signature) == signature


def test_sign_by_returns_signatures_in_ascending_signer_order():
    report = SAMPLES["report"]
    keys = [SIGNER_KEYS[i] for i in (3, 0, 4, 1, 2)]
    signatures = report.sign_by(keys, DOMAIN)

    digest = report.digest(DOMAIN)
    recovered = [m.recover_signer(digest, signature) for signature in signatures]
    assert sorted(recovered) == sorted(Account.from_key(key).address for key in keys)
    as_numbers = [int.from_bytes(to_canonical_address(a), "big") for a in recovered]
    assert as_numbers == sorted(as_numbers)
    assert len(set(as_numbers)) == len(keys)


def test_sign_by_does_not_depend_on_the_order_of_the_keys():
    report = SAMPLES["report"]
    forward = report.sign_by(SIGNER_KEYS, DOMAIN)
    backward = report.sign_by(list(reversed(SIGNER_KEYS)), DOMAIN)
    assert forward == backward


def test_address_subject_is_twelve_zero_bytes_and_the_address():
    subject = m.address_subject(MERCHANT)
    assert len(subject) == 32
    assert subject[:12] == bytes(12)
    assert subject[12:] == to_canonical_address(MERCHANT)
    assert m.address_subject(MERCHANT.lower()) == subject
    assert int.from_bytes(subject, "big") == int(MERCHANT, 16)


def test_label_is_the_name_left_aligned_in_32_bytes():
    # Solidity's bytes32("maxUnits"): the ASCII bytes first, zero padding after.
    assert m.label("maxUnits") == b"maxUnits" + bytes(24)
    assert m.label("") == bytes(32)
    assert m.label("x" * 32) == b"x" * 32
    assert abi_encode(["bytes32"], [m.label("bonus")]) == b"bonus".ljust(32, b"\0")


@pytest.mark.parametrize("text", ["x" * 33, "refund rule ü"], ids=["too-long", "not-ascii"])
def test_label_refuses_what_no_bytes32_term_name_can_be(text):
    with pytest.raises(ValueError):
        m.label(text)


def test_error_messages_show_term_labels_as_text_and_other_bytes_as_hex():
    label_error = ContractRevert("AgreementBookOutsideTemplate", (m.label("maxUnits"), 60, 61), b"")
    assert str(label_error) == "AgreementBookOutsideTemplate('maxUnits', 60, 61)"
    # A hash, a zero word and a short byte string stay hex.
    hashed = ContractRevert("AgreementBookUnknownAgreement", (H1,), b"")
    assert str(hashed) == f"AgreementBookUnknownAgreement(0x{H1.hex()})"
    zero = ContractRevert("EvidenceRegistryZeroHash", (bytes(32),), b"")
    assert str(zero) == f"EvidenceRegistryZeroHash(0x{'00' * 32})"
    short = ContractRevert("X", (b"maxUnits",), b"")
    assert str(short) == "X(0x6d6178556e697473)"
    # Text that is no identifier (spaces) is not taken for a label.
    spaced = ContractRevert("X", (b"max units".ljust(32, b"\0"),), b"")
    assert str(spaced) == "X(0x" + b"max units".ljust(32, b"\0").hex() + ")"


def test_feed_and_organisation_ids_are_keccak_of_their_names():
    assert m.FEED_BANK == keccak(text="yufu.feed.bank")
    assert m.FEED_LICENCE == keccak(text="yufu.feed.licence")
    assert m.FEED_RISK == keccak(text="yufu.feed.risk")
    assert m.organisation_id("bank") == keccak(text="yufu.organisation.bank")
    assert m.industry_id("training") == keccak(text="yufu.industry.training")


def test_digests_equal_the_contracts_own_digest_views(deployed):
    client = deployed.client
    book, hub, complaints = (
        client.book.functions,
        client.oracle_hub.functions,
        client.complaints.functions,
    )
    terms = SAMPLES["agreement"]
    record = SAMPLES["record"]
    request = SAMPLES["request"]
    report = SAMPLES["report"]
    complaint = SAMPLES["complaint"]

    assert client.call(book.agreementDigest(terms.as_abi())) == terms.digest(client.book_domain())
    extreme = SAMPLES["agreement-max"]
    assert client.call(book.agreementDigest(extreme.as_abi())) == extreme.digest(
        client.book_domain()
    )
    assert client.call(book.recordDigest(record.as_abi())) == record.digest(client.book_domain())
    assert client.call(book.requestDigest(request.as_abi())) == request.digest(
        client.book_domain()
    )
    assert client.call(hub.reportDigest(report.as_abi())) == report.digest(client.hub_domain())
    assert client.call(
        complaints.complaintDigest(
            complaint.agreement_id, complaint.evidence_hash, complaint.deadline
        )
    ) == complaint.digest(client.complaints_domain())
    # And each equals eth-account's reference under the same domain.
    assert terms.digest(client.book_domain()) == reference_digest(terms, client.book_domain())
    assert report.digest(client.hub_domain()) == reference_digest(report, client.hub_domain())
