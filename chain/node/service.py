"""The Yufu node as a running service: the block producer, the HTTP server, and bootstrap.

``BlockProducer`` seals a block every block period while transactions wait, and at once when
a full block's worth waits. ``serve`` opens the node, starts the producer and serves JSON-RPC
with uvicorn until SIGTERM or SIGINT, then stops in order: no new requests, the block being
sealed is finished, the store is closed. ``bootstrap`` deploys the system contracts through
the node's own JSON-RPC as the regulator's first transactions (decision 0005).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from eth_utils import to_canonical_address, to_checksum_address
from web3 import Web3

from chain.client import SYSTEM_CONTRACTS, SystemAddresses, YufuClient
from chain.config import DevnetConfig, Validator
from chain.deploy import DeployedSystem, contract_address, deploy_system, template_terms
from chain.errors import ChainError
from chain.node.node import MAX_TRANSACTIONS_PER_BLOCK, YufuNode
from chain.node.rpc import create_app, mempool_size
from chain.serving import ServerControl, serve_app

logger = logging.getLogger(__name__)

# After a failed block the producer waits this long before trying again.
PRODUCER_RETRY_SECONDS: float = 1.0


class ServiceError(ChainError):
    """The node cannot be run as asked; the message names the offending setting."""


class BootstrapError(ServiceError):
    """The chain is in a state bootstrap cannot continue from; the message says which."""


# ---------------------------------------------------------------- block production


class BlockProducer:
    """Seals blocks on a background thread.

    A block is sealed every ``period`` seconds while transactions wait (every period in any
    case when the configuration asks for empty blocks), and without waiting for the period
    when at least ``MAX_TRANSACTIONS_PER_BLOCK`` transactions wait.

    After a block with transactions one more block follows a period later even if nothing
    waits (a *trailing* block). Clients that wait for a transaction by watching the height
    rise (ethers' ``tx.wait()``, confirmation counters) would otherwise hang when their
    transaction landed in the last block before a quiet spell. It costs one empty block per
    burst of activity, not one per period.

    Parameters
    ----------
    node
        The node to seal blocks on; it must hold a validator key.
    period
        Seconds between blocks.
    trailing
        Seal the trailing block (off only for test harnesses that count blocks).
    """

    def __init__(self, node: YufuNode, period: float, *, trailing: bool = True) -> None:
        if period <= 0:
            raise ValueError(f"the block period must be positive, got {period}")
        self.node = node
        self.period = period
        self.trailing = trailing
        self.last_error: str | None = None
        self._trailing = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yufu-block-producer", daemon=True)

    def start(self) -> None:
        """Start sealing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sealing; a block being sealed is finished first."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def is_running(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    def notify_transaction(self) -> None:
        """Seal now if a full block's worth of transactions waits."""
        if mempool_size(self.node) >= MAX_TRANSACTIONS_PER_BLOCK:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.period)
            self._wake.clear()
            if self._stopping.is_set():
                break
            sealed = self._produce()
            if sealed is None:
                # Do not spin on a block that keeps failing.
                self._stopping.wait(PRODUCER_RETRY_SECONDS)
            elif sealed and mempool_size(self.node) >= MAX_TRANSACTIONS_PER_BLOCK:
                # More than a block's worth still waits; go on at once. Only after progress:
                # a full pool of transactions that cannot run yet (nonce gaps) must not spin.
                self._wake.set()

    def _produce(self) -> int | None:
        """Seal one block if there is work; how many transactions it took, None on failure."""
        trailing = self._trailing
        if not (self.node.has_pending() or self.node.config.chain.empty_blocks or trailing):
            return 0
        try:
            block = self.node.produce_block(allow_empty=trailing)
        except Exception as error:  # noqa: BLE001 - the producer must outlive a bad block
            logger.exception("sealing a block failed")
            self.last_error = f"{type(error).__name__}: {error}"
            return None
        self.last_error = None
        if block is None:
            return 0
        self._trailing = self.trailing and len(block.transactions) > 0
        logger.debug("sealed block %d: %d transactions", block.number, len(block.transactions))
        return len(block.transactions)


# ---------------------------------------------------------------- serving


def choose_validator(config: DevnetConfig, name: str | None) -> Validator:
    """The configured validator called ``name``, or the first one."""
    if name is None:
        return config.validators[0]
    for validator in config.validators:
        if validator.name == name:
            return validator
    known = ", ".join(validator.name for validator in config.validators)
    raise ServiceError(f"no validator named {name!r} in the configuration; known: {known}")


@dataclass(frozen=True)
class ServeOptions:
    """How ``serve`` runs the node."""

    data_dir: Path
    host: str
    port: int
    validator: Validator
    block_period: float
    # Dev-only: serve the evm_ test controls (evm_snapshot, evm_revert, ...). Never a default.
    dev: bool = False
    # Seal one empty block after each busy one (see BlockProducer).
    trailing_block: bool = True


def serve(config: DevnetConfig, options: ServeOptions) -> None:
    """Run the node until SIGTERM or SIGINT.

    Prints ``Yufu node serving JSON-RPC on http://HOST:PORT`` once the port is bound.
    """
    node = YufuNode(config, options.data_dir, options.validator.key.private_key)
    producer = BlockProducer(node, options.block_period, trailing=options.trailing_block)

    def start_sealing(control: ServerControl) -> None:
        producer.start()
        logger.info(
            "chain %d at block %d, sealing as %s every %s s",
            node.chain_id,
            node.head().block_number,
            options.validator.name,
            options.block_period,
        )
        if options.dev:
            logger.warning("dev mode: evm_snapshot, evm_revert, evm_increaseTime, evm_mine served")

    try:
        serve_app(
            create_app(node, producer, dev=options.dev),
            options.host,
            options.port,
            lambda url: f"Yufu node serving JSON-RPC on {url}",
            before_serving=start_sealing,
        )
    finally:
        producer.stop()
        head_number = node.head().block_number
        node.close()
    print(f"Yufu node stopped at block {head_number}", flush=True)


# ---------------------------------------------------------------- bootstrap


def system_addresses(config: DevnetConfig) -> SystemAddresses:
    """Where bootstrap puts the system contracts: the regulator's CREATEs at nonces 0 to 7.

    ``chain.deploy.deploy_system`` deploys them in ``SYSTEM_CONTRACTS`` order as the
    regulator's first eight transactions.
    """
    regulator = to_canonical_address(config.regulator.address)
    return SystemAddresses(
        *(
            to_checksum_address(contract_address(regulator, nonce))
            for nonce in range(len(SYSTEM_CONTRACTS))
        )
    )


def expected_template_count(config: DevnetConfig) -> int:
    """How many templates bootstrap registers."""
    return sum(len(template.industries) for template in config.rules.templates.values())


def bootstrap(w3: Web3, config: DevnetConfig) -> tuple[SystemAddresses, bool]:
    """Deploy and configure the system contracts unless they already are.

    Returns
    -------
    tuple[SystemAddresses, bool]
        The addresses, and whether this call deployed them.

    Raises
    ------
    BootstrapError
        The node is another chain, or a bootstrap was interrupted, or the regulator sent
        other transactions first (then the deterministic addresses do not hold).
    """
    if w3.eth.chain_id != config.chain.chain_id:
        raise BootstrapError(
            f"the node's chain id {w3.eth.chain_id} is not the configured {config.chain.chain_id}"
        )
    expected = system_addresses(config)
    deployed = {
        name: bool(w3.eth.get_code(to_checksum_address(address)))
        for name, address in expected.by_contract().items()
    }
    if all(deployed.values()):
        existing = YufuClient(w3, expected)
        registered = existing.template_count()
        if registered < expected_template_count(config):
            raise BootstrapError(
                f"the contracts exist but only {registered} of "
                f"{expected_template_count(config)} templates are registered: "
                "an earlier bootstrap was interrupted; start from a fresh data directory"
            )
        if int(existing.call(existing.membership.functions.governance()), 16) == 0:
            # An open bootstrap leaves the regulator key every power: never run on one.
            raise BootstrapError(
                "the contracts exist but were never handed over to governance: "
                "an earlier bootstrap was interrupted; start from a fresh data directory"
            )
        return expected, False
    if any(deployed.values()):
        missing = ", ".join(name for name, present in deployed.items() if not present)
        raise BootstrapError(
            f"an earlier bootstrap was interrupted ({missing} missing); "
            "start from a fresh data directory"
        )
    nonce = w3.eth.get_transaction_count(to_checksum_address(config.regulator.address), "pending")
    if nonce != 0:
        raise BootstrapError(
            f"the regulator has already sent {nonce} transactions, so the system contracts "
            "cannot take their deterministic addresses; start from a fresh data directory"
        )
    system = deploy_system(w3, config)
    if system.client.addresses != expected:
        raise BootstrapError(
            f"deployment put the contracts at {system.client.addresses}, not at {expected}"
        )
    return expected, True


def deployed_system(w3: Web3, config: DevnetConfig) -> DeployedSystem:
    """The bootstrapped system as ``chain.deploy`` describes it, read back from the chain.

    Template ids are found by the configured templates' document hashes.
    """
    client = YufuClient(w3, system_addresses(config))
    by_document = {
        client.get_template(template_id).document_hash: template_id
        for template_id in range(1, client.template_count() + 1)
    }
    template_ids: dict[tuple[str, str], int] = {}
    for name, template in config.rules.templates.items():
        for industry in template.industries:
            document = template_terms(config, name, industry).document_hash
            if document not in by_document:
                raise BootstrapError(f"template {name}/{industry} is not registered")
            template_ids[(name, industry)] = by_document[document]
    return DeployedSystem(client, template_ids, ())


def wait_for_node(w3: Web3, timeout: float) -> None:
    """Wait until the node answers ``eth_chainId``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            w3.eth.chain_id  # noqa: B018 - a request, not an attribute read
            return
        except Exception as error:  # noqa: BLE001 - any failure means "not yet"
            if time.monotonic() > deadline:
                raise BootstrapError(f"no node answered within {timeout} s: {error}") from None
            time.sleep(0.2)
