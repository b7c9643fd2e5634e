"""Hostile clients against `simsearch serve` on loopback: authenticated /score latency while N connections
that never finish their headers are open (and how many of them the server closes), how long a body trickled
at one byte a second holds a request, and the server's peak memory per in-flight decode with K parallel
16-bit 9400x9400 PNG uploads. Talks only to 127.0.0.1; the default run takes about a minute.

    python benchmarks/service_hostile.py [--index FOLDER] [--unfinished 500] [--parallel 3] [--json]

Without --index it uses a small synthetic random-weight index (cached under artifacts/service_bench/):
these figures are about connections and decoding, not about the model.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything loads an OpenMP runtime

import argparse
import concurrent.futures
import io
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_load import CACHE, Server, percentiles  # noqa: E402

TOKEN = "hostile-benchmark-token-0123456789"


def synthetic_index() -> tuple[Path, list[Path]]:
    """A small random-weight index and images to score (built once)."""
    from simsearch.cli.demo import SIZE, make_demo_dataset
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.inspector import Inspector
    data = make_demo_dataset(CACHE / "synthetic")
    index = CACHE / "synthetic_index"
    if not (index / "manifest.json").is_file():
        embedder = BackboneEmbedder("resnet18", image_size=SIZE, pretrained=False)
        Inspector(embedder, coreset_ratio=0.25).fit(data / "train/good").save(index)
    return index, sorted((data / "test").rglob("*.png"))


def rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak since start) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=60)


def closed(connection: socket.socket, wait_s: float) -> bool:
    connection.settimeout(wait_s)
    try:
        return connection.recv(1024) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def score_latencies(url: str, image: bytes, count: int) -> tuple[list[float], int]:
    latencies, ok = [], 0
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = client.post(f"{url}/score", files={"image": ("part.png", image, "image/png")})
            latencies.append(time.perf_counter() - start)
            ok += response.status_code == 200
    return latencies, ok


def slow_body_cutoff(url: str, image: bytes) -> tuple[int | None, float]:
    """(status, seconds) for a body sent at one byte a second."""
    boundary = "hostilebench"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="slow.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    connection = connect(url)
    start = time.monotonic()
    connection.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nAuthorization: Bearer "
                       f"{TOKEN}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
    connection.settimeout(1.0)
    for position in range(min(len(body), 120)):
        try:
            connection.sendall(body[position:position + 1])
        except OSError:  # answered and closed between two bytes: the answer is still to be read
            pass
        try:
            reply = connection.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return None, time.monotonic() - start
        return (int(reply.split(b" ", 2)[1]) if reply else None), time.monotonic() - start
    return None, time.monotonic() - start


def sixteen_bit_png(side: int) -> bytes:
    values = np.add.outer(np.arange(side, dtype=np.uint32), np.arange(side, dtype=np.uint32))
    buffer = io.BytesIO()
    Image.fromarray((values * 3 % 65536).astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--unfinished", type=int, default=500, help="connections that never finish their headers")
    parser.add_argument("--scores", type=int, default=20, help="authenticated scores timed per phase")
    parser.add_argument("--parallel", type=int, default=3, help="parallel 16-bit uploads for the memory figure")
    parser.add_argument("--side", type=int, default=9400, help="side of the 16-bit uploads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    index, images = (args.index, []) if args.index else synthetic_index()
    image = images[0].read_bytes() if images else sixteen_bit_png(256)
    with tempfile.TemporaryDirectory() as scratch:
        token = Path(scratch) / "token"
        token.write_text(TOKEN)
        token.chmod(0o600)
        server = Server(index, args.weights, "--token-file", str(token), "--header-timeout", "8",
                        "--read-timeout", "5")
        try:
            figures: dict = {"unfinished": args.unfinished}
            baseline, _ = score_latencies(server.url, image, args.scores)
            figures["score_ms_idle"] = percentiles(baseline)
            held = []
            for _ in range(args.unfinished):
                connection = connect(server.url)
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                held.append(connection)
            loaded, ok = score_latencies(server.url, image, args.scores)
            figures["score_ms_with_unfinished"] = percentiles(loaded)
            figures["scores_served_with_unfinished"] = f"{ok}/{args.scores}"
            deadline = time.monotonic() + 20  # header timeout 8 s, and some slack on a busy machine
            figures["unfinished_closed_by_server"] = sum(closed(c, max(0.01, deadline - time.monotonic()))
                                                         for c in held)
            for connection in held:
                connection.close()
            status, seconds = slow_body_cutoff(server.url, image)
            figures["trickled_body"] = {"status": status, "seconds": round(seconds, 1),
                                        "settings": "read timeout 5 s, floor 10 KB/s"}

            upload = sixteen_bit_png(args.side)
            before = rss_mb(server.process.pid, "VmRSS")
            with httpx.Client(timeout=300, headers={"Authorization": f"Bearer {TOKEN}"}) as client, \
                    concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
                statuses = list(pool.map(lambda i: client.post(f"{server.url}/score", files={
                    "image": (f"big{i}.png", upload, "image/png")}).status_code, range(args.parallel)))
            peak = rss_mb(server.process.pid, "VmHWM")
            figures["large_uploads"] = {"parallel": args.parallel, "size": f"{args.side}x{args.side} 16-bit PNG",
                                        "upload_kb": round(len(upload) / 1024), "statuses": statuses,
                                        "rss_before_mb": round(before), "peak_rss_mb": round(peak),
                                        "mb_per_inflight_decode": round((peak - before) / args.parallel)}
        finally:
            server.kill()
    if args.json:
        print(json.dumps(figures))
        return
    print(f"authenticated /score, idle: p50 {figures['score_ms_idle']['p50_ms']:.0f} ms; with {args.unfinished} "
          f"unfinished connections open: {figures['scores_served_with_unfinished']} served, p50 "
          f"{figures['score_ms_with_unfinished']['p50_ms']:.0f} ms, "
          f"p95 {figures['score_ms_with_unfinished']['p95_ms']:.0f} ms")
    print(f"unfinished connections closed by the server (header timeout 8 s): "
          f"{figures['unfinished_closed_by_server']}/{args.unfinished}")
    print(f"body trickled at 1 byte/s: status {status} after {figures['trickled_body']['seconds']} s")
    big = figures["large_uploads"]
    print(f"{big['parallel']} parallel {big['size']} uploads ({big['upload_kb']} KB each): statuses {big['statuses']}, "
          f"server RSS {big['rss_before_mb']} -> peak {big['peak_rss_mb']} MB, "
          f"{big['mb_per_inflight_decode']} MB per in-flight decode")


if __name__ == "__main__":
    main()
