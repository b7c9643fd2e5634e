"""Running the app under uvicorn: bind first (so errors are clear and port 0 works), slow clients cut off
(header timeout, idle keep-alive closed, connections that never finish their headers make way for new
ones), graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import resource
import socket
from typing import Callable

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

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


def guarded_protocol(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline and a connection cap that evicts the oldest connection
    still waiting for its headers (uvicorn's own limit_concurrency counts those, so 512 idle sockets would
    turn every real request into a 503)."""
    waiting: dict["GuardedH11Protocol", None] = {}  # connections without a complete request, oldest first

    class GuardedH11Protocol(H11Protocol):
        """Closes a connection whose request headers are not complete header_timeout seconds after it
        opened or after its previous response, however slowly the bytes trickle in."""

        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_headers()
            if len(self.connections) > max_connections:
                oldest = next((c for c in waiting if c is not self), self)
                oldest._drop()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the request line and headers are complete
                self._headers_done()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._await_headers()  # the next request on this keep-alive connection gets the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_done()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._headers_done()
            waiting[self] = None
            self._header_timer = self.loop.call_later(header_timeout, self._drop)

        def _headers_done(self) -> None:
            waiting.pop(self, None)
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _drop(self) -> None:
            self._headers_done()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


def _allow_open_files(count: int) -> None:
    """Raise the soft limit on open files towards count (each connection is one), within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(app: FastAPI, sock: socket.socket, max_connections: int = 512, access_log: bool = True,
          on_start: Callable[[], None] | None = None, header_timeout: float = 10.0) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, let in-flight requests finish, run shutdown."""
    _allow_open_files(max_connections + 256)  # the rest: the index, the model, logs
    # limit_concurrency=None: in-flight requests are bounded by the app's access guard, and connections by
    # the protocol, which makes room by closing connections that have not sent a request
    config = uvicorn.Config(app, log_level="info", access_log=access_log, timeout_keep_alive=KEEP_ALIVE_S,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, limit_concurrency=None,
                            http=guarded_protocol(header_timeout, max_connections),
                            server_header=False, proxy_headers=False)
    server = uvicorn.Server(config)
    if on_start is not None:
        on_start()
    server.run(sockets=[sock])
