"""A typed Python client for Yufu's contracts.

``YufuClient`` holds one web3 handle per system contract and offers one method per contract
function, named as in Solidity but in snake case. Transactions are signed locally with the
sender's private key and sent raw, so the same client works against eth-tester, anvil and the
Yufu node. Custom errors come back as :class:`chain.errors.ContractRevert` carrying the error's
name and decoded arguments, and receipts come back with their Yufu events decoded.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_tester.exceptions import TransactionFailed as TesterTransactionFailed
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from chain import messages as m
from chain import views as v
from chain.compiler import load_contract
from chain.errors import ChainError, ContractRevert, TransactionFailed, UnknownRevert

SYSTEM_CONTRACTS: tuple[str, ...] = (
    "Membership",
    "EvidenceRegistry",
    "OracleHub",
    "TemplateRegistry",
    "MerchantRegistry",
    "InsurancePool",
    "AgreementBook",
    "ComplaintDesk",
    "CustodyDesk",
)

# Multiplies a gas estimate: estimates can fall short when a call's gas use depends on the
# gas it is given (the 63/64 rule for calls into other contracts).
GAS_MARGIN: float = 1.25


@dataclass(frozen=True)
class SystemAddresses:
    """Where each system contract lives."""

    membership: str
    evidence: str
    oracle_hub: str
    templates: str
    merchants: str
    insurance: str
    book: str
    complaints: str
    custody: str

    def by_contract(self) -> dict[str, str]:
        """Addresses keyed by Solidity contract name."""
        return dict(zip(SYSTEM_CONTRACTS, self.as_tuple(), strict=True))

    def as_tuple(self) -> tuple[str, ...]:
        """Addresses in ``SYSTEM_CONTRACTS`` order."""
        return (
            self.membership,
            self.evidence,
            self.oracle_hub,
            self.templates,
            self.merchants,
            self.insurance,
            self.book,
            self.complaints,
            self.custody,
        )


@dataclass(frozen=True)
class Event:
    """One decoded log: the event's name, its arguments and the emitting contract."""

    name: str
    args: dict[str, Any]
    address: str
    log_index: int


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction and its decoded Yufu events."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[Event, ...] = field(default=())

    def named(self, name: str) -> list[Event]:
        """Every event called ``name``, in log order."""
        return [event for event in self.events if event.name == name]

    def event(self, name: str) -> Event:
        """The single event called ``name``; raises ``LookupError`` if absent or repeated."""
        found = self.named(name)
        if len(found) != 1:
            raise LookupError(f"expected one {name} event in {self.tx_hash}, found {len(found)}")
        return found[0]


@cache
def abi_of(contract_name: str) -> tuple[dict[str, Any], ...]:
    """The ABI of a compiled Yufu contract (compiled once per process, cached on disk)."""
    return tuple(load_contract(contract_name).abi)


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    """Every Yufu custom error by 4-byte selector: name and argument types."""
    table: dict[bytes, tuple[str, list[str]]] = {}
    for name in SYSTEM_CONTRACTS:
        for entry in abi_of(name):
            if entry.get("type") == "error":
                types = [_abi_type(item) for item in entry.get("inputs", [])]
                selector = function_abi_to_4byte_selector(cast(Any, entry))
                table[selector] = (entry["name"], types)
    return table


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(component) for component in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def decode_revert(data: bytes | str | None) -> ChainError:
    """Turn revert data into a :class:`ContractRevert` (Yufu error) or :class:`UnknownRevert`."""
    raw = bytes(HexBytes(data)) if data else b""
    entry = _error_table().get(raw[:4])
    if entry is None:
        return UnknownRevert(f"reverted with data 0x{raw.hex()}", raw)
    name, types = entry
    return ContractRevert(name, tuple(abi_decode(types, raw[4:])), raw)


_TESTER_PREFIX = "execution reverted: "


def _as_chain_error(error: Exception) -> ChainError:
    if isinstance(error, TesterTransactionFailed):
        # web3's eth-tester provider flattens the revert data into the message as a bytes repr.
        text = str(error.args[0]) if error.args else ""
        shown = text.removeprefix(_TESTER_PREFIX)
        if shown.startswith(("b'", 'b"')):
            return decode_revert(ast.literal_eval(shown))
        return UnknownRevert(text)
    if isinstance(error, ContractCustomError):
        return decode_revert(error.data if isinstance(error.data, str) else error.args[0])
    if isinstance(error, ContractPanicError):
        return UnknownRevert(f"panic: {error}")
    if isinstance(error, ContractLogicError):
        data = error.data if isinstance(error.data, str) else None
        if data and len(HexBytes(data)) >= 4:
            return decode_revert(data)
        return UnknownRevert(str(error))
    raise error


class YufuClient:
    """Calls and transactions on Yufu's system contracts.

    Parameters
    ----------
    w3
        A connected web3 instance.
    addresses
        Where the system contracts live.
    """

    def __init__(self, w3: Web3, addresses: SystemAddresses) -> None:
        self.w3 = w3
        self.addresses = addresses
        self.chain_id: int = w3.eth.chain_id
        self.membership = self._contract("Membership", addresses.membership)
        self.evidence = self._contract("EvidenceRegistry", addresses.evidence)
        self.oracle_hub = self._contract("OracleHub", addresses.oracle_hub)
        self.templates = self._contract("TemplateRegistry", addresses.templates)
        self.merchants = self._contract("MerchantRegistry", addresses.merchants)
        self.insurance = self._contract("InsurancePool", addresses.insurance)
        self.book = self._contract("AgreementBook", addresses.book)
        self.complaints = self._contract("ComplaintDesk", addresses.complaints)
        self.custody = self._contract("CustodyDesk", addresses.custody)
        self._events_by_topic = self._index_events()

    # ------------------------------------------------------------ plumbing

    def _contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=list(abi_of(name)))

    def _index_events(self) -> dict[bytes, tuple[Contract, str]]:
        table: dict[bytes, tuple[Contract, str]] = {}
        for contract in (
            self.membership,
            self.evidence,
            self.oracle_hub,
            self.templates,
            self.merchants,
            self.insurance,
            self.book,
            self.complaints,
            self.custody,
        ):
            for entry in cast(list[dict[str, Any]], contract.abi):
                if entry.get("type") == "event":
                    types = ",".join(_abi_type(item) for item in entry["inputs"])
                    table[keccak(text=f"{entry['name']}({types})")] = (contract, entry["name"])
        return table

    def call(self, function: Any) -> Any:
        """Run a view; a revert becomes a :class:`ContractRevert`."""
        try:
            return function.call()
        except (ContractCustomError, ContractLogicError, TesterTransactionFailed) as error:
            raise _as_chain_error(error) from None

    def transact(self, sender_key: str, function: Any, *, gas: int | None = None) -> TxResult:
        """Sign ``function`` as the holder of ``sender_key``, send it and wait for it.

        Raises
        ------
        ContractRevert
            The contract refused it; nothing was sent.
        TransactionFailed
            It was mined but failed.
        """
        sender = Account.from_key(sender_key).address
        nonce = self.w3.eth.get_transaction_count(sender, "pending")
        return self.send(sender_key, self.build(sender, function, nonce=nonce, gas=gas))

    def build(
        self, sender: str, function: Any, *, nonce: int, gas: int | None = None
    ) -> dict[str, Any]:
        """Build ``function`` as an unsigned transaction from ``sender`` with ``nonce``.

        Without ``gas`` it is estimated (with a margin), which also tries it at the head.

        Raises
        ------
        ContractRevert
            The contract would refuse it.
        """
        params: dict[str, Any] = {"from": sender, "nonce": nonce, "chainId": self.chain_id}
        try:
            if gas is None:
                params["gas"] = int(function.estimate_gas({"from": sender}) * GAS_MARGIN)
            else:
                params["gas"] = gas
            return dict(function.build_transaction(params))
        except (ContractCustomError, ContractLogicError, TesterTransactionFailed) as error:
            raise _as_chain_error(error) from None

    def send(self, sender_key: str, tx: dict[str, Any]) -> TxResult:
        """Sign a built transaction, send it raw and wait for its receipt."""
        signed = Account.sign_transaction(tx, sender_key)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise TransactionFailed(
                f"transaction 0x{bytes(tx_hash).hex()} failed in block {receipt['blockNumber']}"
            )
        return TxResult(
            tx_hash="0x" + bytes(tx_hash).hex(),
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            events=tuple(self.decode_logs(receipt["logs"])),
        )

    def decode_logs(self, logs: Iterable[Any]) -> list[Event]:
        """Decode the logs Yufu contracts emitted; other logs are skipped."""
        events: list[Event] = []
        for log in logs:
            if not log["topics"]:
                continue
            known = self._events_by_topic.get(bytes(log["topics"][0]))
            if known is None or to_checksum_address(log["address"]) != known[0].address:
                continue
            contract, name = known
            decoded = contract.events[name]().process_log(log)
            events.append(
                Event(name, dict(decoded["args"]), decoded["address"], decoded["logIndex"])
            )
        return events

    # ------------------------------------------------------------ EIP-712 domains

    def book_domain(self) -> m.Domain:
        """The domain of agreement, consumption and consumer-request signatures."""
        return m.Domain("Yufu AgreementBook", "1", self.chain_id, self.addresses.book)

    def hub_domain(self) -> m.Domain:
        """The domain of oracle report signatures."""
        return m.Domain("Yufu OracleHub", "1", self.chain_id, self.addresses.oracle_hub)

    def complaints_domain(self) -> m.Domain:
        """The domain of complaint signatures."""
        return m.Domain("Yufu ComplaintDesk", "1", self.chain_id, self.addresses.complaints)

    # ------------------------------------------------------------ Membership

    def admit(
        self, regulator_key: str, account: str, role: m.Role, organisation: bytes
    ) -> TxResult:
        """Grant ``role`` to ``account`` acting for ``organisation``."""
        return self.transact(
            regulator_key, self.membership.functions.admit(account, role, organisation)
        )

    def remove(self, regulator_key: str, account: str, role: m.Role) -> TxResult:
        """Take ``role`` from ``account``."""
        return self.transact(regulator_key, self.membership.functions.remove(account, role))

    def has_role(self, account: str, role: m.Role) -> bool:
        """Whether ``account`` holds ``role``."""
        return bool(self.call(self.membership.functions.hasRole(account, role)))

    def is_member(self, account: str) -> bool:
        """Whether ``account`` holds any role."""
        return bool(self.call(self.membership.functions.isMember(account)))

    def validators(self) -> list[str]:
        """The validator set."""
        return list(self.call(self.membership.functions.getValidators()))

    def transaction_allowed(self, sender: str, target: str | None, payload: bytes = b"") -> bool:
        """Besu's permissioning question for a transaction from ``sender`` to ``target``."""
        target = target or "0x" + "00" * 20
        function = self.membership.functions.transactionAllowed(sender, target, 0, 0, 0, payload)
        return bool(self.call(function))

    # ------------------------------------------------------------ EvidenceRegistry

    def anchor(
        self, sender_key: str, digest: bytes, kind: m.EvidenceKind, subject: bytes
    ) -> TxResult:
        """Anchor a hash as evidence."""
        return self.transact(sender_key, self.evidence.functions.anchor(digest, kind, subject))

    def anchor_batch(
        self, sender_key: str, root: bytes, kind: m.EvidenceKind, subject: bytes, leaf_count: int
    ) -> TxResult:
        """Anchor the Merkle root of a batch of hashes."""
        return self.transact(
            sender_key, self.evidence.functions.anchorBatch(root, kind, subject, leaf_count)
        )

    def lookup_evidence(self, digest: bytes) -> v.Anchor:
        """Where and when ``digest`` was anchored (block 0: never)."""
        return v.Anchor(*self.call(self.evidence.functions.lookup(digest)))

    def lookup_member_anchor(self, digest: bytes) -> v.Anchor:
        """The anchor a member organisation (not a system contract) wrote for ``digest``."""
        return v.Anchor(*self.call(self.evidence.functions.lookupMemberAnchor(digest)))

    def verify_in_batch(self, root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
        """Whether ``leaf`` is in the anchored batch ``root``."""
        return bool(self.call(self.evidence.functions.verifyInBatch(root, leaf, list(proof))))

    # ------------------------------------------------------------ OracleHub

    def configure_feed(
        self, regulator_key: str, feed: bytes, signers: Sequence[str], threshold: int
    ) -> TxResult:
        """Set a feed's signer set (sorted here) and threshold."""
        ordered = sorted((to_checksum_address(s) for s in signers), key=lambda a: int(a, 16))
        return self.transact(
            regulator_key, self.oracle_hub.functions.configureFeed(feed, ordered, threshold)
        )

    def set_report_consumer(self, regulator_key: str, consumer: str, allowed: bool) -> TxResult:
        """Allow or disallow a contract to consume oracle reports."""
        return self.transact(
            regulator_key, self.oracle_hub.functions.setConsumer(consumer, allowed)
        )

    def set_max_report_age(self, regulator_key: str, seconds: int) -> TxResult:
        """Set the maximum age of an oracle report."""
        return self.transact(regulator_key, self.oracle_hub.functions.setMaxReportAge(seconds))

    def feed_config(self, feed: bytes) -> v.FeedConfig:
        """A feed's signer set, threshold and version."""
        signers, threshold, version = self.call(self.oracle_hub.functions.feedConfig(feed))
        return v.FeedConfig(tuple(signers), threshold, version)

    def last_sequence(self, feed: bytes, subject: bytes) -> int:
        """The last accepted report sequence of (feed, subject)."""
        return int(self.call(self.oracle_hub.functions.lastSequence(feed, subject)))

    def make_report(
        self,
        feed: bytes,
        subject: bytes,
        payload: m._Message,
        signer_keys: Sequence[str],
        *,
        sequence: int | None = None,
        issued_at: int | None = None,
        config_version: int | None = None,
    ) -> tuple[m.OracleReport, list[bytes]]:
        """Build and sign a report carrying ``payload``; defaults read the chain.

        The sequence defaults to the subject's last accepted one plus one, the issue time to
        the latest block's timestamp, the configuration version to the feed's current one.
        """
        report = m.OracleReport(
            feed=feed,
            subject=subject,
            sequence=self.last_sequence(feed, subject) + 1 if sequence is None else sequence,
            issued_at=self.latest_timestamp() if issued_at is None else issued_at,
            config_version=(
                self.feed_config(feed).version if config_version is None else config_version
            ),
            payload_hash=payload.abi_hash(),
        )
        return report, report.sign_by(list(signer_keys), self.hub_domain())

    def latest_timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    # ------------------------------------------------------------ TemplateRegistry

    def register_template(self, regulator_key: str, terms: v.Template) -> tuple[int, TxResult]:
        """Register a template; returns its id."""
        result = self.transact(
            regulator_key, self.templates.functions.registerTemplate(terms.as_abi())
        )
        return int(result.event("TemplateRegistered").args["templateId"]), result

    def set_template_active(self, regulator_key: str, template_id: int, active: bool) -> TxResult:
        """Switch a template on or off for new plans."""
        return self.transact(
            regulator_key, self.templates.functions.setTemplateActive(template_id, active)
        )

    def get_template(self, template_id: int) -> v.Template:
        """The template ``template_id``."""
        return v.Template(*self.call(self.templates.functions.getTemplate(template_id)))

    def template_count(self) -> int:
        """How many templates exist."""
        return int(self.call(self.templates.functions.templateCount()))

    # ------------------------------------------------------------ MerchantRegistry

    def apply_as_merchant(
        self,
        merchant_key: str,
        uscc_hash: bytes,
        name_hash: bytes,
        industry: bytes,
        receiving_account_hash: bytes,
    ) -> TxResult:
        """The merchant applies to sell prepaid plans."""
        function = self.merchants.functions.applyAsMerchant(
            uscc_hash, name_hash, industry, receiving_account_hash
        )
        return self.transact(merchant_key, function)

    def attest_licence(
        self,
        oracle_key: str,
        attestation: m.LicenceAttestation,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Submit the licence feed's signed attestation."""
        function = self.merchants.functions.attestLicence(
            attestation.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(oracle_key, function)

    def approve_merchant(
        self, regulator_key: str, merchant: str, reason: bytes = bytes(32)
    ) -> TxResult:
        """Approve (or reinstate) a merchant."""
        return self.transact(regulator_key, self.merchants.functions.approve(merchant, reason))

    def suspend_merchant(
        self, regulator_key: str, merchant: str, reason: bytes = bytes(32)
    ) -> TxResult:
        """Suspend a merchant's new sales."""
        return self.transact(regulator_key, self.merchants.functions.suspend(merchant, reason))

    def revoke_merchant(
        self, regulator_key: str, merchant: str, reason: bytes = bytes(32)
    ) -> TxResult:
        """Remove a merchant from the platform."""
        return self.transact(regulator_key, self.merchants.functions.revoke(merchant, reason))

    def declare_default(
        self, regulator_key: str, merchant: str, reason: bytes = bytes(32)
    ) -> TxResult:
        """Declare a merchant in default."""
        return self.transact(
            regulator_key, self.merchants.functions.declareDefault(merchant, reason)
        )

    def set_risk_tier(
        self, regulator_key: str, merchant: str, tier: m.RiskTier, reason: bytes = bytes(32)
    ) -> TxResult:
        """Set a merchant's risk tier by decision."""
        return self.transact(
            regulator_key, self.merchants.functions.setRiskTier(merchant, tier, reason)
        )

    def report_risk(
        self,
        oracle_key: str,
        risk: m.RiskReport,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Submit the risk feed's signed tier."""
        function = self.merchants.functions.reportRisk(
            risk.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(oracle_key, function)

    def change_receiving_account(self, merchant_key: str, account_hash: bytes) -> TxResult:
        """The merchant points releases at a new account."""
        return self.transact(
            merchant_key, self.merchants.functions.changeReceivingAccount(account_hash)
        )

    def set_custody_floor(self, regulator_key: str, tier: m.RiskTier, bps: int) -> TxResult:
        """Set a tier's custody floor."""
        return self.transact(regulator_key, self.merchants.functions.setCustodyFloor(tier, bps))

    def set_min_licence_age(self, regulator_key: str, seconds: int) -> TxResult:
        """Set the minimum licence age."""
        return self.transact(regulator_key, self.merchants.functions.setMinLicenceAge(seconds))

    def set_licence_validity(self, regulator_key: str, seconds: int) -> TxResult:
        """Set how long a licence check stays valid."""
        return self.transact(regulator_key, self.merchants.functions.setLicenceValidity(seconds))

    def licence_validity(self) -> int:
        """How long a licence check stays valid, in seconds."""
        return int(self.call(self.merchants.functions.licenceValidity()))

    def get_merchant(self, merchant: str) -> v.Merchant:
        """A merchant's record."""
        return v.Merchant(*self.call(self.merchants.functions.getMerchant(merchant)))

    def can_sell(self, merchant: str) -> bool:
        """Whether the merchant may sell new plans now."""
        return bool(self.call(self.merchants.functions.canSell(merchant)))

    def licence_valid(self, merchant: str) -> bool:
        """Whether the merchant's licence is valid now."""
        return bool(self.call(self.merchants.functions.licenceValid(merchant)))

    def custody_ratio_bps(self, merchant: str, template_min_bps: int) -> int:
        """The custody ratio a new plan of the merchant gets."""
        return int(self.call(self.merchants.functions.custodyRatioBps(merchant, template_min_bps)))

    def custody_floor(self, tier: m.RiskTier) -> int:
        """A tier's custody floor in basis points."""
        return int(self.call(self.merchants.functions.custodyFloor(tier)))

    def flag_custody_anomaly(self, sender_key: str, merchant: str, reason_hash: bytes) -> TxResult:
        """Record a custody anomaly (system contracts only; the book calls it on a mismatch)."""
        return self.transact(
            sender_key, self.merchants.functions.flagCustodyAnomaly(merchant, reason_hash)
        )

    def custody_anomalies(self, merchant: str) -> v.CustodyAnomalies:
        """The custody anomalies recorded for a merchant."""
        return v.CustodyAnomalies(*self.call(self.merchants.functions.custodyAnomalies(merchant)))

    def defaulted_at(self, merchant: str) -> int:
        """When a merchant was declared in default (unix seconds), 0 if it never was."""
        return int(self.call(self.merchants.functions.defaultedAt(merchant)))

    # ------------------------------------------------------------ InsurancePool

    def write_policy(
        self,
        insurer_key: str,
        merchant: str,
        coverage_limit: int,
        start: int,
        end: int,
        document_hash: bytes,
    ) -> tuple[int, TxResult]:
        """Write a policy on a merchant; returns its id. It is pending until registered."""
        function = self.insurance.functions.writePolicy(
            merchant, coverage_limit, start, end, document_hash
        )
        result = self.transact(insurer_key, function)
        return int(result.event("PolicyWritten").args["policyId"]), result

    def register_policy(self, regulator_key: str, policy_id: int) -> TxResult:
        """The regulator registers a pending policy; from then on it covers its merchant."""
        return self.transact(regulator_key, self.insurance.functions.registerPolicy(policy_id))

    def confirm_claim_paid(
        self,
        oracle_key: str,
        payment: m.ClaimPayment,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Submit the bank feed's report that the insurer's payment on a claim was booked."""
        function = self.insurance.functions.confirmClaimPaid(
            payment.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(oracle_key, function)

    def get_policy(self, policy_id: int) -> v.Policy:
        """The policy ``policy_id``."""
        return v.Policy(*self.call(self.insurance.functions.getPolicy(policy_id)))

    def get_claim(self, claim_id: int) -> v.Claim:
        """The claim ``claim_id``."""
        return v.Claim(*self.call(self.insurance.functions.getClaim(claim_id)))

    def claim_of_agreement(self, agreement_id: bytes) -> int:
        """The claim opened for an agreement, 0 if none."""
        return int(self.call(self.insurance.functions.claimOfAgreement(agreement_id)))

    def policies_of(self, merchant: str) -> list[int]:
        """Ids of the policies registered on a merchant, in registration order."""
        return list(self.call(self.insurance.functions.policiesOf(merchant)))

    def claim_parts(self, claim_id: int) -> list[v.ClaimPart]:
        """What each policy covers of a claim, in the order the claim drew on them."""
        parts = self.call(self.insurance.functions.claimParts(claim_id))
        return [v.ClaimPart(*part) for part in parts]

    # ------------------------------------------------------------ AgreementBook

    def open_agreement(
        self,
        submitter_key: str,
        terms: m.AgreementTerms,
        merchant_signature: bytes,
        consumer_signature: bytes,
    ) -> tuple[bytes, TxResult]:
        """Record a plan both parties signed; returns its id."""
        function = self.book.functions.openAgreement(
            terms.as_abi(), merchant_signature, consumer_signature
        )
        result = self.transact(submitter_key, function)
        return bytes(result.event("AgreementOpened").args["agreementId"]), result

    def confirm_funding(
        self,
        oracle_key: str,
        funding: m.FundingReport,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Submit the bank feed's report that a payment arrived in custody."""
        function = self.book.functions.confirmFunding(
            funding.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(oracle_key, function)

    def record_consumption(
        self,
        submitter_key: str,
        record: m.ConsumptionRecord,
        merchant_signature: bytes,
        consumer_signature: bytes,
    ) -> TxResult:
        """Record one consumption."""
        function = self.book.functions.recordConsumption(
            record.as_abi(), merchant_signature, consumer_signature
        )
        return self.transact(submitter_key, function)

    def record_consumption_batch(
        self,
        submitter_key: str,
        records: Sequence[m.ConsumptionRecord],
        merchant_signatures: Sequence[bytes],
        consumer_signatures: Sequence[bytes],
    ) -> TxResult:
        """Record many consumptions, all or nothing."""
        function = self.book.functions.recordConsumptionBatch(
            [record.as_abi() for record in records],
            list(merchant_signatures),
            list(consumer_signatures),
        )
        return self.transact(submitter_key, function)

    def cancel_in_cooling_off(
        self, submitter_key: str, request: m.ConsumerRequest, consumer_signature: bytes
    ) -> TxResult:
        """Cancel an unused plan within its cooling-off period, at the consumer's request."""
        function = self.book.functions.cancelInCoolingOff(request.as_abi(), consumer_signature)
        return self.transact(submitter_key, function)

    def terminate(
        self, submitter_key: str, request: m.ConsumerRequest, consumer_signature: bytes
    ) -> TxResult:
        """End a plan early at the consumer's request (which binds the least refund)."""
        function = self.book.functions.terminate(request.as_abi(), consumer_signature)
        return self.transact(submitter_key, function)

    def revoke_request(
        self, submitter_key: str, request: m.ConsumerRequest, consumer_signature: bytes
    ) -> TxResult:
        """Withdraw a consumer's unexecuted request (a signed Revoke with its nonce)."""
        function = self.book.functions.revokeRequest(request.as_abi(), consumer_signature)
        return self.transact(submitter_key, function)

    def expire(self, sender_key: str, agreement_id: bytes) -> TxResult:
        """Close an expired plan."""
        return self.transact(sender_key, self.book.functions.expire(agreement_id))

    def settle_default(self, sender_key: str, agreement_ids: Sequence[bytes]) -> TxResult:
        """Settle plans of a defaulted merchant (refunds from custody, entitlement set aside)."""
        return self.transact(sender_key, self.book.functions.settleDefault(list(agreement_ids)))

    def distribute_set_off(
        self, sender_key: str, merchant: str, agreement_ids: Sequence[bytes]
    ) -> TxResult:
        """Pay settled plans' shortfalls from the merchant's set-off pool, then insurance."""
        return self.transact(
            sender_key, self.book.functions.distributeSetOff(merchant, list(agreement_ids))
        )

    def set_off_of(self, merchant: str) -> tuple[int, int, int]:
        """A defaulted merchant's set-off pool, plans settled and plans distributed."""
        pool, settled, distributed = self.call(self.book.functions.setOffOf(merchant))
        return int(pool), int(settled), int(distributed)

    def instruct_payment(
        self,
        oracle_key: str,
        instruction: m.PaymentInstruction,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Register a payment out of custody (the bank pays only registered instructions)."""
        function = self.custody.functions.instructPayment(
            instruction.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(oracle_key, function)

    def report_instruction_outcome(
        self,
        oracle_key: str,
        outcome: m.InstructionOutcome,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Submit the bank feed's report that an instruction was rejected or its money returned."""
        function = self.custody.functions.reportInstructionOutcome(
            outcome.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(oracle_key, function)

    def get_instruction(self, instruction_id: bytes) -> v.Instruction:
        """The payment instruction ``instruction_id`` (state NONE if unknown)."""
        return v.Instruction(*self.call(self.custody.functions.getInstruction(instruction_id)))

    def confirm_payout(
        self,
        oracle_key: str,
        payout: m.PayoutReport,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Submit the bank feed's report that a release or refund was paid."""
        function = self.custody.functions.confirmPayout(
            payout.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(oracle_key, function)

    def reconcile_custody(
        self,
        sender_key: str,
        reconciliation: m.CustodyReconciliation,
        report: m.OracleReport,
        signatures: Sequence[bytes],
    ) -> TxResult:
        """Submit the bank feed's end-of-day statement balance of a merchant's custody account."""
        function = self.custody.functions.reconcileCustody(
            reconciliation.as_abi(), report.as_abi(), list(signatures)
        )
        return self.transact(sender_key, function)

    def custody_held(self, merchant: str) -> int:
        """A merchant's custody by the chain: confirmed deposits − payouts + returns, fen."""
        return int(self.call(self.custody.functions.custodyHeld(merchant)))

    def last_reconciled_day(self, merchant: str) -> int:
        """The last statement day reconciled for a merchant (days since 1970-01-01), 0 if none."""
        return int(self.call(self.custody.functions.lastReconciledDay(merchant)))

    def preview_refund(self, agreement_id: bytes) -> v.RefundPreview:
        """What terminating the plan now would refund."""
        return v.RefundPreview(*self.call(self.book.functions.previewRefund(agreement_id)))

    def get_agreement(self, agreement_id: bytes) -> v.Agreement:
        """The agreement ``agreement_id``."""
        return v.Agreement(*self.call(self.book.functions.getAgreement(agreement_id)))

    def get_ledger(self, agreement_id: bytes) -> v.Ledger:
        """The money of agreement ``agreement_id``."""
        return v.Ledger(*self.call(self.book.functions.getLedger(agreement_id)))

    def agreements_of(self, merchant: str, offset: int = 0, limit: int = 1000) -> list[bytes]:
        """A page of a merchant's agreement ids."""
        page = self.call(self.book.functions.agreementsOf(merchant, offset, limit))
        return [bytes(agreement_id) for agreement_id in page]

    def agreement_count(self, merchant: str) -> int:
        """How many agreements a merchant has."""
        return int(self.call(self.book.functions.agreementCount(merchant)))

    def is_bank_reference_used(self, bank_reference: bytes) -> bool:
        """Whether a bank reference (credit, payout or return) was already reported."""
        return bool(self.call(self.custody.functions.isBankReferenceUsed(bank_reference)))

    # ------------------------------------------------------------ ComplaintDesk

    def file_complaint(
        self,
        operator_key: str,
        agreement_id: bytes,
        evidence_hash: bytes,
        deadline: int,
        consumer_signature: bytes,
    ) -> tuple[int, TxResult]:
        """File a consumer's signed complaint; returns its id."""
        function = self.complaints.functions.fileComplaint(
            agreement_id, evidence_hash, deadline, consumer_signature
        )
        result = self.transact(operator_key, function)
        return int(result.event("ComplaintFiled").args["complaintId"]), result

    def answer_complaint(
        self, merchant_key: str, complaint_id: int, answer_hash: bytes
    ) -> TxResult:
        """The merchant answers a complaint."""
        return self.transact(
            merchant_key, self.complaints.functions.answerComplaint(complaint_id, answer_hash)
        )

    def resolve_complaint(
        self, regulator_key: str, complaint_id: int, upheld: bool, resolution_hash: bytes
    ) -> TxResult:
        """The regulator resolves a complaint."""
        function = self.complaints.functions.resolveComplaint(complaint_id, upheld, resolution_hash)
        return self.transact(regulator_key, function)

    def get_complaint(self, complaint_id: int) -> v.Complaint:
        """The complaint ``complaint_id``."""
        return v.Complaint(*self.call(self.complaints.functions.getComplaint(complaint_id)))

    def complaint_stats(self, merchant: str) -> v.ComplaintStats:
        """A merchant's complaint counts."""
        return v.ComplaintStats(*self.call(self.complaints.functions.statsOf(merchant)))
