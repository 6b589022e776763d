"""Command line of the custody bank simulator.

``python -m oracle.bank_simulator --data-dir DIR --host 127.0.0.1 --port 8601`` serves the
simulated bank until SIGTERM or SIGINT, then exits 0. Once the port is bound it prints one line,
``Yufu bank simulator (SIMULATOR, not a bank) serving on http://HOST:PORT``; with ``--port 0``
the line shows the port chosen. ``--start-date`` sets the first business day of a new bank
(default: today in China); a bank restarted on its data directory keeps its own date.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from chain.serving import ServerControl, serve_app
from oracle.bank_simulator.app import DEFAULT_BANK_NAME, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8601
# Seconds open requests get to finish after a stop is asked for.
GRACEFUL_SHUTDOWN_SECONDS: int = 5

logger = logging.getLogger("oracle.bank_simulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m oracle.bank_simulator", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True, help="where the bank is kept")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default: {DEFAULT_HOST}")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"0 for any (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--start-date",
        type=date.fromisoformat,
        help="first business day, YYYY-MM-DD, of a new bank (default: today in China)",
    )
    parser.add_argument("--bank-name", default=DEFAULT_BANK_NAME, help="the bank's name")
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=0.0,
        help="close the business day by itself every so many seconds (default 0: only when asked)",
    )
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING, ERROR")
    return parser


def serve(arguments: argparse.Namespace) -> int:
    """Run the simulator until SIGTERM or SIGINT; return the exit status."""
    app = create_app(
        arguments.data_dir, start_day=arguments.start_date, bank_name=arguments.bank_name
    )
    bank = app.state.bank

    def start_day_clock(control: ServerControl) -> None:
        if arguments.day_seconds > 0:
            threading.Thread(
                target=close_days,
                args=(bank, arguments.day_seconds, control.stop_requested),
                name="bank-day-close",
                daemon=True,
            ).start()

    try:
        if arguments.start_date is not None and bank.business_day() != arguments.start_date:
            logger.warning(
                "--start-date %s ignored: the bank in %s is on business day %s",
                arguments.start_date,
                arguments.data_dir,
                bank.business_day(),
            )
        serve_app(
            app,
            arguments.host,
            arguments.port,
            lambda url: f"Yufu bank simulator (SIMULATOR, not a bank) serving on {url}",
            log_level=arguments.log_level,
            before_serving=start_day_clock,
        )
    finally:
        bank.close()
    return 0


def close_days(bank: Any, seconds: float, stop: threading.Event) -> None:
    """End the business day every ``seconds`` of wall-clock time until ``stop``."""
    while not stop.wait(seconds):
        try:
            closed = bank.close_day()
            logger.info("closed business day %s", closed.business_day)
        except Exception:  # noqa: BLE001 - the day clock must keep ticking
            logger.exception("closing the business day failed")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return serve(arguments)
    except OSError as error:
        print(f"cannot serve: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
