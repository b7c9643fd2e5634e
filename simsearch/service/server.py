"""Running the app under uvicorn: bind first (so errors are clear and port 0 works), slow clients cut off
(a header deadline for clients that do not finish their request, a send-rate floor for clients that do not
read their answer, idle keep-alive closed), a connection cap that makes room by closing the oldest connection
that is not serving a request with the token, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import resource
import socket
import struct
from pathlib import Path
from typing import Any, Callable

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from simsearch.errors import InputError
from simsearch.service.middleware import PROTECTED
from simsearch.service.settings import ServiceSettings

try:  # the kernel's unsent bytes (POSIX); elsewhere the floor sees the transport's buffer only
    import fcntl
    import termios
except ImportError:  # pragma: no cover
    pass

GRACEFUL_SHUTDOWN_S = 30  # in-flight requests get this long to finish after SIGTERM
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this
BACKLOG = 2048  # connections the kernel queues before accept; asyncio accepts up to this many at a time
ROOM_DELAY_S = 0.01  # past the cap, room is made this long after (the requests already sent are read first)


class BindError(InputError):
    """The address cannot be listened on."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {error.strerror or error}",
                        hint="choose another {param} (0: any free one)", parameter="port") from None
    sock.set_inheritable(True)
    return sock


class _GuardedTransport:
    """A connection's transport that tells the protocol of each write (for the send-rate floor) and hands it
    a close, which it holds back while the client has not taken the answer (a plain close would leave up to
    the kernel's send buffer, megabytes, to a socket no one watches)."""

    def __init__(self, transport: asyncio.Transport, protocol: "GuardedH11Protocol"):
        self.real = transport
        self._protocol = protocol
        self.written = 0
        self.close_requested = False

    def write(self, data: bytes) -> None:
        self._protocol.writing(data)
        self.written += len(data)
        self.real.write(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        if not self.close_requested:
            self.close_requested = True
            if not self.real.is_closing():
                self.real.pause_reading()  # as a close would: nothing more is read
            self._protocol.close_when_taken()

    def is_closing(self) -> bool:
        return self.close_requested or self.real.is_closing()

    def resume_reading(self) -> None:
        if not self.close_requested:
            self.real.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _kernel_unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes in the socket's send queue the client has not acknowledged (0 where the system cannot say)."""
    sock = transport.get_extra_info("socket")
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (AttributeError, NameError, OSError, ValueError):  # no socket, closed, or not a POSIX system
        return 0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with three limits (set by guarded_protocol):
    - a header deadline: a connection whose request headers are not complete header_timeout seconds after it
      opened or after its previous answer is closed, however slowly the bytes trickle in;
    - a send-rate floor: a connection whose client has not taken an answer send_timeout + bytes / min_send_rate
      seconds after its first byte was written is reset (the bytes it did take count; a client that reads
      nothing gets send_timeout seconds);
    - a connection cap: beyond max_connections open, the oldest connections that never carried the token are
      closed, whatever their state (waiting for headers, or slow readers in the middle of an answer), then the
      oldest idle ones; never one serving a request with the token (the access guard marks those in the
      scope) nor one whose request is read but not yet marked. Room is made a moment after the cap is passed,
      so that in a burst of connections the requests already sent on the newest are read and marked first
      (else a client with the token, accepted amid a burst, would be closed as the oldest of it); beyond
      max_connections + BACKLOG, at once. uvicorn's own limit_concurrency counts idle sockets, so 512 of them
      would turn every real request into a 503."""

    header_timeout = 10.0
    max_connections = 512
    send_timeout = 30.0
    min_send_rate = 10_000.0
    opened: dict["GuardedH11Protocol", None] = {}  # every open connection, oldest first (one per server)
    room: dict[str, asyncio.TimerHandle] = {}  # the pending call that makes room (one per server)

    transport: _GuardedTransport  # type: ignore[assignment]
    _header_timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None
    _send_clock: tuple[float, int] | None = None  # (when the client last had everything, bytes it had taken)
    _trusted = False  # has carried a request with the token: closed only after every untrusted connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_GuardedTransport(transport, self))  # type: ignore[arg-type]
        self.opened[self] = None
        self._await_headers()
        if len(self.opened) > self.max_connections + BACKLOG:
            self._make_room(newcomer=self)
        elif len(self.opened) > self.max_connections and "timer" not in self.room:
            self.room["timer"] = self.loop.call_later(ROOM_DELAY_S, self._make_room)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are complete
            self._headers_done()

    def on_response_complete(self) -> None:
        self._trusted = self._trusted or self._protected_request()
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_headers()  # the next request on this keep-alive connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self.opened.pop(self, None)
        self._headers_done()
        self._stop_send_timer()
        super().connection_lost(exc)

    # -- the connection cap ------------------------------------------------------------------------------------
    def _protected_request(self) -> bool:
        return self.scope is not None and bool(self.scope.get(PROTECTED))

    def _serving_protected(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete and self._protected_request()

    def _unmarked(self) -> bool:
        """Its request is read and in progress, but the access guard has not run yet: it may carry the token."""
        return self.cycle is not None and not self.cycle.response_complete and PROTECTED not in self.scope

    def _victim(self) -> "GuardedH11Protocol | None":
        idle_trusted = None
        for connection in self.opened:
            if connection._serving_protected() or connection._unmarked():
                continue
            if not connection._trusted:
                return connection
            idle_trusted = idle_trusted or connection
        return idle_trusted

    def _make_room(self, newcomer: "GuardedH11Protocol | None" = None) -> None:
        timer = self.room.pop("timer", None)
        if timer is not None:
            timer.cancel()
        while len(self.opened) > self.max_connections:
            victim = self._victim()
            if victim is None:  # all serve requests with the token (or are about to): the newcomer gives way
                if newcomer is not None:
                    newcomer._drop()
                return
            victim._drop()

    # -- the header deadline -----------------------------------------------------------------------------------
    def _await_headers(self) -> None:
        self._headers_done()
        self._header_timer = self.loop.call_later(self.header_timeout, self._drop)

    def _headers_done(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    # -- the send-rate floor -----------------------------------------------------------------------------------
    def writing(self, data: bytes) -> None:
        """Before each write: a client that had taken everything starts a new clock."""
        if self._send_clock is None and data:
            self._send_clock = (self.loop.time(), self.transport.written - self._unsent())
            self._stop_send_timer()
            self._send_timer = self.loop.call_later(self.send_timeout, self._check_send)

    def _unsent(self) -> int:
        """Bytes written that the client has not taken: in the transport's buffer and in the kernel's."""
        return self.transport.real.get_write_buffer_size() + _kernel_unsent(self.transport.real)

    def _check_send(self) -> None:
        self._send_timer = None
        unsent = self._unsent()
        if not unsent:
            self._send_clock = None
            if self.transport.close_requested:
                self._close_now()
            return
        since, taken_then = self._send_clock or (self.loop.time(), 0)
        taken = self.transport.written - unsent
        wait = since + self.send_timeout + (taken - taken_then) / self.min_send_rate - self.loop.time()
        if wait <= 0:
            self._drop()
            return
        # a held-back close looks again soon, so that a client that reads its answer is let go at once
        self._send_timer = self.loop.call_later(min(wait, 0.5) if self.transport.close_requested else wait,
                                                self._check_send)

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- closing -----------------------------------------------------------------------------------------------
    def close_when_taken(self) -> None:
        """uvicorn closes (keep-alive timeout, `Connection: close`, shutdown): at once when the client has
        taken everything, else when it has, or when the send-rate floor resets the connection."""
        if not self._unsent():
            self._close_now()
        elif self._send_timer is None:
            self._check_send()

    def _close_now(self) -> None:
        self._stop_send_timer()
        self.transport.close_requested = True
        if not self.transport.real.is_closing():
            self.transport.real.close()

    def _drop(self) -> None:
        self.opened.pop(self, None)  # at once: the next newcomer in this burst must choose another
        self._headers_done()
        self._stop_send_timer()
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering or self._unsent():
            # an answer the client is not taking: discard it (reset) rather than wait for it to drain
            sock = self.transport.real.get_extra_info("socket")
            if sock is not None and sock.fileno() >= 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.real.abort()
        else:
            self._close_now()


def guarded_protocol(header_timeout: float, max_connections: int, send_timeout: float = 30.0,
                     min_send_rate: float = 10_000.0) -> type[GuardedH11Protocol]:
    """GuardedH11Protocol with these limits, and its own register of open connections."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"header_timeout": header_timeout, "max_connections": max_connections, "send_timeout": send_timeout,
                 "min_send_rate": min_send_rate, "opened": {}, "room": {}})


def _allow_open_files(count: int) -> None:
    """Raise the soft limit on open files towards count (each connection is one), within the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(app: FastAPI, sock: socket.socket, max_connections: int = 512, access_log: bool = True,
          on_start: Callable[[], None] | None = None, header_timeout: float = 10.0, send_timeout: float = 30.0,
          min_send_rate: float = 10_000.0) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, let in-flight requests finish, run shutdown. `on_start`:
    called once the socket is served (the CLI's listening line; a server's moment, not a Callbacks hook)."""
    # the cap, the connections over it before room is made, a burst asyncio accepts at once, and the rest:
    # the index, the model, logs
    _allow_open_files(max_connections + 2 * BACKLOG + 256)
    # limit_concurrency=None: in-flight requests are bounded by the app's access guard, and connections by
    # the protocol, which makes room by closing connections that are not serving a request with the token
    config = uvicorn.Config(app, log_level="info", access_log=access_log, timeout_keep_alive=KEEP_ALIVE_S,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, limit_concurrency=None,
                            backlog=BACKLOG,
                            http=guarded_protocol(header_timeout, max_connections, send_timeout, min_send_rate),
                            server_header=False, proxy_headers=False)
    server = uvicorn.Server(config)
    if on_start is not None:
        on_start()
    server.run(sockets=[sock])


def serve_index(index: str | Path, settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, *,
                weights: str | Path | None = None, device: str | None = None, compiled: bool | None = None,
                access_log: bool = True, on_start: Callable[[str, int], None] | None = None) -> None:
    """Serve the index saved in `index` on host:port (port 0: a free one) until SIGTERM/SIGINT: the service's app
    (`create_app`), then its socket; `on_start(host, port)` is told the bound address once it is served."""
    from simsearch.service.app import create_app

    application = create_app(index, settings, weights=weights, device=device, compiled=compiled)
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    try:
        serve(application, sock, max_connections=settings.max_requests, access_log=access_log,
              on_start=None if on_start is None else lambda: on_start(bound_host, bound_port),
              header_timeout=settings.header_timeout_s, send_timeout=settings.send_timeout_s,
              min_send_rate=settings.min_send_rate)
    finally:
        sock.close()
