"""Governance: who may sign and write is changed by several officials together, with a delay.

After the bootstrap is handed over, the regulator key alone can no longer grant or remove the
sensitive roles (regulator, validator, oracle, system) nor change an oracle feed's signers,
the report consumers or the report age. Those changes are signed by a threshold of regulator
officials (their Safe), scheduled in the timelock and executed once the delay has passed.
Routine decisions — admitting a merchant, a bank, an insurer — stay with the regulator key.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from chain import messages as m
from chain.config import DevnetConfig
from chain.deploy import DeployedSystem, configured_accounts, deploy_system, fund_accounts
from chain.errors import ContractRevert
from chain.governance import Governance, SafeRefused, hand_over

ORGANISATION = m.organisation_id("yufu-test-governance")
SENSITIVE_ROLES = [m.Role.REGULATOR, m.Role.VALIDATOR, m.Role.ORACLE, m.Role.SYSTEM]
ROUTINE_ROLES = [m.Role.MERCHANT, m.Role.BANK, m.Role.INSURER, m.Role.AUDITOR, m.Role.OPERATOR]
# Timelock operation states, as OpenZeppelin's TimelockController bitmaps them.
READY_STATE = 1 << 2


@pytest.fixture
def governance(deployed: DeployedSystem, config: DevnetConfig) -> Governance:
    """The officials' governance, with the bootstrap closed as a real deployment closes it."""
    assert deployed.governance is not None
    hand_over(
        deployed.client, config.regulator.key.private_key, deployed.governance.addresses.timelock
    )
    return deployed.governance


@pytest.fixture
def regulator_key(config: DevnetConfig) -> str:
    return config.regulator.key.private_key


@pytest.fixture
def officials(config: DevnetConfig) -> list[str]:
    return [official.private_key for official in config.governance.officials]


def timelock_of(governance: Governance) -> str:
    return governance.addresses.timelock.lower()


def new_signers(count: int) -> list[str]:
    return [Account.create().address for _ in range(count)]


# --- the regulator key alone -----------------------------------------------------


def test_regulator_key_alone_cannot_change_a_feeds_signers(
    deployed: DeployedSystem,
    governance: Governance,
    regulator_key: str,
    config: DevnetConfig,
    reverts: Any,
) -> None:
    client = deployed.client
    before = client.feed_config(m.FEED_BANK)
    with reverts(
        "OracleHubGovernanceRequired", config.regulator.address.lower(), timelock_of(governance)
    ):
        client.configure_feed(regulator_key, m.FEED_BANK, new_signers(2), 1)
    assert client.feed_config(m.FEED_BANK) == before


@pytest.mark.parametrize("role", SENSITIVE_ROLES, ids=lambda role: role.name.lower())
def test_regulator_key_alone_cannot_grant_a_sensitive_role(
    deployed: DeployedSystem,
    governance: Governance,
    regulator_key: str,
    config: DevnetConfig,
    reverts: Any,
    role: m.Role,
) -> None:
    account = Account.create().address
    with reverts(
        "MembershipGovernanceRequired",
        config.regulator.address.lower(),
        role,
        timelock_of(governance),
    ):
        deployed.client.admit(regulator_key, account, role, ORGANISATION)
    assert not deployed.client.has_role(account, role)


def test_regulator_key_alone_cannot_remove_a_validator(
    deployed: DeployedSystem,
    governance: Governance,
    regulator_key: str,
    config: DevnetConfig,
    reverts: Any,
) -> None:
    validator = config.validators[0].address
    with reverts(
        "MembershipGovernanceRequired",
        config.regulator.address.lower(),
        m.Role.VALIDATOR,
        timelock_of(governance),
    ):
        deployed.client.remove(regulator_key, validator, m.Role.VALIDATOR)
    assert deployed.client.has_role(validator, m.Role.VALIDATOR)


def test_regulator_key_alone_cannot_rewire_report_consumers_or_report_age(
    deployed: DeployedSystem,
    governance: Governance,
    regulator_key: str,
    config: DevnetConfig,
    reverts: Any,
) -> None:
    regulator = config.regulator.address.lower()
    with reverts("OracleHubGovernanceRequired", regulator, timelock_of(governance)):
        deployed.client.set_report_consumer(regulator_key, Account.create().address, True)
    with reverts("OracleHubGovernanceRequired", regulator, timelock_of(governance)):
        deployed.client.set_max_report_age(regulator_key, 10 * 86_400)


def test_bootstrap_cannot_be_reopened_or_handed_over_again(
    deployed: DeployedSystem, governance: Governance, regulator_key: str, reverts: Any
) -> None:
    with reverts("MembershipGovernanceAlreadySet", timelock_of(governance)):
        hand_over(deployed.client, regulator_key, Account.create().address)
    assert deployed.client.call(deployed.client.membership.functions.governance()) == (
        governance.addresses.timelock
    )


# --- routine decisions stay direct -------------------------------------------------


@pytest.mark.parametrize("role", ROUTINE_ROLES, ids=lambda role: role.name.lower())
def test_routine_admission_and_removal_stay_with_the_regulator_key(
    deployed: DeployedSystem, governance: Governance, regulator_key: str, role: m.Role
) -> None:
    account = Account.create().address
    result = deployed.client.admit(regulator_key, account, role, ORGANISATION)
    assert result.event("MemberAdmitted").args["role"] == role
    assert deployed.client.has_role(account, role)
    deployed.client.remove(regulator_key, account, role)
    assert not deployed.client.has_role(account, role)


# --- the officials' multisig ---------------------------------------------------------


def test_one_official_alone_cannot_schedule_a_change(
    deployed: DeployedSystem, governance: Governance, regulator_key: str, officials: list[str]
) -> None:
    change = governance.configure_feed(m.FEED_BANK, new_signers(2), 1)
    with pytest.raises(SafeRefused) as refused:
        governance.schedule(regulator_key, change, officials[:1])
    assert refused.value.code == "GS020"  # fewer signatures than the threshold
    assert not governance.is_pending(change)


def test_signatures_of_non_officials_do_not_count(
    deployed: DeployedSystem, governance: Governance, regulator_key: str, officials: list[str]
) -> None:
    change = governance.admit(Account.create().address, m.Role.SYSTEM, ORGANISATION)
    outsider = "0x" + bytes(Account.create().key).hex()
    with pytest.raises(SafeRefused) as refused:
        governance.schedule(regulator_key, change, [officials[0], outsider])
    assert refused.value.code == "GS026"  # a signer who is not an owner
    assert not governance.is_pending(change)


def test_the_shipped_officials_are_two_of_three(
    governance: Governance, config: DevnetConfig
) -> None:
    assert sorted(governance.officials()) == sorted(config.governance.official_addresses)
    assert governance.threshold() == 2
    assert governance.min_delay() == config.governance.min_delay_seconds == 86_400


def test_officials_change_a_feeds_signers_only_after_the_delay(
    deployed: DeployedSystem,
    governance: Governance,
    backend: Any,
    regulator_key: str,
    officials: list[str],
    reverts: Any,
) -> None:
    client = deployed.client
    before = client.feed_config(m.FEED_BANK)
    signers = new_signers(3)
    change = governance.configure_feed(m.FEED_BANK, signers, 2)

    governance.schedule(regulator_key, change, officials[1:])
    assert governance.is_pending(change)
    with reverts(
        "TimelockUnexpectedOperationState",
        governance.operation_id(change),
        READY_STATE.to_bytes(32, "big"),
    ):
        governance.execute(regulator_key, change)
    backend.advance_time(governance.min_delay() - 60)
    with reverts("TimelockUnexpectedOperationState"):
        governance.execute(regulator_key, change)
    assert client.feed_config(m.FEED_BANK) == before

    backend.advance_time(60)
    result = governance.execute(regulator_key, change)

    configured = result.event("FeedConfigured").args
    assert configured["version"] == before.version + 1
    after = client.feed_config(m.FEED_BANK)
    assert sorted(after.signers) == sorted(signers)
    assert (after.threshold, after.version) == (2, before.version + 1)
    assert governance.is_done(change)


def test_officials_grant_and_remove_the_system_role_through_the_timelock(
    deployed: DeployedSystem,
    governance: Governance,
    backend: Any,
    regulator_key: str,
    officials: list[str],
) -> None:
    account = Account.create().address
    grant = governance.admit(account, m.Role.SYSTEM, ORGANISATION)
    governance.schedule(regulator_key, grant, officials[:2])
    backend.advance_time(governance.min_delay())
    result = governance.execute(regulator_key, grant)
    assert result.event("MemberAdmitted").args["admittedBy"] == governance.addresses.timelock
    assert deployed.client.has_role(account, m.Role.SYSTEM)

    removal = governance.remove(account, m.Role.SYSTEM)
    governance.schedule(regulator_key, removal, [officials[0], officials[2]])
    backend.advance_time(governance.min_delay())
    governance.execute(regulator_key, removal)
    assert not deployed.client.has_role(account, m.Role.SYSTEM)


def test_officials_rewire_report_consumers_through_the_timelock(
    deployed: DeployedSystem,
    governance: Governance,
    backend: Any,
    regulator_key: str,
    officials: list[str],
) -> None:
    consumer = Account.create().address
    change = governance.set_report_consumer(consumer, True)
    governance.schedule(regulator_key, change, officials[:2])
    backend.advance_time(governance.min_delay())
    result = governance.execute(regulator_key, change)
    assert result.event("ConsumerSet").args == {"consumer": consumer, "allowed": True}


def test_officials_cannot_shorten_the_delay(
    governance: Governance, regulator_key: str, officials: list[str], reverts: Any
) -> None:
    change = governance.set_max_report_age(600)
    with reverts("TimelockInsufficientDelay", 60, governance.min_delay()):
        governance.schedule(regulator_key, change, officials[:2], delay=60)


def test_officials_can_cancel_a_pending_change(
    governance: Governance, backend: Any, regulator_key: str, officials: list[str], reverts: Any
) -> None:
    change = governance.admit(Account.create().address, m.Role.ORACLE, ORGANISATION)
    governance.schedule(regulator_key, change, officials[:2])
    governance.cancel(regulator_key, change, officials[1:])
    assert not governance.is_pending(change)
    backend.advance_time(governance.min_delay())
    with reverts("TimelockUnexpectedOperationState"):
        governance.execute(regulator_key, change)


def test_a_change_the_target_refuses_is_refused_at_execution(
    deployed: DeployedSystem,
    governance: Governance,
    backend: Any,
    regulator_key: str,
    officials: list[str],
    reverts: Any,
) -> None:
    change = governance.configure_feed(m.FEED_BANK, new_signers(2), 3)
    governance.schedule(regulator_key, change, officials[:2])
    backend.advance_time(governance.min_delay())
    with reverts("OracleHubInvalidThreshold", 3, 2):
        governance.execute(regulator_key, change)


# --- a real deployment ------------------------------------------------------------------


def test_a_deployment_closes_its_bootstrap(
    backend: Any, config: DevnetConfig, reverts: Any
) -> None:
    if not backend.funds_accounts_itself:
        fund_accounts(backend.w3, configured_accounts(config))
    system = deploy_system(backend.w3, config)

    assert system.governance is not None
    assert system.deployment[-1][0] == "hand over to governance"
    client = system.client
    timelock = system.governance.addresses.timelock
    assert client.call(client.membership.functions.governance()) == timelock
    # What the bootstrap set up is in place: system contracts, oracles, feeds, consumers.
    assert client.has_role(client.addresses.book, m.Role.SYSTEM)
    assert client.has_role(config.organisations["bank_feed"].address, m.Role.ORACLE)
    assert client.feed_config(m.FEED_BANK).version == 1
    with pytest.raises(ContractRevert) as refused:
        client.configure_feed(config.regulator.key.private_key, m.FEED_BANK, new_signers(1), 1)
    assert refused.value.error == "OracleHubGovernanceRequired"
