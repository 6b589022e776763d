"""Command line of the Yufu node.

``python -m chain.node run`` starts a validator node and serves JSON-RPC until SIGTERM or
SIGINT; ``python -m chain.node bootstrap`` deploys the system contracts on a running node (once;
later runs print where they are).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from web3 import Web3

from chain.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from chain.errors import ChainError
from chain.node.service import (
    ServeOptions,
    bootstrap,
    choose_validator,
    serve,
    wait_for_node,
)

# Bootstrap waits this long for a node that is still starting.
NODE_WAIT_SECONDS: float = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chain.node", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a validator node and serve JSON-RPC")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="devnet TOML")
    run.add_argument(
        "--data-dir", type=Path, help="where the chain is kept (default: chain.data_dir)"
    )
    run.add_argument("--host", help="interface to listen on (default: services.host)")
    run.add_argument(
        "--port", type=int, help="port to listen on, 0 for any (default: services.node_rpc_port)"
    )
    run.add_argument("--validator", help="name of the validator to seal as (default: the first)")
    run.add_argument(
        "--block-period",
        type=float,
        help="seconds between blocks (default: chain.block_period_seconds)",
    )
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    run.add_argument(
        "--dev",
        action="store_true",
        help="dev-only: serve the test controls evm_snapshot, evm_revert, evm_increaseTime and "
        "evm_mine (for the contract test suite; never on a real chain)",
    )

    run.add_argument(
        "--no-trailing-block",
        action="store_true",
        help="seal nothing after a busy block (for test harnesses that count blocks; clients "
        "that wait for the height to rise, like ethers' tx.wait(), can then hang)",
    )

    boot = commands.add_parser("bootstrap", help="deploy the system contracts on a running node")
    boot.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="devnet TOML")
    boot.add_argument("--url", help="the node's JSON-RPC URL (default: from services)")
    return parser


def run_node(arguments: argparse.Namespace) -> int:
    config = load_config(arguments.config)
    block_period = (
        config.chain.block_period_seconds
        if arguments.block_period is None
        else arguments.block_period
    )
    if block_period <= 0:
        print(f"--block-period must be positive, got {block_period}", file=sys.stderr)
        return 2
    options = ServeOptions(
        data_dir=arguments.data_dir or config.data_path,
        host=arguments.host or config.services.host,
        port=config.services.node_rpc_port if arguments.port is None else arguments.port,
        validator=choose_validator(config, arguments.validator),
        block_period=float(block_period),
        dev=arguments.dev,
        trailing_block=not arguments.no_trailing_block,
    )
    serve(config, options)
    return 0


def run_bootstrap(arguments: argparse.Namespace) -> int:
    config = load_config(arguments.config)
    url = arguments.url or config.services.http_url(config.services.node_rpc_port)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    wait_for_node(w3, NODE_WAIT_SECONDS)
    addresses, deployed_now = bootstrap(w3, config)
    if deployed_now:
        print(f"Deployed the Yufu system contracts on {url}:")
    else:
        print(f"The Yufu system contracts are already deployed on {url}:")
    for name, address in addresses.by_contract().items():
        print(f"  {name:<17} {address}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(arguments, "log_level", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if arguments.command == "run":
            return run_node(arguments)
        return run_bootstrap(arguments)
    except (ConfigError, ChainError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
