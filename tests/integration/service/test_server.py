"""`simsearch serve` as a subprocess on a free loopback port: a stalled client holds nothing, SIGTERM lets
in-flight requests finish, and SIGKILL during adds loses no acknowledged exemplar. (The full restart
after a kill, over HTTP, is in benchmarks/service_load.py.)"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import httpx
import numpy as np
import pytest

from simsearch.index import ExemplarIndex
from simsearch.inspector import Inspector
from simsearch.service.state import IndexState, ScoreRequest
from tests.conftest import part_image
from tests.integration.service.conftest import png_bytes

STARTUP_S = 120


def start_server(folder, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start `simsearch serve --port 0` and return (process, base URL) once it listens."""
    command = [sys.executable, "-m", "simsearch.cli.main", "serve", "--index", str(folder), "--port", "0",
               "--no-access-log", *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = ""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and "http://" not in line:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()}")
    url = line.split(" on ")[1].split()[0]
    while time.monotonic() < deadline:  # uvicorn's startup runs right after the announcement
        try:
            if urllib.request.urlopen(f"{url}/readyz", timeout=5).status == 200:
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server never became ready")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


@pytest.fixture
def folder(served_index, tmp_path):
    target = tmp_path / "index"
    shutil.copytree(served_index[1], target)
    return target


def _multipart(image: bytes, **fields: str) -> tuple[bytes, str]:
    boundary = "simsearchtestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="slow.png"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def _open_request(url: str, path: str, body: bytes, boundary: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    connection = socket.create_connection((host, int(port)), timeout=30)
    connection.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
                       f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
    return connection


def _read_response(connection: socket.socket) -> tuple[int, bytes]:
    data = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length")]
        if length and len(body) >= length[0]:
            break
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def test_stalled_upload_then_sigterm_with_a_request_in_flight(folder):
    """One server: a stalled client holds nothing and gets 408; SIGTERM lets an in-flight add finish."""
    process, url = start_server(folder, "--read-timeout", "1.5")
    try:
        body, boundary = _multipart(png_bytes(part_image(np.random.default_rng(3))))
        stalled = _open_request(url, "/score", body, boundary)
        stalled.sendall(body[:50])
        start = time.monotonic()
        image = png_bytes(part_image(np.random.default_rng(4)))
        response = httpx.post(f"{url}/score", files={"image": ("ok.png", image, "image/png")}, timeout=30)
        assert response.status_code == 200 and time.monotonic() - start < 1.5
        status, answer = _read_response(stalled)
        assert status == 408 and b"stalled" in answer
        assert httpx.get(f"{url}/healthz").status_code == 200

        body, boundary = _multipart(png_bytes(part_image(np.random.default_rng(2))), label="good")
        connection = _open_request(url, "/exemplars", body, boundary)
        connection.sendall(body[:100])  # the request is in flight...
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)  # ...when the server is told to stop
        time.sleep(0.5)
        assert process.poll() is None  # still serving the in-flight request
        connection.sendall(body[100:])
        status, answer = _read_response(connection)
        assert status == 200, answer
        exemplar_id = httpx.Response(200, content=answer).json()["id"]
        process.wait(timeout=60)
        assert process.returncode in (0, -signal.SIGTERM)
        assert exemplar_id in ExemplarIndex.load(folder).exemplars
    finally:
        stop(process)


def test_sigkill_during_adds_loses_no_acknowledged_exemplar(folder):
    process, url = start_server(folder)
    acknowledged: list[int] = []
    rng = np.random.default_rng(9)
    images = [png_bytes(part_image(rng)) for _ in range(40)]

    def stream_adds():
        with httpx.Client(timeout=30) as client:
            for i, image in enumerate(images):
                try:
                    response = client.post(f"{url}/exemplars", files={"image": (f"{i}.png", image, "image/png")},
                                           data={"label": "good"})
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    acknowledged.append(response.json()["id"])

    writer = threading.Thread(target=stream_adds)
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.kill()  # SIGKILL, mid-stream
        process.wait(timeout=30)
        writer.join(timeout=60)
        assert len(acknowledged) >= 3
        stored = ExemplarIndex.load(folder)
        assert set(acknowledged) <= set(stored.exemplars)
        # what a restarted server does: open the index with its embedder, and serve every acknowledged id
        reopened = IndexState(Inspector.load(folder), folder)
        assert all(reopened.get(exemplar_id) is not None for exemplar_id in acknowledged)
        assert reopened.score([ScoreRequest(part_image(rng))])[0].score >= 0
    finally:
        stop(process)
