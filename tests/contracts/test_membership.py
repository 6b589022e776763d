"""Membership: who may act on the chain, their roles and the validator set."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account

from chain import messages as m
from chain.deploy import fund_accounts
from chain.messages import Role

ZERO_ADDRESS = "0x" + "00" * 20
ORG_ACME = m.organisation_id("acme-bank")
ORG_OTHER = m.organisation_id("other-org")


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


@pytest.fixture
def bank(config):
    return config.organisations["bank"].key


@pytest.fixture
def stranger(backend):
    """A fresh, funded account that is no member."""
    account = Account.create()
    fund_accounts(backend.w3, [account.address])
    return account


def key_of(account: Any) -> str:
    return "0x" + bytes(account.key).hex()


def member_state(client, address: str) -> tuple[Any, ...]:
    membership = client.membership.functions
    return (
        client.call(membership.rolesOf(address)),
        client.call(membership.organisationOf(address)),
        client.is_member(address),
        tuple(client.validators()),
    )


def mask(*roles: Role) -> int:
    return sum(1 << role for role in roles)


# ---------------------------------------------------------------- admit


def test_regulator_admits_an_account_with_role_and_organisation(client, regulator, stranger):
    result = client.admit(regulator.private_key, stranger.address, Role.BANK, ORG_ACME)

    assert result.event("MemberAdmitted").args == {
        "account": stranger.address,
        "role": Role.BANK,
        "organisationId": ORG_ACME,
        "admittedBy": regulator.address,
    }
    assert client.has_role(stranger.address, Role.BANK)
    assert not client.has_role(stranger.address, Role.INSURER)
    assert client.is_member(stranger.address)
    assert client.call(client.membership.functions.rolesOf(stranger.address)) == mask(Role.BANK)
    assert client.call(client.membership.functions.organisationOf(stranger.address)) == ORG_ACME


def test_roles_of_is_a_bitmask_of_every_role_held(client, regulator, stranger):
    client.admit(regulator.private_key, stranger.address, Role.BANK, ORG_ACME)
    client.admit(regulator.private_key, stranger.address, Role.AUDITOR, ORG_ACME)

    roles = client.call(client.membership.functions.rolesOf(stranger.address))
    assert roles == mask(Role.BANK, Role.AUDITOR) == 0b1001000
    assert client.call(client.membership.functions.rolesOf(regulator.address)) == mask(
        Role.REGULATOR
    )


def test_non_member_has_no_roles_and_no_organisation(client, stranger):
    assert client.call(client.membership.functions.rolesOf(stranger.address)) == 0
    assert client.call(client.membership.functions.organisationOf(stranger.address)) == bytes(32)
    assert not client.is_member(stranger.address)


def test_genesis_organisations_are_recorded(client, config, regulator):
    organisation_of = client.membership.functions.organisationOf
    assert client.call(organisation_of(regulator.address)) == m.organisation_id("regulator")
    for validator in config.validators:
        assert client.call(organisation_of(validator.address)) == m.organisation_id(
            validator.organisation
        )


def test_non_regulator_cannot_admit(client, backend, bank, stranger, reverts):
    with (
        unchanged(backend, lambda: member_state(client, stranger.address)),
        reverts("MembershipUnauthorized", bank.address.lower(), Role.REGULATOR),
    ):
        client.admit(bank.private_key, stranger.address, Role.BANK, ORG_ACME)


def test_non_member_cannot_admit_itself(client, backend, stranger, reverts):
    with (
        unchanged(backend, lambda: member_state(client, stranger.address)),
        reverts("MembershipUnauthorized", stranger.address.lower(), Role.REGULATOR),
    ):
        client.admit(key_of(stranger), stranger.address, Role.REGULATOR, ORG_ACME)


def test_zero_address_cannot_be_admitted(client, backend, regulator, reverts):
    with (
        unchanged(backend, lambda: member_state(client, ZERO_ADDRESS)),
        reverts("MembershipZeroAddress"),
    ):
        client.admit(regulator.private_key, ZERO_ADDRESS, Role.BANK, ORG_ACME)


def test_role_none_cannot_be_granted(client, backend, regulator, stranger, reverts):
    with (
        unchanged(backend, lambda: member_state(client, stranger.address)),
        reverts("MembershipInvalidRole", Role.NONE),
    ):
        client.admit(regulator.private_key, stranger.address, Role.NONE, ORG_ACME)


def test_a_role_already_held_cannot_be_granted_again(client, backend, regulator, stranger, reverts):
    client.admit(regulator.private_key, stranger.address, Role.BANK, ORG_ACME)
    with (
        unchanged(backend, lambda: member_state(client, stranger.address)),
        reverts("MembershipRoleAlreadyHeld", stranger.address.lower(), Role.BANK),
    ):
        client.admit(regulator.private_key, stranger.address, Role.BANK, ORG_OTHER)


def test_admitted_regulator_can_admit(client, regulator, stranger, bank):
    client.admit(regulator.private_key, stranger.address, Role.REGULATOR, ORG_ACME)
    other = Account.create()
    result = client.admit(key_of(stranger), other.address, Role.AUDITOR, ORG_OTHER)
    assert result.event("MemberAdmitted").args["admittedBy"] == stranger.address
    assert client.has_role(other.address, Role.AUDITOR)


# ---------------------------------------------------------------- remove


def test_regulator_removes_a_role(client, regulator, stranger):
    client.admit(regulator.private_key, stranger.address, Role.BANK, ORG_ACME)
    result = client.remove(regulator.private_key, stranger.address, Role.BANK)

    assert result.event("MemberRemoved").args == {
        "account": stranger.address,
        "role": Role.BANK,
        "removedBy": regulator.address,
    }
    assert not client.has_role(stranger.address, Role.BANK)
    assert not client.is_member(stranger.address)
    assert client.call(client.membership.functions.rolesOf(stranger.address)) == 0
    # With its last role gone the account acts for no organisation any more.
    assert client.call(client.membership.functions.organisationOf(stranger.address)) == bytes(32)


def test_removing_one_of_two_roles_keeps_the_other_and_the_organisation(
    client, regulator, stranger
):
    client.admit(regulator.private_key, stranger.address, Role.BANK, ORG_ACME)
    client.admit(regulator.private_key, stranger.address, Role.AUDITOR, ORG_ACME)
    client.remove(regulator.private_key, stranger.address, Role.BANK)

    assert client.call(client.membership.functions.rolesOf(stranger.address)) == mask(Role.AUDITOR)
    assert client.is_member(stranger.address)
    assert client.call(client.membership.functions.organisationOf(stranger.address)) == ORG_ACME


def test_non_regulator_cannot_remove(client, backend, bank, config, reverts):
    insurer = config.organisations["insurer"].address
    with (
        unchanged(backend, lambda: member_state(client, insurer)),
        reverts("MembershipUnauthorized", bank.address.lower(), Role.REGULATOR),
    ):
        client.remove(bank.private_key, insurer, Role.INSURER)


def test_role_none_cannot_be_removed(client, backend, regulator, config, reverts):
    insurer = config.organisations["insurer"].address
    with (
        unchanged(backend, lambda: member_state(client, insurer)),
        reverts("MembershipInvalidRole", Role.NONE),
    ):
        client.remove(regulator.private_key, insurer, Role.NONE)


def test_a_role_not_held_cannot_be_removed(client, backend, regulator, config, reverts):
    insurer = config.organisations["insurer"].address
    with (
        unchanged(backend, lambda: member_state(client, insurer)),
        reverts("MembershipRoleNotHeld", insurer.lower(), Role.BANK),
    ):
        client.remove(regulator.private_key, insurer, Role.BANK)


def test_the_last_regulator_cannot_be_removed(client, backend, regulator, reverts):
    with (
        unchanged(backend, lambda: member_state(client, regulator.address)),
        reverts("MembershipLastHolder", regulator.address.lower(), Role.REGULATOR),
    ):
        client.remove(regulator.private_key, regulator.address, Role.REGULATOR)


def test_a_regulator_can_be_removed_while_another_remains(
    client, backend, regulator, stranger, reverts
):
    client.admit(regulator.private_key, stranger.address, Role.REGULATOR, ORG_ACME)
    client.remove(key_of(stranger), regulator.address, Role.REGULATOR)

    assert not client.has_role(regulator.address, Role.REGULATOR)
    # The former regulator lost its powers, and the remaining one is now the last.
    with reverts("MembershipUnauthorized", regulator.address.lower(), Role.REGULATOR):
        client.admit(regulator.private_key, Account.create().address, Role.BANK, ORG_ACME)
    with (
        unchanged(backend, lambda: member_state(client, stranger.address)),
        reverts("MembershipLastHolder", stranger.address.lower(), Role.REGULATOR),
    ):
        client.remove(key_of(stranger), stranger.address, Role.REGULATOR)


def test_the_last_validator_cannot_be_removed(client, backend, regulator, config, reverts):
    first, second = (validator.address for validator in config.validators)
    client.remove(regulator.private_key, first, Role.VALIDATOR)
    assert client.validators() == [second]

    with (
        unchanged(backend, lambda: member_state(client, second)),
        reverts("MembershipLastHolder", second.lower(), Role.VALIDATOR),
    ):
        client.remove(regulator.private_key, second, Role.VALIDATOR)


# ---------------------------------------------------------------- validators


def test_genesis_validators_are_listed_in_admission_order(client, config):
    assert client.validators() == [validator.address for validator in config.validators]


def test_validator_list_keeps_admission_order_after_adding_and_removing(client, regulator, config):
    first, second = (validator.address for validator in config.validators)
    third, fourth = Account.create().address, Account.create().address
    client.admit(regulator.private_key, third, Role.VALIDATOR, ORG_ACME)
    client.admit(regulator.private_key, fourth, Role.VALIDATOR, ORG_OTHER)
    assert client.validators() == [first, second, third, fourth]

    client.remove(regulator.private_key, second, Role.VALIDATOR)
    assert client.validators() == [first, third, fourth]

    client.remove(regulator.private_key, fourth, Role.VALIDATOR)
    assert client.validators() == [first, third]

    client.admit(regulator.private_key, second, Role.VALIDATOR, ORG_ACME)
    assert client.validators() == [first, third, second]


def test_granting_a_non_validator_role_leaves_the_validator_list_alone(
    client, regulator, config, stranger
):
    before = client.validators()
    client.admit(regulator.private_key, stranger.address, Role.BANK, ORG_ACME)
    first = config.validators[0].address
    client.admit(regulator.private_key, first, Role.AUDITOR, ORG_ACME)
    client.remove(regulator.private_key, first, Role.AUDITOR)
    assert client.validators() == before


# ---------------------------------------------------------------- transactionAllowed


def test_members_may_send_calls(client, config, deployed):
    target = deployed.client.addresses.book
    for organisation in config.organisations.values():
        assert client.transaction_allowed(organisation.address, target)


def test_non_members_may_not_send_calls(client, stranger, deployed):
    assert not client.transaction_allowed(stranger.address, deployed.client.addresses.book)
    assert not client.transaction_allowed(stranger.address, stranger.address, b"\x12\x34")


def test_only_a_regulator_may_create_contracts(client, regulator, bank, stranger):
    assert client.transaction_allowed(regulator.address, None)
    assert not client.transaction_allowed(bank.address, None)
    assert not client.transaction_allowed(stranger.address, None)


def test_a_removed_member_is_no_longer_allowed_to_send(client, regulator, stranger, deployed):
    target = deployed.client.addresses.book
    client.admit(regulator.private_key, stranger.address, Role.OPERATOR, ORG_ACME)
    assert client.transaction_allowed(stranger.address, target)

    client.remove(regulator.private_key, stranger.address, Role.OPERATOR)
    assert not client.transaction_allowed(stranger.address, target)


def test_an_admitted_regulator_may_create_contracts(client, regulator, stranger):
    client.admit(regulator.private_key, stranger.address, Role.REGULATOR, ORG_ACME)
    assert client.transaction_allowed(stranger.address, None)
