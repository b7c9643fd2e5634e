"""ASGI middleware of the service: upload guards (a declared Content-Length over the cap gets 413 before
any byte is read; a client that stalls mid-body gets 408 instead of holding a request open), and request
metrics by route template."""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simsearch.service.metrics import Metrics


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class _Refused(Exception):
    """Raised from receive() to abandon a request the guard has refused."""


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class UploadGuardMiddleware:
    """Bounds what one request can make the server hold: a body over `max_body_bytes` gets 413 (at once
    when declared, else as soon as the count passes the cap while reading), and a client that sends no
    body bytes for `timeout` seconds mid-request gets 408."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, timeout: float):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_json(send, 413, f"the request body ({declared} bytes) is over the limit of "
                                        f"{self.max_body_bytes} bytes")
            return
        state = {"body_done": False, "received": 0, "refusal": None, "started": False}

        def refuse(status: int, detail: str) -> _Refused:
            state["refusal"] = (status, detail)
            return _Refused(detail)

        async def guarded_receive() -> Message:
            if state["body_done"]:  # after the body, receive() only waits for a disconnect: no timeout
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                raise refuse(408, f"the request body stalled for more than {self.timeout:g} s") from None
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
