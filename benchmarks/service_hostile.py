"""Hostile clients against `simsearch serve` on loopback: authenticated /score latency while N connections
that never finish their headers are open (and how many of them the server closes); authenticated /score and
/healthz calls while N slow readers (clients that ask for the largest file served without the token, the 1 MB
Swagger UI bundle, with a 1 KB receive buffer, and never read) and N unfinished connections are open, then
while a fresh batch of both opens every 3 s (and how many the server closes); how long a body trickled at one
byte a second holds a request; and the server's peak memory per in-flight decode with K parallel 16-bit
9400x9400 PNG uploads. Talks only to 127.0.0.1; the default run takes about two minutes.

    python benchmarks/service_hostile.py [--index FOLDER] [--unfinished 500] [--slow-readers 500]
        [--parallel 3] [--phases unfinished,slow-readers,trickle,uploads] [--json]

Without --index it uses a small synthetic random-weight index (cached under artifacts/service_bench/):
these figures are about connections and decoding, not about the model.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything loads an OpenMP runtime

import argparse
import collections
import concurrent.futures
import io
import json
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_load import CACHE, Server, percentiles  # noqa: E402

TOKEN = "hostile-benchmark-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ASSET = "/docs-assets/swagger-ui-bundle.js"  # the largest answer a client without the token can ask for
PHASES = ("unfinished", "slow-readers", "trickle", "uploads")
SEND_TIMEOUT_S = 10  # the server's --send-timeout here (default 30), so that the run sees the floor act


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


def address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return host, int(port)


def connect(url: str) -> socket.socket:
    return socket.create_connection(address(url), timeout=60)


PIPELINED = 8  # requests each slow reader sends at once: 8 MB of answers, more than the kernel's send buffer


def slow_reader(url: str, pipelined: int = PIPELINED) -> socket.socket:
    """Asks for the largest open file (pipelined times on one connection, so that the answers outgrow the
    kernel's send buffer, up to 4 MB on Linux, and the server itself has to hold them) with a 1 KB receive
    buffer, and never reads."""
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before connect: the window stays small
    connection.settimeout(60)
    connection.connect(address(url))
    connection.sendall(f"GET {ASSET} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * pipelined)
    return connection


def unfinished(url: str) -> socket.socket:
    connection = connect(url)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    return connection


def attack(url: str, count: int) -> tuple[list[socket.socket], list[socket.socket], int]:
    """count slow readers and count unfinished connections, interleaved; (readers, unfinished, refused)."""
    readers, waiting, refused = [], [], 0
    for _ in range(count):
        for opener, into in ((slow_reader, readers), (unfinished, waiting)):
            try:
                into.append(opener(url))
            except OSError:
                refused += 1
    return readers, waiting, refused


def server_closed(connection: socket.socket) -> bool:
    """Whether the server has closed or reset the connection, read without reading the answer (Linux)."""
    try:
        return connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] != 1  # 1: established
    except (AttributeError, OSError):
        return closed(connection, 0.01)


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


def authenticated_calls(url: str, image: bytes, count: int | None = None, until: float | None = None) -> dict:
    """/score and /healthz with the token, each on a new connection (as a client behind the attack would open
    one), count times or until a monotonic time: served, failures by cause, latency."""
    figures: dict = {}
    for name in ("score", "healthz"):
        figures[name] = {"latencies": [], "served": 0, "failures": collections.Counter()}
    done = 0
    while (count is not None and done < count) or (until is not None and time.monotonic() < until):
        for name in ("score", "healthz"):
            start = time.perf_counter()
            try:
                if name == "score":
                    response = httpx.post(f"{url}/score", files={"image": ("part.png", image, "image/png")},
                                          headers=AUTH, timeout=30)
                else:
                    response = httpx.get(f"{url}/healthz", headers=AUTH, timeout=30)
                if response.status_code == 200:
                    figures[name]["served"] += 1
                else:
                    figures[name]["failures"][str(response.status_code)] += 1
            except httpx.HTTPError as error:
                figures[name]["failures"][type(error).__name__] += 1
            figures[name]["latencies"].append(time.perf_counter() - start)
        done += 1
    return {name: {"served": f"{part['served']}/{done}", "failures": dict(part["failures"]),
                   **percentiles(part["latencies"])} for name, part in figures.items()}


def slow_reader_attack(url: str, image: bytes, count: int, churn_s: float, scores: int) -> dict:
    """Authenticated calls while count slow readers and count unfinished connections are open, then while a
    fresh batch of both opens every 3 s for churn_s seconds; how many of the first batch the server closed."""
    readers, waiting, refused = attack(url, count)
    opened_at = time.monotonic()
    time.sleep(1.0)  # the server reads their requests and starts its answers
    figures: dict = {"slow_readers": count, "unfinished": count, "attack_connects_refused": refused,
                     "evicted_at_once": {"slow_readers": sum(map(server_closed, readers)),
                                         "unfinished": sum(map(server_closed, waiting))}}
    figures["held"] = authenticated_calls(url, image, count=scores)
    batches: list[list[socket.socket]] = []
    opened = collections.Counter()
    stop = threading.Event()

    def churn() -> None:
        while not stop.wait(3.0):
            fresh_readers, fresh_waiting, refused_now = attack(url, count)
            batches.append(fresh_readers + fresh_waiting)
            opened["batches"] += 1
            opened["refused"] += refused_now
            while len(batches) > 2:  # the client keeps two batches: enough to fill the server's cap
                for connection in batches.pop(0):
                    connection.close()

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    figures["churn"] = {"seconds": churn_s, **authenticated_calls(url, image, until=time.monotonic() + churn_s)}
    stop.set()
    churner.join()
    figures["churn"].update(batches=opened["batches"], attack_connects_refused=opened["refused"])
    for batch in batches:
        for connection in batch:
            connection.close()
    # every slow reader of the first batch: evicted, or reset by the send-rate floor
    deadline = opened_at + SEND_TIMEOUT_S + 20
    while time.monotonic() < deadline and not all(map(server_closed, readers)):
        time.sleep(0.5)
    figures["first_batch_closed_by_server"] = {
        "slow_readers": sum(map(server_closed, readers)), "unfinished": sum(map(server_closed, waiting)),
        "after_s": round(time.monotonic() - opened_at, 1)}
    for connection in readers + waiting:
        connection.close()
    return figures


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


def unfinished_phase(url: str, image: bytes, count: int, scores: int) -> dict:
    held = []
    for _ in range(count):
        held.append(unfinished(url))
    loaded, ok = score_latencies(url, image, scores)
    deadline = time.monotonic() + 20  # header timeout 8 s, and some slack on a busy machine
    figures = {"score_ms_with_unfinished": percentiles(loaded), "scores_served_with_unfinished": f"{ok}/{scores}",
               "unfinished_closed_by_server": sum(closed(c, max(0.01, deadline - time.monotonic())) for c in held)}
    for connection in held:
        connection.close()
    return figures


def uploads_phase(server: Server, side: int, parallel: int) -> dict:
    upload = sixteen_bit_png(side)
    before = rss_mb(server.process.pid, "VmRSS")
    with httpx.Client(timeout=300, headers=AUTH) as client, \
            concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        statuses = list(pool.map(lambda i: client.post(f"{server.url}/score", files={
            "image": (f"big{i}.png", upload, "image/png")}).status_code, range(parallel)))
    peak = rss_mb(server.process.pid, "VmHWM")
    return {"parallel": parallel, "size": f"{side}x{side} 16-bit PNG", "upload_kb": round(len(upload) / 1024),
            "statuses": statuses, "rss_before_mb": round(before), "peak_rss_mb": round(peak),
            "mb_per_inflight_decode": round((peak - before) / parallel)}


def allow_open_files(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def report(figures: dict, args: argparse.Namespace) -> None:
    if "score_ms_idle" in figures:
        print(f"authenticated /score, idle: p50 {figures['score_ms_idle']['p50_ms']:.0f} ms")
    if "unfinished_phase" in figures:
        phase = figures["unfinished_phase"]
        print(f"with {args.unfinished} unfinished connections open: {phase['scores_served_with_unfinished']} "
              f"authenticated scores served, p50 {phase['score_ms_with_unfinished']['p50_ms']:.0f} ms, "
              f"p95 {phase['score_ms_with_unfinished']['p95_ms']:.0f} ms; closed by the server (header timeout "
              f"8 s): {phase['unfinished_closed_by_server']}/{args.unfinished}")
    if "slow_readers_phase" in figures:
        phase = figures["slow_readers_phase"]

        def calls(part: dict) -> str:
            return "; ".join(f"/{name} with the token {part[name]['served']} served "
                             f"(failures {part[name]['failures'] or 'none'}), p50 {part[name]['p50_ms']:.0f} ms, "
                             f"p95 {part[name]['p95_ms']:.0f} ms" for name in ("score", "healthz"))
        print(f"with {args.slow_readers} slow readers ({ASSET}, 1 KB receive buffer, never read) and "
              f"{args.slow_readers} unfinished connections open: {calls(phase['held'])}")
        print(f"  closed by the server within 1 s of opening (the connection cap): "
              f"{phase['evicted_at_once']['slow_readers']} slow readers, {phase['evicted_at_once']['unfinished']} "
              f"unfinished; connects refused: {phase['attack_connects_refused']}")
        churn = phase["churn"]
        print(f"  a fresh batch of {args.slow_readers}+{args.slow_readers} every 3 s for {churn['seconds']:g} s "
              f"({churn['batches']} batches, {churn['attack_connects_refused']} connects refused): {calls(churn)}")
        first = phase["first_batch_closed_by_server"]
        print(f"  of the first batch, closed by the server {first['after_s']} s after opening (send timeout "
              f"{SEND_TIMEOUT_S} s, header timeout 8 s): {first['slow_readers']}/{args.slow_readers} slow readers, "
              f"{first['unfinished']}/{args.slow_readers} unfinished")
    if "trickled_body" in figures:
        trickled = figures["trickled_body"]
        print(f"body trickled at 1 byte/s: status {trickled['status']} after {trickled['seconds']} s")
    if "large_uploads" in figures:
        big = figures["large_uploads"]
        print(f"{big['parallel']} parallel {big['size']} uploads ({big['upload_kb']} KB each): statuses "
              f"{big['statuses']}, server RSS {big['rss_before_mb']} -> peak {big['peak_rss_mb']} MB, "
              f"{big['mb_per_inflight_decode']} MB per in-flight decode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--unfinished", type=int, default=500, help="connections that never finish their headers")
    parser.add_argument("--slow-readers", type=int, default=500,
                        help="slow readers, and as many unfinished connections beside them")
    parser.add_argument("--churn-seconds", type=float, default=15.0,
                        help="how long fresh batches of slow readers open every 3 s")
    parser.add_argument("--scores", type=int, default=20, help="authenticated scores (and /healthz) timed per phase")
    parser.add_argument("--parallel", type=int, default=3, help="parallel 16-bit uploads for the memory figure")
    parser.add_argument("--side", type=int, default=9400, help="side of the 16-bit uploads")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"which to run, of {','.join(PHASES)}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    if not phases <= set(PHASES):
        parser.error(f"--phases: unknown {', '.join(sorted(phases - set(PHASES)))} (choose from {', '.join(PHASES)})")
    allow_open_files(6 * args.slow_readers + args.unfinished + 256)  # the client's sockets: up to three batches

    index, images = (args.index, []) if args.index else synthetic_index()
    image = images[0].read_bytes() if images else sixteen_bit_png(256)
    with tempfile.TemporaryDirectory() as scratch:
        token = Path(scratch) / "token"
        token.write_text(TOKEN)
        token.chmod(0o600)
        server = Server(index, args.weights, "--token-file", str(token), "--header-timeout", "8",
                        "--read-timeout", "5", "--send-timeout", str(SEND_TIMEOUT_S))
        try:
            baseline, _ = score_latencies(server.url, image, args.scores)
            figures: dict = {"score_ms_idle": percentiles(baseline)}
            if "unfinished" in phases:
                figures["unfinished_phase"] = unfinished_phase(server.url, image, args.unfinished, args.scores)
            if "slow-readers" in phases:
                figures["slow_readers_phase"] = slow_reader_attack(server.url, image, args.slow_readers,
                                                                   args.churn_seconds, args.scores)
            if "trickle" in phases:
                status, seconds = slow_body_cutoff(server.url, image)
                figures["trickled_body"] = {"status": status, "seconds": round(seconds, 1),
                                            "settings": "read timeout 5 s, floor 10 KB/s"}
            if "uploads" in phases:
                figures["large_uploads"] = uploads_phase(server, args.side, args.parallel)
        finally:
            server.kill()
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures, args)


if __name__ == "__main__":
    main()
