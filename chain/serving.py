"""Serving an ASGI app as a devnet process: bind, announce the URL, stop cleanly on a signal.

The node, the oracle and the two simulators all run this way. It imports nothing heavy (no
py-evm), so a simulator starts in well under a second.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

# Seconds open requests get to finish after a stop is asked for.
GRACEFUL_SHUTDOWN_SECONDS: int = 5


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP, and without it every keep-alive request waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # A restart may bind the port again at once, while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class ServerControl:
    """Stops a served app: the signal handlers use it, and so may the app's own threads."""

    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.server: uvicorn.Server | None = None

    def request_stop(self) -> None:
        self.stop_requested.set()
        if self.server is not None:
            self.server.should_exit = True


def serve_app(
    app: Any,
    host: str,
    port: int,
    announce: Callable[[str], str],
    *,
    log_level: str = "warning",
    before_serving: Callable[[ServerControl], None] | None = None,
    control: ServerControl | None = None,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT (or ``control.request_stop()``), then return.

    Prints ``announce(url)`` once the port is bound, so a supervisor or a test can wait for the
    line. ``before_serving`` is called with the control just before, to start background work
    that should end with the server.
    """
    control = control or ServerControl()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        control.request_stop()

    # Installed before uvicorn's own: uvicorn restores them and re-raises the signal after its
    # graceful shutdown, and this handler then lets the process exit 0 instead of dying.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sock = bind_socket(host, port)
    control.server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=log_level.lower(),
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    control.server.should_exit = control.stop_requested.is_set()
    if before_serving is not None:
        before_serving(control)
    print(announce(url_of(sock)), flush=True)
    try:
        control.server.run(sockets=[sock])
    finally:
        control.stop_requested.set()
