"""The steps of a prepaid plan's life, played with the devnet's keys.

``PlanDesk`` strings the client's calls together the way the parties do in real life: the
regulator onboards a merchant, merchant and consumer sign, the bank feed reports the payment,
merchant and consumer sign each consumption, and so on. The demo (``make run``), the gas report
and the tests all use it, so each step is written once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_account import Account

from chain import messages as m
from chain.client import TxResult, YufuClient
from chain.config import DevnetConfig
from chain.deploy import DeployedSystem, feed_id

SECONDS_PER_DAY: int = 86_400
# A licence issued this long before onboarding passes the six-month minimum comfortably.
DEFAULT_LICENCE_AGE_DAYS: int = 400
# How long a consumer's signed request stays valid.
REQUEST_LIFETIME_SECONDS: int = 3_600


def sha256(data: bytes | str) -> bytes:
    """SHA-256 of bytes or of a UTF-8 string."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()


@dataclass(frozen=True)
class SignedAgreement:
    """Terms and both parties' signatures, ready to submit."""

    terms: m.AgreementTerms
    merchant_signature: bytes
    consumer_signature: bytes


@dataclass(frozen=True)
class SignedRecord:
    """A consumption record and both parties' signatures, ready to submit."""

    record: m.ConsumptionRecord
    merchant_signature: bytes
    consumer_signature: bytes


class PlanDesk:
    """Plays the parties of the devnet configuration against a deployed system."""

    def __init__(self, system: DeployedSystem, config: DevnetConfig) -> None:
        self.system = system
        self.config = config
        self.client: YufuClient = system.client
        organisations = config.organisations
        self.regulator_key = config.regulator.key.private_key
        self.operator_key = organisations["operator"].key.private_key
        self.insurer_key = organisations["insurer"].key.private_key
        self.bank_oracle_key = organisations["bank_feed"].key.private_key
        self.licence_oracle_key = organisations["licence_feed"].key.private_key
        self.risk_oracle_key = organisations["risk_feed"].key.private_key
        feeds = config.oracle_feeds
        self.bank_signers = [s.private_key for s in feeds["bank_feed"].signers]
        self.licence_signers = [s.private_key for s in feeds["licence_feed"].signers]
        self.risk_signers = [s.private_key for s in feeds["risk_feed"].signers]
        self._bank_sequence = 0

    # ------------------------------------------------------------ onboarding

    def admit_merchant(self, merchant_key: str, name: str) -> TxResult:
        """The regulator admits a merchant's account as a member."""
        address = Account.from_key(merchant_key).address
        return self.client.admit(
            self.regulator_key, address, m.Role.MERCHANT, m.organisation_id(f"merchant.{name}")
        )

    @staticmethod
    def receiving_account(uscc: str) -> str:
        """The devnet merchant's own bank account, where released money is paid."""
        return f"RCV-{uscc}"

    def apply(self, merchant_key: str, uscc: str, name: str, industry: str) -> TxResult:
        """The merchant applies with hashes of its code, name and receiving account."""
        return self.client.apply_as_merchant(
            merchant_key,
            sha256(uscc),
            sha256(name),
            m.industry_id(industry),
            sha256(self.receiving_account(uscc)),
        )

    def attest_licence(
        self,
        merchant: str,
        *,
        status: m.LicenceStatus = m.LicenceStatus.ACTIVE,
        flags: int = 0,
        licensed_since: int | None = None,
        signer_keys: Sequence[str] | None = None,
    ) -> TxResult:
        """The licence feed attests a merchant's licence (active and old enough by default)."""
        now = self.client.latest_timestamp()
        attestation = m.LicenceAttestation(
            merchant=merchant,
            status=status,
            licensed_since=(
                now - DEFAULT_LICENCE_AGE_DAYS * SECONDS_PER_DAY
                if licensed_since is None
                else licensed_since
            ),
            flags=flags,
            checked_at=now,
            response_hash=sha256(f"registry-response:{merchant}:{now}:{status}:{flags}"),
        )
        report, signatures = self.client.make_report(
            feed_id("licence_feed"),
            m.address_subject(merchant),
            attestation,
            self.licence_signers if signer_keys is None else signer_keys,
        )
        return self.client.attest_licence(self.licence_oracle_key, attestation, report, signatures)

    def renew_licence_checks(self, merchants: Iterable[str]) -> list[str]:
        """Attest each merchant's licence again once its last check is half its validity old.

        What the licence oracle does as time runs (it re-attests before a check expires), for
        harnesses that move the clock by days; returns the merchants attested again.
        """
        latest = self.client.latest_timestamp()
        validity = self.client.licence_validity()
        renewed = []
        for merchant in merchants:
            if latest - self.client.get_merchant(merchant).licence_checked_at >= validity // 2:
                self.attest_licence(merchant)
                renewed.append(merchant)
        return renewed

    def onboard(self, merchant_key: str, uscc: str, name: str, industry: str) -> str:
        """Admit, apply, attest the licence and approve; returns the merchant's address."""
        address = Account.from_key(merchant_key).address
        self.admit_merchant(merchant_key, name)
        self.apply(merchant_key, uscc, name, industry)
        self.attest_licence(address)
        self.client.approve_merchant(self.regulator_key, address, sha256(f"approval:{uscc}"))
        return address

    # ------------------------------------------------------------ signing

    def sign_agreement(
        self,
        merchant_key: str,
        consumer_key: str,
        template_id: int,
        *,
        units: int,
        unit_price: int,
        bonus: int = 0,
        term_days: int = 60,
        salt: bytes | None = None,
        document: str | None = None,
    ) -> SignedAgreement:
        """Merchant and consumer sign a plan; total paid = units × unit price − bonus."""
        merchant = Account.from_key(merchant_key).address
        consumer = Account.from_key(consumer_key).address
        salt = os.urandom(32) if salt is None else salt
        terms = m.AgreementTerms(
            merchant=merchant,
            consumer=consumer,
            template_id=template_id,
            document_hash=sha256(document or f"filled contract {salt.hex()}"),
            units=units,
            unit_price=unit_price,
            total_paid=units * unit_price - bonus,
            bonus=bonus,
            expiry=self.client.latest_timestamp() + term_days * SECONDS_PER_DAY,
            salt=salt,
        )
        domain = self.client.book_domain()
        return SignedAgreement(
            terms, terms.sign(merchant_key, domain), terms.sign(consumer_key, domain)
        )

    def open(
        self, signed: SignedAgreement, submitter_key: str | None = None
    ) -> tuple[bytes, TxResult]:
        """Submit a signed plan (by the operator unless told otherwise)."""
        return self.client.open_agreement(
            submitter_key or self.operator_key,
            signed.terms,
            signed.merchant_signature,
            signed.consumer_signature,
        )

    # ------------------------------------------------------------ bank feed

    def next_bank_reference(self) -> bytes:
        """A fresh bank reference, as the bank's statement would carry one."""
        self._bank_sequence += 1
        return sha256(f"bank-reference:{self._bank_sequence}:{os.urandom(8).hex()}")

    def fund(
        self,
        agreement_id: bytes,
        amount: int,
        *,
        bank_reference: bytes | None = None,
        paid_at: int | None = None,
        signer_keys: Sequence[str] | None = None,
    ) -> TxResult:
        """The bank feed reports the consumer's payment into custody (booked now by default)."""
        funding = m.FundingReport(
            agreement_id=agreement_id,
            amount=amount,
            bank_reference=bank_reference or self.next_bank_reference(),
            paid_at=self.client.latest_timestamp() if paid_at is None else paid_at,
        )
        report, signatures = self.client.make_report(
            feed_id("bank_feed"),
            agreement_id,
            funding,
            self.bank_signers if signer_keys is None else signer_keys,
        )
        return self.client.confirm_funding(self.bank_oracle_key, funding, report, signatures)

    def instruct_payment(
        self,
        agreement_id: bytes,
        payee: m.Payee,
        amount: int,
        *,
        instruction_id: bytes | None = None,
        signer_keys: Sequence[str] | None = None,
    ) -> tuple[bytes, TxResult]:
        """The bank feed registers a payment out of custody; returns its id and the result.

        The book instructs what is due and not yet instructed, up to ``amount``.
        """
        instruction = m.PaymentInstruction(
            instruction_id=instruction_id
            or sha256(f"instruction:{agreement_id.hex()}:{payee}:{amount}:{os.urandom(8).hex()}"),
            agreement_id=agreement_id,
            payee=payee,
            amount=amount,
        )
        report, signatures = self.client.make_report(
            feed_id("bank_feed"),
            agreement_id,
            instruction,
            self.bank_signers if signer_keys is None else signer_keys,
        )
        result = self.client.instruct_payment(self.bank_oracle_key, instruction, report, signatures)
        return instruction.instruction_id, result

    def confirm_payout(
        self,
        agreement_id: bytes,
        payee: m.Payee,
        amount: int,
        *,
        bank_reference: bytes | None = None,
        instruction_id: bytes | None = None,
        signer_keys: Sequence[str] | None = None,
    ) -> TxResult:
        """The bank feed reports that it paid an instruction.

        Without ``instruction_id`` the payment is first registered for ``amount`` (the bank pays
        only registered instructions), as the bank oracle does before it sends the bank a pain.001.
        """
        if instruction_id is None:
            instruction_id, _ = self.instruct_payment(agreement_id, payee, amount)
        payout = m.PayoutReport(
            agreement_id=agreement_id,
            payee=payee,
            amount=amount,
            bank_reference=bank_reference or self.next_bank_reference(),
            instruction_id=instruction_id,
        )
        report, signatures = self.client.make_report(
            feed_id("bank_feed"),
            agreement_id,
            payout,
            self.bank_signers if signer_keys is None else signer_keys,
        )
        return self.client.confirm_payout(self.bank_oracle_key, payout, report, signatures)

    def report_instruction_outcome(
        self,
        instruction_id: bytes,
        outcome: m.InstructionState,
        *,
        reason_code: str = "AC01",
        bank_reference: bytes | None = None,
        signer_keys: Sequence[str] | None = None,
    ) -> TxResult:
        """The bank feed reports an instruction rejected, or its payment returned into custody."""
        result = m.InstructionOutcome(
            instruction_id=instruction_id,
            outcome=outcome,
            bank_reference=bank_reference or self.next_bank_reference(),
            reason_code=m.label(reason_code),
        )
        report, signatures = self.client.make_report(
            feed_id("bank_feed"),
            instruction_id,
            result,
            self.bank_signers if signer_keys is None else signer_keys,
        )
        return self.client.report_instruction_outcome(
            self.bank_oracle_key, result, report, signatures
        )

    def reconcile_custody(
        self,
        merchant: str,
        business_day: int,
        statement_balance: int,
        *,
        statement_hash: bytes | None = None,
        signer_keys: Sequence[str] | None = None,
    ) -> TxResult:
        """The bank feed reports a merchant's end-of-day custody balance for reconciliation."""
        reconciliation = m.CustodyReconciliation(
            merchant=merchant,
            business_day=business_day,
            statement_balance=statement_balance,
            statement_hash=statement_hash
            or sha256(f"camt.053:{merchant}:{business_day}:{os.urandom(8).hex()}"),
        )
        report, signatures = self.client.make_report(
            feed_id("bank_feed"),
            m.address_subject(merchant),
            reconciliation,
            self.bank_signers if signer_keys is None else signer_keys,
        )
        return self.client.reconcile_custody(
            self.bank_oracle_key, reconciliation, report, signatures
        )

    # ------------------------------------------------------------ consumption

    def sign_record(
        self,
        agreement_id: bytes,
        sequence: int,
        merchant_key: str,
        consumer_key: str,
        *,
        units: int = 1,
        unit_price: int | None = None,
        consumed_at: int | None = None,
    ) -> SignedRecord:
        """Merchant writes and consumer confirms one consumption record."""
        if unit_price is None:
            unit_price = self.client.get_agreement(agreement_id).unit_price
        record = m.ConsumptionRecord(
            agreement_id=agreement_id,
            sequence=sequence,
            units=units,
            amount=units * unit_price,
            consumed_at=self.client.latest_timestamp() if consumed_at is None else consumed_at,
            receipt_hash=sha256(f"receipt:{agreement_id.hex()}:{sequence}"),
        )
        domain = self.client.book_domain()
        return SignedRecord(
            record, record.sign(merchant_key, domain), record.sign(consumer_key, domain)
        )

    def consume(self, signed: SignedRecord, submitter_key: str | None = None) -> TxResult:
        """Submit one signed consumption record."""
        return self.client.record_consumption(
            submitter_key or self.operator_key,
            signed.record,
            signed.merchant_signature,
            signed.consumer_signature,
        )

    def consume_batch(
        self, batch: Sequence[SignedRecord], submitter_key: str | None = None
    ) -> TxResult:
        """Submit many signed consumption records in one transaction."""
        return self.client.record_consumption_batch(
            submitter_key or self.operator_key,
            [signed.record for signed in batch],
            [signed.merchant_signature for signed in batch],
            [signed.consumer_signature for signed in batch],
        )

    # ------------------------------------------------------------ ending plans

    def consumer_request(
        self,
        agreement_id: bytes,
        consumer_key: str,
        action: m.ConsumerAction,
        *,
        min_refund: int = 0,
        nonce: int | None = None,
        deadline: int | None = None,
    ) -> tuple[m.ConsumerRequest, bytes]:
        """The consumer signs a request; returns it and the signature."""
        request = m.ConsumerRequest(
            agreement_id=agreement_id,
            action=action,
            min_refund=min_refund,
            nonce=int.from_bytes(os.urandom(8), "big") if nonce is None else nonce,
            deadline=(
                self.client.latest_timestamp() + REQUEST_LIFETIME_SECONDS
                if deadline is None
                else deadline
            ),
        )
        return request, request.sign(consumer_key, self.client.book_domain())

    def cool_off(self, agreement_id: bytes, consumer_key: str) -> TxResult:
        """The consumer cancels within the cooling-off period, for the whole payment back."""
        paid = self.client.get_agreement(agreement_id).total_paid
        request, signature = self.consumer_request(
            agreement_id, consumer_key, m.ConsumerAction.COOLING_OFF, min_refund=paid
        )
        return self.client.cancel_in_cooling_off(self.operator_key, request, signature)

    def terminate(
        self, agreement_id: bytes, consumer_key: str, *, min_refund: int | None = None
    ) -> TxResult:
        """The consumer ends the plan early, binding the refund previewed now (by default)."""
        if min_refund is None:
            min_refund = self.client.preview_refund(agreement_id).refund
        request, signature = self.consumer_request(
            agreement_id, consumer_key, m.ConsumerAction.TERMINATE, min_refund=min_refund
        )
        return self.client.terminate(self.operator_key, request, signature)

    def settle_default(self, merchant: str, agreement_ids: Sequence[bytes]) -> list[TxResult]:
        """Settle a defaulted merchant's plans, then, once all are settled, distribute its set-off.

        The regulator does both steps; the distribution covers every plan of the merchant.
        """
        results = [self.client.settle_default(self.regulator_key, list(agreement_ids))]
        _, settled, distributed = self.client.set_off_of(merchant)
        # This helper distributes every plan at once, the first time all are settled.
        if settled == self.client.agreement_count(merchant) and distributed == 0:
            every_plan = self.client.agreements_of(merchant)
            results.append(self.client.distribute_set_off(self.regulator_key, merchant, every_plan))
        return results

    def write_policy(
        self, merchant: str, coverage_limit: int, days: int = 365, *, register: bool = True
    ) -> int:
        """The insurer writes a performance bond on a merchant (in force from a day ago for
        ``days``) and, unless told not to, the regulator registers it; returns the policy id."""
        now = self.client.latest_timestamp()
        policy_id, _ = self.client.write_policy(
            self.insurer_key,
            merchant,
            coverage_limit,
            now - SECONDS_PER_DAY,
            now + days * SECONDS_PER_DAY,
            sha256(f"policy:{merchant}:{now}:{os.urandom(8).hex()}"),
        )
        if register:
            self.register_policy(policy_id)
        return policy_id

    def register_policy(self, policy_id: int) -> TxResult:
        """The regulator registers a policy the insurer wrote; from then on it counts."""
        return self.client.register_policy(self.regulator_key, policy_id)

    def confirm_claim_paid(
        self,
        claim_id: int,
        amount: int,
        *,
        bank_reference: bytes | None = None,
        signer_keys: Sequence[str] | None = None,
    ) -> TxResult:
        """The bank feed reports that the insurer's payment on a claim reached the consumer."""
        payment = m.ClaimPayment(
            claim_id=claim_id,
            amount=amount,
            bank_reference=bank_reference or self.next_bank_reference(),
        )
        report, signatures = self.client.make_report(
            feed_id("bank_feed"),
            m.claim_subject(claim_id),
            payment,
            self.bank_signers if signer_keys is None else signer_keys,
        )
        return self.client.confirm_claim_paid(self.bank_oracle_key, payment, report, signatures)

    def file_complaint(self, agreement_id: bytes, consumer_key: str, text: str) -> int:
        """The consumer complains; the operator files it. Returns the complaint id."""
        evidence = sha256(text)
        deadline = self.client.latest_timestamp() + REQUEST_LIFETIME_SECONDS
        request = m.ComplaintRequest(agreement_id, evidence, deadline)
        signature = request.sign(consumer_key, self.client.complaints_domain())
        complaint_id, _ = self.client.file_complaint(
            self.operator_key, agreement_id, evidence, deadline, signature
        )
        return complaint_id
