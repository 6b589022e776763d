"""Command line of the licence registry simulator.

``python -m oracle.licence_simulator --data-dir DIR --host 127.0.0.1 --port 8602`` serves the
simulated registry until SIGTERM or SIGINT, then exits 0. Once the port is bound it prints one
line, ``Yufu licence registry simulator (SIMULATOR, not the registry) serving on
http://HOST:PORT``; with ``--port 0`` the line shows the port chosen.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from chain.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from chain.serving import serve_app
from oracle.licence_simulator.app import create_app

# Seconds open requests get to finish after a stop is asked for.
GRACEFUL_SHUTDOWN_SECONDS: int = 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m oracle.licence_simulator", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="devnet TOML")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the registry is kept (default: <simulators.data_dir>/licence-registry)",
    )
    parser.add_argument("--host", help="interface to listen on (default: services.host)")
    parser.add_argument(
        "--port",
        type=int,
        help="port to listen on, 0 for any (default: services.licence_simulator_port)",
    )
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING, ERROR")
    return parser


def serve(arguments: argparse.Namespace) -> int:
    """Run the simulator until SIGTERM or SIGINT; return the exit status."""
    config = load_config(arguments.config)
    data_dir = arguments.data_dir or config.simulators_data_path / "licence-registry"
    host = arguments.host or config.services.host
    port = config.services.licence_simulator_port if arguments.port is None else arguments.port

    app = create_app(data_dir, config=config)
    try:
        serve_app(
            app,
            host,
            port,
            lambda url: (
                f"Yufu licence registry simulator (SIMULATOR, not the registry) serving on {url}"
            ),
            log_level=arguments.log_level,
        )
    finally:
        app.state.store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return serve(arguments)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except OSError as error:
        print(f"cannot serve: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
