"""ASGI middleware of the service: the access guard (a request without the token is answered 401 before its
body is read; in-flight requests are bounded, with slots kept for requests with the token), upload guards (a
declared Content-Length over the cap gets 413 before any byte is read; a client that stalls mid-body, or sends
it slower than a floor rate, gets 408 instead of holding a request open), and request metrics by route
template."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from typing import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simsearch.service.metrics import Metrics


async def _send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class _Refused(Exception):
    """Raised from receive() to abandon a request the guard has refused."""


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    return next((value for name, value in scope.get("headers", []) if name == wanted), None)


def _content_length(scope: Scope) -> int | None:
    try:
        return int(_header(scope, b"content-length"))
    except (TypeError, ValueError):
        return None


PROTECTED = "simsearch.protected"  # scope key: the request carries the token; the connection cap never closes it


class AccessGuardMiddleware:
    """Keeps the server's capacity for authenticated work: with a token configured, a request to any path
    but the open ones without `Authorization: Bearer <token>` gets 401 before its body is read; beyond
    `max_requests` requests in flight, new ones get 503 at once, and requests without the token (the open
    paths: pages, docs, probes) get 503 once only `reserved` slots are left, which are kept for requests with
    it. Each request's scope says whether it is protected (carries the token; without a token configured: any
    path but the open ones), for the connection cap in server.py."""

    def __init__(self, app: ASGIApp, token: str | None, open_paths: Collection[str], max_requests: int,
                 open_pages: Collection[str] = (), reserved: int | None = None):
        self.app = app
        self.expected = None if token is None else f"Bearer {token}".encode("utf-8")
        # open_paths: exact paths, and folders (ending in /) with all below them; open_pages: exact paths only
        # (the page at "/" and "/ui/" must not open every path below them)
        self.open_paths = frozenset(open_paths) | frozenset(open_pages)
        self.open_folders = tuple(path for path in open_paths if path.endswith("/") and path != "/")
        self.max_requests = max_requests
        # default: a quarter of the slots (at least one, and never all of them when there is more than one)
        self.reserved = min(max(1, max_requests // 4), max_requests - 1) if reserved is None else reserved
        self.in_flight = 0

    def _open(self, scope: Scope) -> bool:
        return scope["path"] in self.open_paths or scope["path"].startswith(self.open_folders)

    def _protected(self, scope: Scope, open_path: bool) -> bool:
        if self.expected is None:
            return not open_path
        return hmac.compare_digest(_header(scope, b"authorization") or b"", self.expected)  # constant time

    def _authorised(self, scope: Scope) -> bool:
        open_path = self._open(scope)
        return open_path or self._protected(scope, open_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        open_path = self._open(scope)
        protected = self._protected(scope, open_path)
        if not (open_path or protected):
            await _send_json(send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")])
            return
        scope[PROTECTED] = protected
        if self.in_flight >= self.max_requests - (0 if protected else self.reserved):
            kept = "" if protected else f" ({self.reserved} are kept for requests with the token)"
            await _send_json(send, 503, f"{self.in_flight} requests are in progress{kept}; retry",
                             [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossSiteGuardMiddleware:
    """Refuses (403) a state-changing request a browser sent from another site: `Sec-Fetch-Site` other than
    same-origin or none, or an `Origin` that is not this server's host. Clients that are not browsers send
    neither and pass; the bearer token (a header, never a cookie) is the first line of defence."""

    def __init__(self, app: ASGIApp):
        self.app = app

    @staticmethod
    def refusal(scope: Scope) -> str | None:
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        site = _header(scope, b"sec-fetch-site")
        if site is not None and site not in (b"same-origin", b"none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site.decode('latin-1')[:20]})"
        origin = _header(scope, b"origin")
        if origin is not None:
            host = _header(scope, b"host") or b""
            netloc = origin.split(b"://", 1)[1] if b"://" in origin else b""
            if not host or netloc.lower() != host.lower():
                return "cross-site request refused (Origin is not this server)"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await _send_json(send, 403, refusal)
                return
        await self.app(scope, receive, send)


class UploadGuardMiddleware:
    """Bounds what one request can make the server hold: a body over `max_body_bytes` gets 413 (at once
    when declared, else as soon as the count passes the cap while reading), and a client that sends no
    body bytes for `timeout` seconds mid-request, or falls below `min_rate` bytes/s once `timeout` has
    passed (a whole-request deadline of timeout + bytes / min_rate), gets 408."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, timeout: float, min_rate: float = float("inf")):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901 (two ASGI wrappers share one request's state)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_json(send, 413, f"the request body ({declared} bytes) is over the limit of "
                                        f"{self.max_body_bytes} bytes")
            return
        state = {"body_done": False, "received": 0, "refusal": None, "started": False}
        loop = asyncio.get_running_loop()
        start = loop.time()

        def refuse(status: int, detail: str) -> _Refused:
            state["refusal"] = (status, detail)
            return _Refused(detail)

        async def guarded_receive() -> Message:
            if state["body_done"]:  # after the body, receive() only waits for a disconnect: no timeout
                return await receive()
            # the moment the bytes so far fall below the floor rate (after the grace of one timeout)
            deadline = start + self.timeout + state["received"] / self.min_rate
            wait = min(self.timeout, deadline - loop.time())
            try:
                if wait <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), wait)
            except asyncio.TimeoutError:  # one message: near the grace's end both limits fall together
                raise refuse(408, f"the request body stalled for {self.timeout:g} s or came slower than "
                                  f"{self.min_rate:g} bytes/s") from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    raise refuse(413, f"the request body is over the limit of {self.max_body_bytes} bytes")
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def guarded_send(message: Message) -> None:
            if state["refusal"] is not None:
                return  # whatever the app answers to the abandoned read (a 400), the client gets our status
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if state["refusal"] is None:
                raise
        if state["refusal"] is not None and not state["started"]:
            await _send_json(send, *state["refusal"])


class RequestMetricsMiddleware:
    """Count every HTTP request by method, route template and status, with its latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            # The template (/exemplars/{exemplar_id}), never the raw path: ids must not explode the label set.
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope.get("method", "?"), name, status["code"], time.perf_counter() - start)
