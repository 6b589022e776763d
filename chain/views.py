"""What Yufu's contracts return from their views, as typed, read-only Python records.

Each class mirrors one Solidity struct field for field, in order, so a tuple returned by web3
converts with ``Class(*values)``. Amounts are integer fen.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    """Mirror of ``IAgreementBook.Agreement``."""

    merchant: str
    template_id: int
    state: int
    custody_bps: int
    upfront_released: bool
    consumer: str
    expiry: int
    document_hash: bytes
    units: int
    units_consumed: int
    next_sequence: int
    funded_at: int
    unit_price: int
    total_paid: int
    bonus: int
    value_consumed: int


@dataclass(frozen=True)
class Ledger:
    """Mirror of ``IAgreementBook.Ledger``."""

    deposited: int
    frozen: int
    released: int
    refunded: int
    upfront: int
    refund_due: int
    merchant_owed: int
    insured_shortfall: int
    paid_to_merchant: int
    paid_to_consumer: int
    instructed_to_merchant: int
    instructed_to_consumer: int
    credits_refused: int
    set_off_given: int
    set_off_covered: int

    def unpaid_to_merchant(self) -> int:
        """What the merchant is entitled to and the bank has not paid out yet."""
        return self.upfront + self.released - self.paid_to_merchant - self.set_off_given

    def unpaid_to_consumer(self) -> int:
        """What custody owes the consumer (refunds, refused credits) and the bank has not paid."""
        return self.refunded + self.credits_refused + self.set_off_covered - self.paid_to_consumer

    def uninstructed_to_consumer(self) -> int:
        """What custody owes the consumer (refunds, refused credits) not yet instructed."""
        owed = self.refunded + self.credits_refused + self.set_off_covered
        return owed - self.instructed_to_consumer

    def is_conserved(self) -> bool:
        """deposited = frozen + released + refunded + upfront."""
        return self.deposited == self.frozen + self.released + self.refunded + self.upfront


@dataclass(frozen=True)
class Instruction:
    """Mirror of ``ICustodyDesk.Instruction``: a registered payment out of custody."""

    agreement_id: bytes
    payee: int
    state: int
    amount: int


@dataclass(frozen=True)
class Merchant:
    """Mirror of ``IMerchantRegistry.Merchant``."""

    status: int
    tier: int
    tier_floor: int  # the lowest tier the risk feed may set
    licence: int
    licence_flags: int
    licensed_since: int
    licence_checked_at: int
    industry: bytes
    uscc_hash: bytes
    name_hash: bytes
    receiving_account_hash: bytes


@dataclass(frozen=True)
class CustodyAnomalies:
    """Mirror of ``IMerchantRegistry.CustodyAnomalies``; ``count`` 0 means none so far."""

    count: int
    last_flagged_at: int
    last_reason_hash: bytes


@dataclass(frozen=True)
class Template:
    """Mirror of ``ITemplateRegistry.Template``."""

    industry: bytes
    document_hash: bytes
    version: int
    max_amount: int
    max_term_days: int
    max_units: int
    cooling_off_days: int
    min_custody_bps: int
    refund_rule: int
    refund_rounding_fen: int
    active: bool

    def as_abi(self) -> tuple[object, ...]:
        """The fields as web3 passes the struct."""
        return (
            self.industry,
            self.document_hash,
            self.version,
            self.max_amount,
            self.max_term_days,
            self.max_units,
            self.cooling_off_days,
            self.min_custody_bps,
            self.refund_rule,
            self.refund_rounding_fen,
            self.active,
        )


@dataclass(frozen=True)
class Policy:
    """Mirror of ``IInsurancePool.Policy``."""

    insurer: str
    merchant: str
    coverage_limit: int
    reserved: int
    start: int
    end: int
    document_hash: bytes
    registered_at: int

    @property
    def registered(self) -> bool:
        """Whether the regulator registered it (a pending policy covers nothing)."""
        return self.registered_at != 0


@dataclass(frozen=True)
class Claim:
    """Mirror of ``IInsurancePool.Claim``; ``policy_id`` is the first policy drawn on."""

    policy_id: int
    status: int
    agreement_id: bytes
    merchant: str
    consumer: str
    loss: int
    covered: int
    paid: int
    defaulted_at: int


@dataclass(frozen=True)
class ClaimPart:
    """Mirror of ``IInsurancePool.ClaimPart``: what one policy covers of a claim."""

    policy_id: int
    amount: int


@dataclass(frozen=True)
class Complaint:
    """Mirror of ``IComplaintDesk.Complaint``."""

    agreement_id: bytes
    merchant: str
    consumer: str
    status: int
    upheld: bool
    filed_at: int
    evidence_hash: bytes
    answer_hash: bytes
    resolution_hash: bytes


@dataclass(frozen=True)
class ComplaintStats:
    """Mirror of ``IComplaintDesk.ComplaintStats``."""

    filed: int
    open: int
    upheld: int


@dataclass(frozen=True)
class Anchor:
    """Mirror of ``IEvidenceRegistry.Anchor``; ``block_number`` 0 means never anchored."""

    block_number: int
    timestamp: int
    kind: int
    submitter: str
    subject: bytes


@dataclass(frozen=True)
class FeedConfig:
    """Mirror of ``IOracleHub.FeedConfig``."""

    signers: tuple[str, ...]
    threshold: int
    version: int


@dataclass(frozen=True)
class RefundPreview:
    """What terminating a plan now would refund, in fen."""

    refund: int
    from_custody: int
    shortfall: int
