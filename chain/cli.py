"""``yufu``: the project's command line.

    yufu node run [...]          run a validator node (as ``python -m chain.node run``)
    yufu node bootstrap [...]    deploy the system contracts on a running node
    yufu audit replay ...        replay a node's history from genesis, verify it, write a report
    yufu audit follow ...        follow a node, verifying every block, and serve its chain

``yufu audit replay`` exits 0 when everything verified and every agreement's money is
conserved and equals the contract's ledger, 1 when the report lists a violation, and 2 when it
could not run (no node at the URL, no data directory, a bad configuration).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from chain.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from chain.errors import ChainError

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yufu",
        description="Yufu: the node, and the auditor that replays and verifies its history.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    node = commands.add_parser(
        "node",
        help="run a validator node or bootstrap one (yufu node run|bootstrap --help)",
        add_help=False,
    )
    node.add_argument("arguments", nargs=argparse.REMAINDER)

    audit = commands.add_parser("audit", help="verify a node's history")
    audits = audit.add_subparsers(dest="audit_command", required=True)

    replay = audits.add_parser(
        "replay",
        help="replay a node's history from genesis and write report.json and agreements.csv",
        description="Replay a node's history from genesis on an independent py-evm chain: "
        "check every seal, re-execute every block, rebuild every agreement's ledger from "
        "events and check that money is conserved. Exit code 1 on any violation.",
    )
    where = replay.add_mutually_exclusive_group(required=True)
    where.add_argument("--rpc", metavar="URL", help="the node's JSON-RPC URL")
    where.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="the node's data directory (read only)"
    )
    replay.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="devnet TOML")
    replay.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where to write the report"
    )
    replay.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="keep the replayed chain in this empty directory (default: a temporary one)",
    )
    bar = replay.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="show a bar"
    )
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a bar"
    )
    replay.add_argument(
        "--skip-permission-checks",
        action="store_true",
        help="do not ask the permissioning contract about every transaction",
    )

    follow = audits.add_parser(
        "follow",
        help="follow a node, verifying every block, and serve the verified chain read-only",
        description="Download every block of a node from genesis, verify and re-execute it, "
        "keep following new blocks and serve the same JSON-RPC reads. Stops with a report "
        "(exit code 1) at the first block that fails.",
    )
    follow.add_argument("--rpc", metavar="URL", required=True, help="the node's JSON-RPC URL")
    follow.add_argument(
        "--data-dir", type=Path, required=True, metavar="DIR", help="the follower's own chain"
    )
    follow.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="devnet TOML")
    follow.add_argument("--host", default="127.0.0.1", help="interface to serve JSON-RPC on")
    follow.add_argument("--port", type=int, default=0, help="port to serve on, 0 for any")
    follow.add_argument(
        "--poll", type=float, default=1.0, metavar="SECONDS", help="how often to ask for blocks"
    )
    follow.add_argument(
        "--report", type=Path, metavar="PATH", help="write a failure's report here as JSON"
    )
    follow.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING, ERROR")
    return parser


def run_replay(arguments: argparse.Namespace) -> int:
    from chain.audit.replay import open_source, replay, summary, write_outputs

    config = load_config(arguments.config)
    source = open_source(rpc=arguments.rpc, data_dir=arguments.data_dir)
    progress = sys.stderr.isatty() if arguments.progress is None else arguments.progress
    try:
        result = replay(
            config,
            source,
            work_dir=arguments.work_dir,
            progress=progress,
            check_permissions=not arguments.skip_permission_checks,
        )
    finally:
        source.close()
    report_path, csv_path = write_outputs(result, arguments.out)
    print(summary(result))
    print(f"Wrote {report_path} and {csv_path}")
    return EXIT_OK if result.ok else EXIT_VIOLATION


def run_follow(arguments: argparse.Namespace) -> int:
    from chain.audit.follower import FollowOptions, serve_follower

    logging.basicConfig(
        level=str(arguments.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if arguments.poll <= 0:
        print(f"--poll must be positive, got {arguments.poll}", file=sys.stderr)
        return EXIT_ERROR
    config = load_config(arguments.config)
    options = FollowOptions(
        rpc_url=arguments.rpc,
        data_dir=arguments.data_dir,
        host=arguments.host,
        port=arguments.port,
        poll_seconds=arguments.poll,
        report_path=arguments.report,
    )
    return serve_follower(config, options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yufu`` command."""
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["node"]:
        # The node's own command line, unchanged (python -m chain.node).
        from chain.node.__main__ import main as node_main

        return node_main(given[1:])
    arguments = build_parser().parse_args(given)
    try:
        if arguments.audit_command == "replay":
            return run_replay(arguments)
        return run_follow(arguments)
    except (ConfigError, ChainError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
