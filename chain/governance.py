"""The regulator officials' governance: a Safe multisig that schedules changes in a timelock.

Who may sign and write on a Yufu chain — the regulator, validator, oracle and system roles,
every oracle feed's signer set, the contracts allowed to consume reports and the maximum
report age — is not one key's decision. After the deployment's bootstrap the regulator hands
these powers over (``Membership.handOverToGovernance``) to a ``RegulatorTimelock``
(OpenZeppelin's ``TimelockController``), whose only proposer and canceller is a Safe
(Safe Smart Account 1.5.0) owned by the regulator officials with a k-of-n threshold. Anyone
may execute an operation once its delay has passed.

A governed change goes: officials sign the Safe transaction off chain → any member account
sends it (``schedule``) → the delay passes → any member account executes it (``execute``).
The officials need no gas and no membership: only their signatures count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from chain import messages as m
from chain.client import TxResult, YufuClient, abi_of
from chain.errors import ChainError, ContractRevert, UnknownRevert

ZERO_ADDRESS: str = "0x" + "00" * 20
ZERO_BYTES32: bytes = bytes(32)
# The officials' Safe is the factory's first proxy with this salt nonce.
SAFE_SALT_NONCE: int = 0
# Safe operation kinds: a plain call (never a delegatecall from the officials' Safe).
SAFE_CALL: int = 0

_SAFE_CODE = re.compile(r"GS\d{3}")


class GovernanceError(ChainError):
    """Root of the errors of a governed change."""


class SafeRefused(GovernanceError):
    """The officials' Safe refused a transaction with one of its ``GSnnn`` codes.

    Attributes
    ----------
    code
        Safe's error code, e.g. ``"GS020"`` (fewer signatures than the threshold) or
        ``"GS026"`` (a signature by someone who is not an official).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the officials' Safe refused the transaction: {code} ({message})")
        self.code = code


@dataclass(frozen=True)
class GovernanceAddresses:
    """Where the governance contracts live.

    Attributes
    ----------
    safe_singleton
        The Safe code every Safe proxy runs.
    safe_factory
        The factory that created the officials' Safe.
    safe
        The officials' multisig (a Safe proxy).
    timelock
        The governance authority Membership and OracleHub obey after the hand-over.
    """

    safe_singleton: str
    safe_factory: str
    safe: str
    timelock: str


@dataclass(frozen=True)
class GovernedCall:
    """One call the timelock makes for the officials, identified by all its fields.

    Attributes
    ----------
    target
        The contract called (Membership, OracleHub).
    data
        The ABI-encoded call.
    salt
        Tells apart two otherwise identical operations (the same change made twice).
    predecessor
        An operation that must be done first, or zero.
    """

    target: str
    data: bytes
    salt: bytes = ZERO_BYTES32
    predecessor: bytes = ZERO_BYTES32


@cache
def _timelock_errors() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for entry in abi_of("RegulatorTimelock"):
        if entry.get("type") == "error":
            types = [str(item["type"]) for item in entry.get("inputs", [])]
            table[function_abi_to_4byte_selector(cast(Any, entry))] = (entry["name"], types)
    return table


def _refine(error: ChainError) -> ChainError:
    """Name a revert the system contracts' error table does not know: Safe's or the timelock's."""
    if not isinstance(error, UnknownRevert):
        return error
    data = error.data or b""
    known = _timelock_errors().get(data[:4])
    if known is not None:
        name, types = known
        return ContractRevert(name, tuple(abi_decode(types, data[4:])), data)
    code = _SAFE_CODE.search(str(error)) or _SAFE_CODE.search(data.decode("latin-1"))
    if code is not None:
        return SafeRefused(code.group(0), str(error))
    return error


def _deploy(w3: Web3, deployer_key: str, name: str, *args: Any) -> tuple[str, TxResult]:
    # Imported here: chain.deploy imports this module to deploy governance with the system.
    from chain.deploy import deploy_contract

    return deploy_contract(w3, deployer_key, name, *args)


def deploy_governance(
    client: YufuClient,
    deployer_key: str,
    officials: Sequence[str],
    threshold: int,
    min_delay_seconds: int,
) -> tuple[Governance, list[tuple[str, TxResult]]]:
    """Deploy the officials' Safe and the timelock it proposes to.

    Nothing changes hands here: the regulator keeps its bootstrap powers until
    :func:`hand_over` is called.

    Parameters
    ----------
    client
        A client of the deployed system; its web3 is used to deploy.
    deployer_key
        The regulator's key (only a regulator may create contracts).
    officials
        The officials' addresses, owners of the Safe.
    threshold
        How many officials must sign a governed change.
    min_delay_seconds
        The timelock's minimum delay.

    Returns
    -------
    tuple[Governance, list[tuple[str, TxResult]]]
        The governance handle, and each deployment step's transaction.
    """
    w3 = client.w3
    steps: list[tuple[str, TxResult]] = []
    singleton, result = _deploy(w3, deployer_key, "OfficialsSafe")
    steps.append(("deploy OfficialsSafe", result))
    factory_address, result = _deploy(w3, deployer_key, "OfficialsSafeProxyFactory")
    steps.append(("deploy OfficialsSafeProxyFactory", result))

    safe_abi = w3.eth.contract(abi=list(abi_of("OfficialsSafe")))
    setup = safe_abi.encode_abi(
        "setup",
        [
            [to_checksum_address(official) for official in officials],
            threshold,
            ZERO_ADDRESS,
            b"",
            ZERO_ADDRESS,
            ZERO_ADDRESS,
            0,
            ZERO_ADDRESS,
        ],
    )
    factory = w3.eth.contract(
        address=to_checksum_address(factory_address), abi=list(abi_of("OfficialsSafeProxyFactory"))
    )
    create = factory.functions.createProxyWithNonce(singleton, setup, SAFE_SALT_NONCE)
    safe = str(create.call({"from": Account.from_key(deployer_key).address}))
    steps.append(("create the officials' Safe", client.transact(deployer_key, create)))

    timelock, result = _deploy(
        w3, deployer_key, "RegulatorTimelock", min_delay_seconds, [safe], [ZERO_ADDRESS]
    )
    steps.append(("deploy RegulatorTimelock", result))
    addresses = GovernanceAddresses(singleton, factory_address, to_checksum_address(safe), timelock)
    return Governance(client, addresses), steps


def hand_over(client: YufuClient, regulator_key: str, timelock: str) -> TxResult:
    """Close the bootstrap: from now on only ``timelock`` changes who may sign and write."""
    return client.transact(
        regulator_key, client.membership.functions.handOverToGovernance(timelock)
    )


class Governance:
    """Proposes, schedules, executes and cancels governed changes.

    Parameters
    ----------
    client
        A client of the deployed system; transactions go through it.
    addresses
        Where the officials' Safe and the timelock live.
    """

    def __init__(self, client: YufuClient, addresses: GovernanceAddresses) -> None:
        self.client = client
        self.addresses = addresses
        w3 = client.w3
        self.safe: Contract = w3.eth.contract(
            address=to_checksum_address(addresses.safe), abi=list(abi_of("OfficialsSafe"))
        )
        self.timelock: Contract = w3.eth.contract(
            address=to_checksum_address(addresses.timelock), abi=list(abi_of("RegulatorTimelock"))
        )

    # ------------------------------------------------------------ the changes

    def admit(self, account: str, role: m.Role, organisation: bytes) -> GovernedCall:
        """Grant a sensitive role (regulator, validator, oracle, system)."""
        membership = self.client.membership
        data = membership.encode_abi("admit", [account, role, organisation])
        return GovernedCall(membership.address, bytes.fromhex(data[2:]))

    def remove(self, account: str, role: m.Role) -> GovernedCall:
        """Take a sensitive role."""
        membership = self.client.membership
        data = membership.encode_abi("remove", [account, role])
        return GovernedCall(membership.address, bytes.fromhex(data[2:]))

    def configure_feed(self, feed: bytes, signers: Sequence[str], threshold: int) -> GovernedCall:
        """Replace a feed's signer set (sorted here) and threshold."""
        ordered = sorted((to_checksum_address(s) for s in signers), key=lambda a: int(a, 16))
        hub = self.client.oracle_hub
        data = hub.encode_abi("configureFeed", [feed, ordered, threshold])
        return GovernedCall(hub.address, bytes.fromhex(data[2:]))

    def set_report_consumer(self, consumer: str, allowed: bool) -> GovernedCall:
        """Allow or disallow a contract to consume oracle reports."""
        hub = self.client.oracle_hub
        data = hub.encode_abi("setConsumer", [consumer, allowed])
        return GovernedCall(hub.address, bytes.fromhex(data[2:]))

    def set_max_report_age(self, seconds: int) -> GovernedCall:
        """Set the maximum age of an oracle report."""
        hub = self.client.oracle_hub
        data = hub.encode_abi("setMaxReportAge", [seconds])
        return GovernedCall(hub.address, bytes.fromhex(data[2:]))

    # ------------------------------------------------------------ reading

    def min_delay(self) -> int:
        """The timelock's minimum delay, in seconds."""
        return int(self.client.call(self.timelock.functions.getMinDelay()))

    def officials(self) -> list[str]:
        """The Safe's owners."""
        return [str(owner) for owner in self.client.call(self.safe.functions.getOwners())]

    def threshold(self) -> int:
        """How many officials must sign."""
        return int(self.client.call(self.safe.functions.getThreshold()))

    def operation_id(self, change: GovernedCall) -> bytes:
        """The timelock's id of ``change``."""
        function = self.timelock.functions.hashOperation(
            change.target, 0, change.data, change.predecessor, change.salt
        )
        return bytes(self.client.call(function))

    def is_pending(self, change: GovernedCall) -> bool:
        """Scheduled and neither executed nor cancelled."""
        function = self.timelock.functions.isOperationPending(self.operation_id(change))
        return bool(self.client.call(function))

    def is_ready(self, change: GovernedCall) -> bool:
        """Scheduled and its delay has passed."""
        function = self.timelock.functions.isOperationReady(self.operation_id(change))
        return bool(self.client.call(function))

    def is_done(self, change: GovernedCall) -> bool:
        """Executed."""
        function = self.timelock.functions.isOperationDone(self.operation_id(change))
        return bool(self.client.call(function))

    # ------------------------------------------------------------ the officials' signatures

    def safe_transaction_hash(self, timelock_call: bytes, nonce: int | None = None) -> bytes:
        """The hash officials sign for the Safe to call the timelock with ``timelock_call``."""
        if nonce is None:
            nonce = int(self.client.call(self.safe.functions.nonce()))
        function = self.safe.functions.getTransactionHash(
            self.timelock.address, 0, timelock_call, SAFE_CALL, 0, 0, 0,
            ZERO_ADDRESS, ZERO_ADDRESS, nonce,
        )  # fmt: skip
        return bytes(self.client.call(function))

    @staticmethod
    def sign(official_key: str, safe_transaction_hash: bytes) -> tuple[str, bytes]:
        """One official's signature (r, s, v with v 27 or 28) and the official's address."""
        signed = Account.unsafe_sign_hash(safe_transaction_hash, official_key)
        signature = signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
        return Account.from_key(official_key).address, signature

    # ------------------------------------------------------------ acting

    def schedule(
        self,
        sender_key: str,
        change: GovernedCall,
        official_keys: Sequence[str],
        *,
        delay: int | None = None,
    ) -> TxResult:
        """Have the officials' Safe schedule ``change`` in the timelock.

        Parameters
        ----------
        sender_key
            Any member account; it only carries the officials' signatures.
        change
            The change.
        official_keys
            The signing officials' keys; at least the Safe's threshold of them.
        delay
            Seconds to wait; the timelock's minimum delay when None.

        Raises
        ------
        SafeRefused
            Too few signatures, or one by someone who is not an official.
        ContractRevert
            The timelock refused (already scheduled, delay below the minimum).
        """
        wait = self.min_delay() if delay is None else delay
        call = self.timelock.encode_abi(
            "schedule",
            [change.target, 0, change.data, change.predecessor, change.salt, wait],
        )
        return self._through_safe(sender_key, bytes.fromhex(call[2:]), official_keys)

    def cancel(
        self, sender_key: str, change: GovernedCall, official_keys: Sequence[str]
    ) -> TxResult:
        """Have the officials' Safe cancel a pending ``change``."""
        call = self.timelock.encode_abi("cancel", [self.operation_id(change)])
        return self._through_safe(sender_key, bytes.fromhex(call[2:]), official_keys)

    def execute(self, sender_key: str, change: GovernedCall) -> TxResult:
        """Execute a ready ``change``; anyone may once its delay has passed.

        Raises
        ------
        ContractRevert
            ``TimelockUnexpectedOperationState`` when it is not ready (not scheduled, delay
            not passed, already done), or the target's own error when the change is refused.
        """
        function = self.timelock.functions.execute(
            change.target, 0, change.data, change.predecessor, change.salt
        )
        return self._transact(sender_key, function)

    def _through_safe(
        self, sender_key: str, timelock_call: bytes, official_keys: Sequence[str]
    ) -> TxResult:
        digest = self.safe_transaction_hash(timelock_call)
        # Safe wants the signatures in ascending order of their signers' addresses.
        signed = sorted(
            (self.sign(key, digest) for key in official_keys), key=lambda item: int(item[0], 16)
        )
        signatures = b"".join(signature for _, signature in signed)
        function = self.safe.functions.execTransaction(
            self.timelock.address, 0, timelock_call, SAFE_CALL, 0, 0, 0,
            ZERO_ADDRESS, ZERO_ADDRESS, signatures,
        )  # fmt: skip
        return self._transact(sender_key, function)

    def _transact(self, sender_key: str, function: Any) -> TxResult:
        try:
            return self.client.transact(sender_key, function)
        except ChainError as error:
            raise _refine(error) from None
