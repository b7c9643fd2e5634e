"""Slow readers against a real `simsearch serve` process (issue 29, item 1): clients that ask for the largest file
served without the token (the 1 MB Swagger UI bundle) with a 1 KB receive buffer and never read. The connection
cap closes the oldest connection that is not serving a request with the token, whatever its state (a slow reader
mid-answer too), so authenticated work is served while the cap is full of slow readers and unfinished
connections; and a client that does not read its answer is cut off by the send-rate floor. Nothing asserts on
wall-clock time: waits are polls with a generous limit."""

from __future__ import annotations

import asyncio

from simsearch.service.middleware import PROTECTED, AccessGuardMiddleware


def test_requests_without_the_token_leave_a_reserve_for_those_with_it():
    """The access guard marks a request with the token as protected (the connection cap never closes it) and keeps a
    quarter of the request slots for such requests: open paths alone cannot fill the server."""
    async def scenario() -> list:
        release = asyncio.Event()
        scopes = []

        async def app(scope, receive, send):
            scopes.append(scope)
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        guard = AccessGuardMiddleware(app, token="t" * 16, open_paths={"/healthz"}, max_requests=4)
        statuses: list[int] = []

        async def request(path: str, token: bool) -> None:
            headers = [(b"authorization", b"Bearer " + b"t" * 16)] if token else []

            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            async def receive():
                return {"type": "http.disconnect"}

            await guard({"type": "http", "path": path, "headers": headers}, receive, send)

        held = [asyncio.create_task(request("/healthz", token=False)) for _ in range(3)]
        await asyncio.sleep(0)
        await request("/healthz", token=False)  # 3 without the token in flight: the 4th slot is kept
        protected = asyncio.create_task(request("/score", token=True))
        await asyncio.sleep(0)
        await request("/info", token=True)  # all 4 in flight: 503 for everyone
        release.set()
        await asyncio.gather(*held, protected)
        return [statuses, [scope[PROTECTED] for scope in scopes]]

    statuses, marks = asyncio.run(asyncio.wait_for(scenario(), 30))  # a request let through would wait for ever
    assert statuses == [503, 503, 200, 200, 200, 200]
    assert marks == [False, False, False, True]
