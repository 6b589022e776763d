"""Deploy Yufu's system contracts and set them up from the devnet configuration.

The regulator deploys every contract (the permissioning contract lets only a regulator create
contracts), then admits the organisations of ``hardhat-free-devnet.toml``, grants the system
contracts the System role, configures the oracle feeds and registers the templates. Last it
deploys the regulator officials' multisig and timelock (``chain.governance``) and hands them
the powers over who may sign and write, which closes this bootstrap for good. The same steps,
in the same order, run on eth-tester, on anvil and, as bootstrap transactions, on the Yufu
node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import rlp
from eth_account import Account
from eth_utils import keccak, to_canonical_address, to_checksum_address
from web3 import Web3
from web3.types import Wei

from chain import messages as m
from chain import views as v
from chain.client import SystemAddresses, TxResult, YufuClient, abi_of
from chain.compiler import load_contract
from chain.config import DevnetConfig, Organisation
from chain.errors import ChainError
from chain.governance import Governance, deploy_governance, hand_over

# What each configured role becomes on chain.
_ROLES: dict[str, m.Role] = {
    "regulator": m.Role.REGULATOR,
    "validator": m.Role.VALIDATOR,
    "bank": m.Role.BANK,
    "insurer": m.Role.INSURER,
    "oracle": m.Role.ORACLE,
    "auditor": m.Role.AUDITOR,
    "merchant": m.Role.MERCHANT,
    "operator": m.Role.OPERATOR,
}

_FEEDS: dict[str, bytes] = {
    "bank_feed": m.FEED_BANK,
    "licence_feed": m.FEED_LICENCE,
    "risk_feed": m.FEED_RISK,
}

_REFUND_RULES: dict[str, m.RefundRule] = {
    "unspecified": m.RefundRule.UNSPECIFIED,
    "bonus_conversion": m.RefundRule.BONUS_CONVERSION,
    "face_value": m.RefundRule.FACE_VALUE,
}

SECONDS_PER_DAY: int = 86_400


@dataclass(frozen=True)
class DeployedSystem:
    """A deployed, configured Yufu system.

    Attributes
    ----------
    client
        A client bound to the deployed contracts.
    template_ids
        Template ids keyed by (template name, industry).
    deployment
        The transaction of every step, in order, for the record.
    governance
        The regulator officials' multisig and timelock; None when not known (a system read
        back from a node).
    """

    client: YufuClient
    template_ids: dict[tuple[str, str], int]
    deployment: tuple[tuple[str, TxResult], ...]
    governance: Governance | None = None


class DeploymentError(ChainError):
    """A deployment step failed; the message names the step."""


def feed_id(handle: str) -> bytes:
    """The on-chain id of a configured feed, by its handle (``bank_feed`` …)."""
    try:
        return _FEEDS[handle]
    except KeyError:
        raise DeploymentError(f"unknown oracle feed {handle!r}; known: {sorted(_FEEDS)}") from None


def contract_address(deployer: bytes, nonce: int) -> bytes:
    """The address a CREATE by ``deployer`` at ``nonce`` gets."""
    return keccak(rlp.encode([deployer, nonce]))[12:]


def deploy_contract(w3: Web3, deployer_key: str, name: str, *args: Any) -> tuple[str, TxResult]:
    """Deploy one compiled contract; returns its address and the deployment transaction."""
    compiled = load_contract(name)
    factory = w3.eth.contract(abi=list(abi_of(name)), bytecode=compiled.bytecode)
    deployer = Account.from_key(deployer_key).address
    constructor = factory.constructor(*args)
    tx = constructor.build_transaction(
        {
            "from": deployer,
            "nonce": w3.eth.get_transaction_count(deployer, "pending"),
            "chainId": w3.eth.chain_id,
        }
    )
    signed = Account.sign_transaction(tx, deployer_key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise DeploymentError(f"deploying {name} failed in transaction 0x{bytes(tx_hash).hex()}")
    result = TxResult("0x" + bytes(tx_hash).hex(), receipt["blockNumber"], receipt["gasUsed"])
    return str(receipt["contractAddress"]), result


def template_terms(config: DevnetConfig, name: str, industry: str) -> v.Template:
    """The on-chain terms of configured template ``name`` for ``industry``."""
    template = config.rules.templates[name]
    document = f"{template.document_title} ({template.document_version}) for {industry}"
    return v.Template(
        industry=m.industry_id(industry),
        document_hash=hashlib.sha256(document.encode()).digest(),
        version=1,
        max_amount=template.max_amount_fen,
        max_term_days=template.max_term_days,
        max_units=template.max_units,
        cooling_off_days=template.cooling_off_days,
        min_custody_bps=template.min_custody_bps,
        refund_rule=_REFUND_RULES[template.refund_rule],
        refund_rounding_fen=template.refund_rounding_fen,
        active=True,
    )


def deploy_system(
    w3: Web3, config: DevnetConfig, *, close_bootstrap: bool = True
) -> DeployedSystem:
    """Deploy and configure the whole system as the configured regulator.

    Parameters
    ----------
    w3
        A connected web3 whose chain has the configured accounts funded for gas.
    config
        The devnet configuration.
    close_bootstrap
        Hand the sensitive powers over to the officials' timelock at the end (a real
        deployment always does). False leaves the regulator key its bootstrap powers, for
        tests that set up feeds and system accounts directly.

    Returns
    -------
    DeployedSystem
        The client, the template ids and the deployment's transactions.
    """
    regulator = config.regulator
    key = regulator.key.private_key
    steps: list[tuple[str, TxResult]] = []

    def deploy(name: str, *args: Any) -> str:
        address, result = deploy_contract(w3, key, name, *args)
        steps.append((f"deploy {name}", result))
        return address

    validators = [validator.address for validator in config.validators]
    validator_orgs = [m.organisation_id(validator.organisation) for validator in config.validators]
    floors = config.rules.custody_floor_bps
    membership = deploy(
        "Membership",
        regulator.address,
        m.organisation_id(regulator.handle),
        validators,
        validator_orgs,
    )
    evidence = deploy("EvidenceRegistry", membership)
    oracle_hub = deploy("OracleHub", membership, config.rules.oracle_max_report_age_seconds)
    templates = deploy("TemplateRegistry", membership, evidence)
    merchants = deploy(
        "MerchantRegistry",
        membership,
        oracle_hub,
        evidence,
        [floors.low, floors.medium, floors.high, floors.blocked],
        config.rules.min_licence_age_days * SECONDS_PER_DAY,
        config.rules.licence_validity_days * SECONDS_PER_DAY,
    )
    # The pool and the custody desk know the book and the book knows them: the book is deployed
    # the transaction after the pool and the desk two after the book, so their addresses are
    # the regulator's CREATE addresses at those nonces.
    regulator_account = to_canonical_address(regulator.address)
    pool_nonce = w3.eth.get_transaction_count(to_checksum_address(regulator.address), "pending")
    book_address = to_checksum_address(contract_address(regulator_account, pool_nonce + 1))
    custody_address = to_checksum_address(contract_address(regulator_account, pool_nonce + 3))
    insurance = deploy("InsurancePool", membership, oracle_hub, evidence, merchants, book_address)
    book = deploy(
        "AgreementBook",
        membership,
        templates,
        merchants,
        oracle_hub,
        evidence,
        insurance,
        custody_address,
    )
    if book != book_address:
        raise DeploymentError(
            f"the agreement book landed at {book}, not at {book_address} the pool expects"
        )
    complaints = deploy("ComplaintDesk", membership, book, evidence)
    custody = deploy("CustodyDesk", membership, oracle_hub, evidence, merchants, book)
    if custody != custody_address:
        raise DeploymentError(
            f"the custody desk landed at {custody}, not at {custody_address} the book expects"
        )
    addresses = SystemAddresses(
        membership, evidence, oracle_hub, templates, merchants, insurance, book, complaints, custody
    )
    client = YufuClient(w3, addresses)

    system_org = m.organisation_id("yufu-system")
    for name, address in addresses.by_contract().items():
        if name != "Membership":
            steps.append(
                (f"admit {name} as System", client.admit(key, address, m.Role.SYSTEM, system_org))
            )
    for organisation in _members(config.organisations.values(), regulator):
        steps.append(
            (
                f"admit {organisation.handle}",
                client.admit(
                    key,
                    organisation.address,
                    _ROLES[organisation.role],
                    m.organisation_id(organisation.handle),
                ),
            )
        )
    for handle, feed in config.oracle_feeds.items():
        steps.append(
            (
                f"configure {handle}",
                client.configure_feed(key, feed_id(handle), feed.signer_addresses, feed.threshold),
            )
        )
    for consumer in (merchants, book, custody, insurance):
        steps.append(
            (
                f"allow {consumer} to consume reports",
                client.set_report_consumer(key, consumer, True),
            )
        )

    template_ids: dict[tuple[str, str], int] = {}
    for name, template in config.rules.templates.items():
        for industry in template.industries:
            template_id, result = client.register_template(
                key, template_terms(config, name, industry)
            )
            template_ids[(name, industry)] = template_id
            steps.append((f"register template {name}/{industry}", result))

    # Deployed after everything else, so the system contracts keep their addresses.
    governance, governance_steps = deploy_governance(
        client,
        key,
        config.governance.official_addresses,
        config.governance.threshold,
        config.governance.min_delay_seconds,
    )
    steps.extend(governance_steps)
    if close_bootstrap:
        steps.append(
            (
                "hand over to governance",
                hand_over(client, key, governance.addresses.timelock),
            )
        )
    return DeployedSystem(client, template_ids, tuple(steps), governance)


def _members(organisations: Iterable[Organisation], regulator: Organisation) -> list[Organisation]:
    return [
        organisation for organisation in organisations if organisation.address != regulator.address
    ]


def fund_accounts(w3: Web3, addresses: Iterable[str], amount_wei: int = 10**20) -> None:
    """Give accounts gas money from the node's first unlocked account (test chains only).

    eth-tester and anvil fund a set of unlocked accounts at genesis; the Yufu node funds the
    configured accounts in its genesis instead and never needs this.
    """
    funder = w3.eth.accounts[0]
    hashes = [
        w3.eth.send_transaction({"from": funder, "to": address, "value": Wei(amount_wei)})
        for address in addresses
    ]
    for tx_hash in hashes:
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)


def configured_accounts(config: DevnetConfig) -> list[str]:
    """Every account of the configuration that sends transactions."""
    accounts = [organisation.address for organisation in config.organisations.values()]
    accounts += [merchant.address for merchant in config.demo.merchants]
    return accounts
