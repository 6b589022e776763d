"""Typed messages of Yufu's contracts and their EIP-712 signatures.

Consumers never send transactions: they sign typed messages (EIP-712) that a merchant or the
platform submits. Oracle signers sign reports the same way. This module holds those messages as
small frozen dataclasses, computes the digests exactly as the contracts do, and signs them.

Every field of every Yufu message is a static ABI type (address, uintN, bytes32), so a struct
hash is ``keccak256(typehash ‖ abi.encode(fields))`` and needs no general EIP-712 encoder. The
tests check these digests against eth-account's reference encoder and against the contracts.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import date
from enum import IntEnum
from typing import Any, ClassVar

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_canonical_address, to_checksum_address

SIGNATURE_LENGTH: int = 65
_EPOCH: date = date(1970, 1, 1)


def _hash_text(text: str) -> bytes:
    return keccak(text=text)


FEED_BANK: bytes = _hash_text("yufu.feed.bank")
FEED_LICENCE: bytes = _hash_text("yufu.feed.licence")
FEED_RISK: bytes = _hash_text("yufu.feed.risk")


class Role(IntEnum):
    """Mirror of ``IMembership.Role``."""

    NONE = 0
    REGULATOR = 1
    VALIDATOR = 2
    BANK = 3
    INSURER = 4
    ORACLE = 5
    AUDITOR = 6
    MERCHANT = 7
    OPERATOR = 8
    SYSTEM = 9


class RefundRule(IntEnum):
    """Mirror of ``ITemplateRegistry.RefundRule``."""

    UNSPECIFIED = 0
    BONUS_CONVERSION = 1
    FACE_VALUE = 2


class MerchantStatus(IntEnum):
    """Mirror of ``IMerchantRegistry.MerchantStatus``."""

    NONE = 0
    APPLIED = 1
    APPROVED = 2
    SUSPENDED = 3
    REVOKED = 4
    DEFAULTED = 5


class LicenceStatus(IntEnum):
    """Mirror of ``IMerchantRegistry.LicenceStatus``."""

    UNKNOWN = 0
    ACTIVE = 1
    REVOKED = 2
    CANCELLED = 3
    IN_DEREGISTRATION = 4


class LicenceFlag(IntEnum):
    """Bits of ``LicenceAttestation.flags``."""

    ABNORMAL_OPERATIONS = 1
    DISHONEST_DEBTOR = 2
    NAME_MISMATCH = 4
    SCOPE_MISMATCH = 8


class RiskTier(IntEnum):
    """Mirror of ``IMerchantRegistry.RiskTier``."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2
    BLOCKED = 3


class AgreementState(IntEnum):
    """Mirror of ``IAgreementBook.AgreementState``."""

    NONE = 0
    SIGNED = 1
    ACTIVE = 2
    COMPLETED = 3
    COOLED_OFF = 4
    TERMINATED = 5
    EXPIRED = 6
    DEFAULTED = 7


TERMINAL_STATES: frozenset[AgreementState] = frozenset(
    {
        AgreementState.COMPLETED,
        AgreementState.COOLED_OFF,
        AgreementState.TERMINATED,
        AgreementState.EXPIRED,
        AgreementState.DEFAULTED,
    }
)


class ReleaseReason(IntEnum):
    """Mirror of ``IAgreementBook.ReleaseReason``."""

    UPFRONT = 0
    CONSUMPTION = 1
    SETTLEMENT = 2


class Payee(IntEnum):
    """Mirror of ``IAgreementBook.Payee``."""

    MERCHANT = 0
    CONSUMER = 1


class InstructionState(IntEnum):
    """Mirror of ``ICustodyDesk.InstructionState``."""

    NONE = 0
    INSTRUCTED = 1
    PAID = 2
    REJECTED = 3
    RETURNED = 4


class ConsumerAction(IntEnum):
    """Mirror of ``IAgreementBook.ConsumerAction``."""

    COOLING_OFF = 0
    TERMINATE = 1
    REVOKE = 2


class ClaimStatus(IntEnum):
    """Mirror of ``IInsurancePool.ClaimStatus``."""

    NONE = 0
    OPEN = 1
    PAID = 2
    UNCOVERED = 3


class ComplaintStatus(IntEnum):
    """Mirror of ``IComplaintDesk.ComplaintStatus``."""

    NONE = 0
    FILED = 1
    ANSWERED = 2
    RESOLVED = 3


class EvidenceKind(IntEnum):
    """Mirror of ``EvidenceKinds``; numbers never change."""

    DOCUMENT = 1
    BATCH = 2
    TEMPLATE_REGISTERED = 10
    MERCHANT_APPLIED = 20
    LICENCE_ATTESTED = 21
    MERCHANT_STATUS_CHANGED = 22
    RISK_TIER_CHANGED = 23
    AGREEMENT_OPENED = 30
    AGREEMENT_FUNDED = 31
    CONSUMPTION_RECORDED = 32
    COOLING_OFF_CANCELLED = 33
    AGREEMENT_TERMINATED = 34
    AGREEMENT_EXPIRED = 35
    DEFAULT_SETTLED = 36
    PAYOUT_CONFIRMED = 37
    CUSTODY_ANOMALY = 38
    PAYMENT_INSTRUCTED = 39
    PAYMENT_OUTCOME = 43
    CREDIT_REFUSED = 44
    POLICY_WRITTEN = 40
    CLAIM_OPENED = 41
    CLAIM_PAID = 42
    COMPLAINT_FILED = 50
    COMPLAINT_ANSWERED = 51
    COMPLAINT_RESOLVED = 52


@dataclass(frozen=True)
class Domain:
    """An EIP-712 domain: which contract, on which chain, a signature is for."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    TYPE: ClassVar[str] = (
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )

    def separator(self) -> bytes:
        """The domain separator, as OpenZeppelin's ``EIP712`` computes it."""
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    _hash_text(self.TYPE),
                    _hash_text(self.name),
                    _hash_text(self.version),
                    self.chain_id,
                    to_checksum_address(self.verifying_contract),
                ],
            )
        )


class _Message:
    """A message whose fields are all static ABI types, in declaration order."""

    PRIMARY_TYPE: ClassVar[str]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]  # (solidity type, solidity name)

    @classmethod
    def type_string(cls) -> str:
        """The EIP-712 type, e.g. ``Report(bytes32 feed,...)``."""
        members = ",".join(f"{kind} {name}" for kind, name in cls.FIELDS)
        return f"{cls.PRIMARY_TYPE}({members})"

    def as_abi(self) -> tuple[Any, ...]:
        """The fields as web3 passes a struct argument."""
        return astuple(self)  # type: ignore[call-overload]

    def encoded(self) -> bytes:
        """``abi.encode`` of the fields, as the contracts compute it for a payload hash."""
        return abi_encode([kind for kind, _ in self.FIELDS], list(self.as_abi()))

    def abi_hash(self) -> bytes:
        """``keccak256(abi.encode(payload))``: what an oracle report carries."""
        return keccak(self.encoded())

    def struct_hash(self) -> bytes:
        """The EIP-712 struct hash."""
        return keccak(_hash_text(self.type_string()) + self.encoded())

    def digest(self, domain: Domain) -> bytes:
        """The EIP-712 digest signers sign."""
        return keccak(b"\x19\x01" + domain.separator() + self.struct_hash())

    def sign(self, private_key: str | bytes, domain: Domain) -> bytes:
        """Sign the message's digest; returns the 65-byte ``r ‖ s ‖ v`` signature."""
        return sign_digest(private_key, self.digest(domain))

    def eip712(self, domain: Domain) -> dict[str, Any]:
        """The message as EIP-712 JSON, for wallets (``eth_signTypedData_v4``)."""
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                self.PRIMARY_TYPE: [{"name": name, "type": kind} for kind, name in self.FIELDS],
            },
            "primaryType": self.PRIMARY_TYPE,
            "domain": {
                "name": domain.name,
                "version": domain.version,
                "chainId": domain.chain_id,
                "verifyingContract": to_checksum_address(domain.verifying_contract),
            },
            "message": {
                name: value for (_, name), value in zip(self.FIELDS, self.as_abi(), strict=True)
            },
        }


def sign_digest(private_key: str | bytes, digest: bytes) -> bytes:
    """Sign a 32-byte EIP-712 digest with a raw key; returns ``r ‖ s ‖ v`` (v = 27 or 28)."""
    # The digest already carries EIP-712's "\x19\x01" prefix, so the raw-hash signer is right here.
    signed = Account.unsafe_sign_hash(digest, private_key)
    return bytes(signed.signature)


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that made ``signature`` over ``digest``."""
    return str(Account._recover_hash(digest, signature=signature))


@dataclass(frozen=True)
class AgreementTerms(_Message):
    """The plan both parties sign. Amounts in fen."""

    merchant: str
    consumer: str
    template_id: int
    document_hash: bytes
    units: int
    unit_price: int
    total_paid: int
    bonus: int
    expiry: int
    salt: bytes

    PRIMARY_TYPE: ClassVar[str] = "Agreement"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("address", "merchant"),
        ("address", "consumer"),
        ("uint64", "templateId"),
        ("bytes32", "documentHash"),
        ("uint64", "units"),
        ("uint128", "unitPrice"),
        ("uint128", "totalPaid"),
        ("uint128", "bonus"),
        ("uint64", "expiry"),
        ("bytes32", "salt"),
    )


@dataclass(frozen=True)
class ConsumptionRecord(_Message):
    """One delivered unit of service, signed by merchant and consumer."""

    agreement_id: bytes
    sequence: int
    units: int
    amount: int
    consumed_at: int
    receipt_hash: bytes

    PRIMARY_TYPE: ClassVar[str] = "ConsumptionRecord"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "agreementId"),
        ("uint64", "sequence"),
        ("uint64", "units"),
        ("uint128", "amount"),
        ("uint64", "consumedAt"),
        ("bytes32", "receiptHash"),
    )


@dataclass(frozen=True)
class ConsumerRequest(_Message):
    """A consumer's signed request to cool off, terminate, or revoke an earlier request.

    ``min_refund`` binds the refund the consumer was shown; ``nonce`` lets the consumer revoke
    the request before it is executed.
    """

    agreement_id: bytes
    action: int
    min_refund: int
    nonce: int
    deadline: int

    PRIMARY_TYPE: ClassVar[str] = "ConsumerRequest"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "agreementId"),
        ("uint8", "action"),
        ("uint128", "minRefund"),
        ("uint64", "nonce"),
        ("uint64", "deadline"),
    )


@dataclass(frozen=True)
class ComplaintRequest(_Message):
    """A consumer's signed complaint."""

    agreement_id: bytes
    evidence_hash: bytes
    deadline: int

    PRIMARY_TYPE: ClassVar[str] = "Complaint"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "agreementId"),
        ("bytes32", "evidenceHash"),
        ("uint64", "deadline"),
    )


@dataclass(frozen=True)
class OracleReport(_Message):
    """A feed's signed statement; ``payload_hash`` ties it to the payload it carries."""

    feed: bytes
    subject: bytes
    sequence: int
    issued_at: int
    config_version: int
    payload_hash: bytes

    PRIMARY_TYPE: ClassVar[str] = "Report"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "feed"),
        ("bytes32", "subject"),
        ("uint64", "sequence"),
        ("uint64", "issuedAt"),
        ("uint32", "configVersion"),
        ("bytes32", "payloadHash"),
    )

    def sign_by(self, private_keys: list[str], domain: Domain) -> list[bytes]:
        """Signatures of several signers, in ascending signer order as the hub requires."""
        digest = self.digest(domain)
        keyed = sorted(
            (to_canonical_address(Account.from_key(key).address), key) for key in private_keys
        )
        return [sign_digest(key, digest) for _, key in keyed]


@dataclass(frozen=True)
class FundingReport(_Message):
    """The bank's report that a payment arrived in custody."""

    agreement_id: bytes
    amount: int
    bank_reference: bytes
    paid_at: int

    PRIMARY_TYPE: ClassVar[str] = "FundingReport"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "agreementId"),
        ("uint128", "amount"),
        ("bytes32", "bankReference"),
        ("uint64", "paidAt"),
    )


@dataclass(frozen=True)
class PayoutReport(_Message):
    """The bank's report that it paid a release or a refund."""

    agreement_id: bytes
    payee: int
    amount: int
    bank_reference: bytes
    instruction_id: bytes

    PRIMARY_TYPE: ClassVar[str] = "PayoutReport"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "agreementId"),
        ("uint8", "payee"),
        ("uint128", "amount"),
        ("bytes32", "bankReference"),
        ("bytes32", "instructionId"),
    )


@dataclass(frozen=True)
class ClaimPayment(_Message):
    """The bank's report that the insurer's payment on a claim was booked to the consumer."""

    claim_id: int
    amount: int
    bank_reference: bytes

    PRIMARY_TYPE: ClassVar[str] = "ClaimPayment"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("uint64", "claimId"),
        ("uint128", "amount"),
        ("bytes32", "bankReference"),
    )


@dataclass(frozen=True)
class PaymentInstruction(_Message):
    """The bank feed's request to register a payment out of custody (at most ``amount``)."""

    instruction_id: bytes
    agreement_id: bytes
    payee: int
    amount: int

    PRIMARY_TYPE: ClassVar[str] = "PaymentInstruction"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "instructionId"),
        ("bytes32", "agreementId"),
        ("uint8", "payee"),
        ("uint128", "amount"),
    )


@dataclass(frozen=True)
class InstructionOutcome(_Message):
    """The bank's report that it rejected an instruction or that a paid one came back."""

    instruction_id: bytes
    outcome: int
    bank_reference: bytes
    reason_code: bytes

    PRIMARY_TYPE: ClassVar[str] = "InstructionOutcome"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("bytes32", "instructionId"),
        ("uint8", "outcome"),
        ("bytes32", "bankReference"),
        ("bytes32", "reasonCode"),
    )


@dataclass(frozen=True)
class CustodyReconciliation(_Message):
    """The bank's end-of-day statement of a merchant's custody account.

    ``business_day`` is the statement date in days since 1970-01-01 (see :func:`business_day`),
    ``statement_balance`` its closing balance in fen, ``statement_hash`` the SHA-256 of the raw
    camt.053 file.
    """

    merchant: str
    business_day: int
    statement_balance: int
    statement_hash: bytes

    PRIMARY_TYPE: ClassVar[str] = "CustodyReconciliation"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("address", "merchant"),
        ("uint64", "businessDay"),
        ("uint128", "statementBalance"),
        ("bytes32", "statementHash"),
    )


@dataclass(frozen=True)
class LicenceAttestation(_Message):
    """The licence oracle's finding about a merchant."""

    merchant: str
    status: int
    licensed_since: int
    flags: int
    checked_at: int
    response_hash: bytes

    PRIMARY_TYPE: ClassVar[str] = "LicenceAttestation"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("address", "merchant"),
        ("uint8", "status"),
        ("uint64", "licensedSince"),
        ("uint16", "flags"),
        ("uint64", "checkedAt"),
        ("bytes32", "responseHash"),
    )


@dataclass(frozen=True)
class RiskReport(_Message):
    """The risk oracle's tier for a merchant."""

    merchant: str
    tier: int
    score: int
    signals_hash: bytes

    PRIMARY_TYPE: ClassVar[str] = "RiskReport"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("address", "merchant"),
        ("uint8", "tier"),
        ("uint32", "score"),
        ("bytes32", "signalsHash"),
    )


def label(text: str) -> bytes:
    """A short ASCII name as the left-aligned bytes32 that contract errors carry."""
    raw = text.encode("ascii")
    if len(raw) > 32:
        raise ValueError(f"label longer than 32 bytes: {text!r}")
    return raw.ljust(32, b"\0")


def address_subject(address: str) -> bytes:
    """A merchant's address as the bytes32 subject the contracts use."""
    return bytes(12) + to_canonical_address(address)


def claim_subject(claim_id: int) -> bytes:
    """An insurance claim's id as the bytes32 subject of the bank feed's report paying it."""
    return claim_id.to_bytes(32, "big")


def business_day(statement_date: date) -> int:
    """A statement date as ``CustodyReconciliation.businessDay``: days since 1970-01-01."""
    return (statement_date - _EPOCH).days


def organisation_id(handle: str) -> bytes:
    """The on-chain id of an organisation named by its config handle."""
    return _hash_text(f"yufu.organisation.{handle}")


def industry_id(industry: str) -> bytes:
    """The on-chain id of an industry, e.g. ``industry_id("training")``."""
    return _hash_text(f"yufu.industry.{industry}")
