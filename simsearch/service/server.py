"""Running the app under uvicorn: bind first (so errors are clear and port 0 works), bounded connection
count and keep-alive, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import socket
from typing import Callable

import uvicorn
from fastapi import FastAPI

from simsearch.errors import InputError

GRACEFUL_SHUTDOWN_S = 30  # in-flight requests get this long to finish after SIGTERM
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this


class BindError(InputError):
    """The address cannot be listened on."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {error.strerror or error}",
                        hint="choose another {param} (0: any free one)", parameter="port") from None
    sock.set_inheritable(True)
    return sock


def serve(app: FastAPI, sock: socket.socket, max_connections: int = 512, access_log: bool = True,
          on_start: Callable[[], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, let in-flight requests finish, run shutdown."""
    config = uvicorn.Config(app, log_level="info", access_log=access_log, timeout_keep_alive=KEEP_ALIVE_S,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, limit_concurrency=max_connections,
                            server_header=False, proxy_headers=False)
    server = uvicorn.Server(config)
    if on_start is not None:
        on_start()
    server.run(sockets=[sock])
