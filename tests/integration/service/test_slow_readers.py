"""Slow readers against a real `simsearch serve` process (issue 29, item 1): clients that ask for the largest file
served without the token (the 1 MB Swagger UI bundle) with a 1 KB receive buffer and never read. The connection
cap closes the oldest connection that is not serving a request with the token, whatever its state (a slow reader
mid-answer too), so authenticated work is served while the cap is full of slow readers and unfinished
connections; and a client that does not read its answer is cut off by the send-rate floor. Nothing asserts on
wall-clock time: waits are polls with a generous limit."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time

import httpx
import numpy as np
import pytest

from tests.conftest import part_image
from tests.integration.service.conftest import TOKEN, png_bytes
from tests.integration.service.test_server import folder, start_server, stop  # noqa: F401

CAP = 24  # --max-connections: open connections and requests at once (a quarter of the requests kept for the token)
ASSET = "/docs-assets/swagger-ui-bundle.js"  # the largest answer a client without the token can ask for
TCP_ESTABLISHED = 1
needs_tcp_info = pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="reads the TCP state (Linux)")


def _address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return host, int(port)


def _slow_reader(url: str, path: str = ASSET) -> socket.socket:
    """A client that asks for `path` with a 1 KB receive buffer and never reads the answer."""
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: the window stays small
    connection.settimeout(30)
    connection.connect(_address(url))
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return connection


def _unfinished(url: str) -> socket.socket:
    connection = socket.create_connection(_address(url), timeout=30)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    return connection


def _bytes_waiting(connection: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(connection.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def _established(connection: socket.socket) -> bool:
    """Whether the connection is still open from the server's side (read without reading the answer)."""
    return connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] == TCP_ESTABLISHED


def _eventually(condition, limit_s: float = 30.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(0o600)
    return str(path)


@needs_tcp_info
def test_the_cap_evicts_slow_readers_by_age_and_keeps_room_for_the_token(folder, tmp_path):  # noqa: F811
    # a long send timeout: here the cap must act, not the send-rate floor
    process, url = start_server(folder, "--token-file", _token_file(tmp_path), "--max-connections", str(CAP),
                                "--send-timeout", "600", "--header-timeout", "600")
    readers, unfinished = [], []
    try:
        readers = [_slow_reader(url) for _ in range(CAP)]
        # every one answered (the first ones with the asset, in progress; beyond the requests kept for the token,
        # 503): the server is writing to them, not waiting for their headers
        assert _eventually(lambda: all(_bytes_waiting(reader) > 0 for reader in readers))
        unfinished = [_unfinished(url) for _ in range(CAP)]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        image = png_bytes(part_image(np.random.default_rng(5)))
        for _ in range(3):  # a new connection each time, as a client behind the attack would open
            response = httpx.post(f"{url}/score", files={"image": ("ok.png", image, "image/png")}, headers=auth,
                                  timeout=60)
            assert response.status_code == 200, response.text
            assert httpx.get(f"{url}/healthz", headers=auth, timeout=60).status_code == 200
        # the oldest slow reader, mid-answer, made room although it was not waiting for its headers
        assert _eventually(lambda: not _established(readers[0]))
        assert httpx.get(f"{url}/info", headers=auth, timeout=60).status_code == 200
    finally:
        for connection in readers + unfinished:
            connection.close()
        stop(process)


@needs_tcp_info
def test_a_client_that_does_not_read_its_answer_is_cut_off(folder, tmp_path):  # noqa: F811
    process, url = start_server(folder, "--token-file", _token_file(tmp_path), "--send-timeout", "1",
                                "--min-download-rate", "10")
    try:
        reader = _slow_reader(url)
        assert _eventually(lambda: _bytes_waiting(reader) > 0)  # the answer has started
        assert _eventually(lambda: not _established(reader))  # 1 s of grace, then nothing read: closed
        received = b""
        try:
            while chunk := reader.recv(65536):
                received += chunk
        except ConnectionResetError:  # a reset: the rest of the answer was discarded, not left to the kernel
            pass
        assert len(received) < 1_000_000  # cut off: far less than the 1 MB answer
        # a client that reads gets the whole answer under the same settings
        whole = httpx.get(f"{url}{ASSET}", timeout=60)
        assert whole.status_code == 200 and len(whole.content) == int(whole.headers["content-length"]) > 1_000_000
        # of the docs assets, only the files /docs loads are open; the source map (1.5 MB) needs the token
        assert httpx.get(f"{url}{ASSET}.map", timeout=60).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}{ASSET}.map", headers=auth, timeout=60).status_code == 200
        reader.close()
    finally:
        stop(process)
