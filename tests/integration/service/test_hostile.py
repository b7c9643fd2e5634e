"""Hostile clients against a real `simsearch serve` process over real sockets: connections that never finish
their headers are closed and make way (authenticated scores are served while they are open), a body sent
slower than the floor rate is cut off, a request without the token is refused before its body is read.
Timeouts are settings, set small here; nothing asserts on wall-clock time."""

from __future__ import annotations

import socket

import httpx
import numpy as np
import pytest

from tests.conftest import part_image
from tests.integration.service.conftest import TOKEN, png_bytes
from tests.integration.service.test_server import _multipart, _read_response, folder, start_server, stop  # noqa: F401

UNFINISHED = 40  # over --max-connections 24: the server must evict them, not refuse real work


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _closed_by_server(connection: socket.socket) -> bool:
    try:
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _rest(connection: socket.socket) -> bytes:
    """What the server still sends before it closes the connection (nothing more after a reset)."""
    connection.settimeout(30)
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


@pytest.fixture
def server(folder, tmp_path):  # noqa: F811
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    process, url = start_server(folder, "--token-file", str(token_file), "--header-timeout", "1",
                                "--read-timeout", "1", "--min-upload-rate", "0.2", "--max-connections", "24")
    yield url
    stop(process)


def test_slow_and_unfinished_clients_do_not_block_authenticated_work(server):
    url = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    image = png_bytes(part_image(np.random.default_rng(5)))
    unfinished = []
    for _ in range(UNFINISHED):
        connection = _connect(url)
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        unfinished.append(connection)
    response = httpx.post(f"{url}/score", files={"image": ("ok.png", image, "image/png")}, headers=auth, timeout=60)
    assert response.status_code == 200, response.text
    assert all(_closed_by_server(connection) for connection in unfinished)  # header deadline or eviction

    # without the token: 401 at once, before the (never sent) body is waited for
    body, boundary = _multipart(image)
    connection = _connect(url)
    connection.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                       f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
    status, answer = _read_response(connection)
    assert status == 401 and b"token" in answer

    # with the token, a body trickled far below the floor rate (200 bytes/s after 1 s) is cut off with 408,
    # although no single gap between bytes reaches the 1 s stall timeout
    connection = _connect(url)
    connection.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nAuthorization: "
                       f"Bearer {TOKEN}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
    connection.settimeout(0.4)
    reply = b""
    for position in range(len(body)):
        try:
            connection.sendall(body[position:position + 1])
        except (BrokenPipeError, ConnectionResetError):  # answered and closed between two bytes
            pass
        try:
            reply = connection.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        break
    reply += _rest(connection)  # under load the body can come in a later packet than the status line
    assert reply.startswith(b"HTTP/1.1 408") and b"slower than" in reply, reply
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_docs_work_offline_and_without_the_token(server):
    page = httpx.get(f"{server}/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert httpx.get(f"{server}/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert httpx.get(f"{server}/openapi.json").status_code == 200
    assert httpx.get(f"{server}/info").status_code == 401
