"""Command line of the oracle: ``python -m oracle run``.

Runs the bank oracle and the licence oracle against a Yufu node, the custody bank and the
licence registry (on the devnet: their simulators), until SIGTERM or SIGINT. Logs are JSON
lines on stderr (structlog), one event each, for the operators' log collector.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from chain.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from oracle.service import OracleOptions, serve


def configure_logging(level: int = logging.INFO) -> None:
    """Structured JSON log lines for every stdlib logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "web3", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m oracle", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the bank and licence oracles")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="devnet TOML")
    run.add_argument(
        "--data-dir", type=Path, help="cursors, outbox, evidence (default: oracle.data_dir)"
    )
    run.add_argument("--rpc-url", help="the node's JSON-RPC (default: services.node_rpc_port)")
    run.add_argument("--bank-url", help="the custody bank (default: its simulator's port)")
    run.add_argument("--registry-url", help="the licence registry (default: its simulator's port)")
    run.add_argument("--host", help="interface of the oracle's HTTP port (default: services.host)")
    run.add_argument("--port", type=int, help="its port (default: services.oracle_metrics_port)")
    run.add_argument("--poll-ms", type=int, help="poll interval (default: oracle.poll_interval_ms)")
    run.add_argument(
        "--recheck-seconds", type=float, help="licence re-check period (default: from the config)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    configure_logging()
    try:
        config = load_config(arguments.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    services = config.services
    options = OracleOptions(
        data_dir=arguments.data_dir or config.oracle_data_path,
        rpc_url=arguments.rpc_url or services.http_url(services.node_rpc_port),
        bank_url=arguments.bank_url or services.http_url(services.bank_simulator_port),
        registry_url=arguments.registry_url or services.http_url(services.licence_simulator_port),
        poll_seconds=(arguments.poll_ms or config.oracle.poll_interval_ms) / 1000,
        licence_recheck_seconds=arguments.recheck_seconds or config.oracle.licence_recheck_seconds,
    )
    serve(
        config,
        options,
        arguments.host or services.host,
        services.oracle_metrics_port if arguments.port is None else arguments.port,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
