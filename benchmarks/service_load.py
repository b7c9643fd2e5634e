"""Load test of `simsearch serve` on loopback: throughput and p50/p95/p99 latency at several concurrency
levels against in-process `Inspector.score`, errors, exemplars lost after a mixed add/score run, and a
SIGKILL-during-adds crash test. Bounded in requests and time; talks only to 127.0.0.1.

    python benchmarks/service_load.py --index artifacts/bottle_index \\
        --weights ../shared/weights/resnet18-imagenet1k-v1-layers1to3.pth

Without --index it builds one from ../shared/data/mvtec_bottle/train/good (cached under
artifacts/service_bench/), or a small synthetic random-weight one when ../shared is absent.

OMP_WAIT_POLICY=PASSIVE is set (unless already set) for the server and the in-process baseline alike:
with torch's and FAISS's OpenMP thread pools both spinning on a few shared cores, scoring is several
times slower (see docs/service.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything loads an OpenMP runtime

import argparse
import asyncio
import io
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BOTTLE = SHARED / "data" / "mvtec_bottle"
WEIGHTS = SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
CACHE = ROOT / "artifacts" / "service_bench"


# -- data ----------------------------------------------------------------------------------------------
def ensure_index(args) -> tuple[Path, Path | None, list[Path], list[Path]]:
    """(index folder, weights, images to score, images to add)."""
    if BOTTLE.is_dir():
        score_files = sorted((BOTTLE / "test").rglob("*.png"))
        add_files = sorted((BOTTLE / "train" / "good").glob("*.png"))
        weights = args.weights or (WEIGHTS if WEIGHTS.is_file() else None)
        index = args.index or CACHE / "bottle_index"
        if not (index / "manifest.json").is_file():
            print(f"building {index} from {BOTTLE / 'train/good'} (once)...", flush=True)
            subprocess.run([sys.executable, "-m", "simsearch.cli.main", "build-index", str(BOTTLE / "train/good"),
                            "--out", str(index), *(["--weights", str(weights)] if weights else [])], check=True)
        return index, weights, score_files, add_files
    from simsearch.cli.demo import SIZE, make_demo_dataset
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.inspector import Inspector
    data = make_demo_dataset(CACHE / "synthetic")
    index = args.index or CACHE / "synthetic_index"
    if not (index / "manifest.json").is_file():
        embedder = BackboneEmbedder("resnet18", image_size=SIZE, pretrained=False)
        Inspector(embedder, coreset_ratio=0.25).fit(data / "train/good").save(index, compile=True)
    return index, None, sorted((data / "test").rglob("*.png")), sorted((data / "train/good").glob("*.png"))


def encode(path: Path, size: int) -> tuple[bytes, np.ndarray]:
    """The upload: the image re-encoded as PNG at size x size (0: as is), and its pixels."""
    from simsearch.data.images import read_image, read_image_bytes
    if size <= 0:
        data = path.read_bytes()
        return data, read_image_bytes(data)
    image = Image.fromarray(read_image(path)).resize((size, size), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), read_image_bytes(buffer.getvalue())


# -- server --------------------------------------------------------------------------------------------
class Server:
    """`simsearch serve --port 0` on 127.0.0.1 as a subprocess."""

    def __init__(self, index: Path, weights: Path | None, *extra: str):
        command = [sys.executable, "-m", "simsearch.cli.main", "serve", "--index", str(index), "--host",
                   "127.0.0.1", "--port", "0", "--no-access-log", *(["--weights", str(weights)] if weights else []),
                   *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = ""
        while "http://" not in line:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError("the server exited during start-up")
        self.url = line.split(" on ")[1].split()[0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("the server never became ready")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=60)


# -- load ----------------------------------------------------------------------------------------------
def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    values = np.array(latencies) * 1000
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}


async def drive(url: str, jobs: list[tuple[str, bytes, dict]], concurrency: int, deadline_s: float) -> dict:
    """Run (path, upload, form) jobs with `concurrency` workers; latencies, statuses, answers."""
    queue: asyncio.Queue = asyncio.Queue()
    for number, job in enumerate(jobs):
        queue.put_nowait((number, job))
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    answers: list[tuple[str, dict]] = []
    stop_at = time.perf_counter() + deadline_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker():
            while not queue.empty() and time.perf_counter() < stop_at:
                number, (path, upload, form) = queue.get_nowait()
                start = time.perf_counter()
                try:
                    response = await client.post(path, files={"image": (f"{number}.png", upload, "image/png")},
                                                 data=form)
                except httpx.HTTPError as error:
                    errors.append(f"{path}: {error.__class__.__name__}")
                    continue
                latencies.setdefault(path, []).append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors.append(f"{path}: {response.status_code} {response.text[:120]}")
                else:
                    answers.append((path, response.json()))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "latencies": latencies, "errors": errors, "answers": answers,
            "done": sum(len(v) for v in latencies.values())}


def batch_mean(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith(("simsearch_batch_size_sum", "simsearch_batch_size_count"))}
    count = values.get("simsearch_batch_size_count", 0)
    return values.get("simsearch_batch_size_sum", 0) / count if count else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels")
    parser.add_argument("--requests", type=int, default=48, help="score requests per level")
    parser.add_argument("--mixed", type=int, default=48, help="requests in the mixed run (1 in 4 an add)")
    parser.add_argument("--kill-after", type=int, default=5, help="SIGKILL the server after this many adds")
    parser.add_argument("--upload-size", type=int, default=256, help="uploads are PNGs this size (0: originals)")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds per run, at most")
    parser.add_argument("--no-compiled", action="store_true", help="torch runs the embedder, in the server and "
                        "in process (default: the index's compiled copy, where it has one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    source, weights, score_files, add_files = ensure_index(args)
    uploads = [encode(p, args.upload_size) for p in score_files[:24]]
    additions = [encode(p, args.upload_size)[0] for p in add_files[:64]]
    report: dict = {"index": str(source), "upload_size": args.upload_size, "cpu_cores": os.cpu_count(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}

    # in-process baseline: the same pixels through Inspector.score, one by one and in one batch
    from simsearch.index import ExemplarIndex
    from simsearch.inspector import Inspector
    inspector = Inspector.load(source, weights=weights, compiled=False if args.no_compiled else None)
    report["embedder"] = type(inspector.embedder).__name__
    runtime_flags = ["--no-compiled"] if args.no_compiled else []
    pixels = [p for _, p in uploads]
    inspector.score(pixels[:2])  # warm-up
    start = time.perf_counter()
    expected = [inspector.score([p])[0].to_dict() for p in pixels]
    single = time.perf_counter() - start
    start = time.perf_counter()
    inspector.score(pixels)
    batched = time.perf_counter() - start
    report["in_process"] = {"images": len(pixels), "one_by_one_per_s": round(len(pixels) / single, 2),
                            "batched_per_s": round(len(pixels) / batched, 2),
                            "one_by_one_ms": round(1000 * single / len(pixels), 1)}
    del inspector

    with tempfile.TemporaryDirectory(prefix="simsearch-load-") as scratch:
        work = Path(scratch) / "index"
        shutil.copytree(source, work)
        server = Server(work, weights, *runtime_flags)
        try:
            # the server's answers equal in-process scoring (path aside: the server names the upload)
            differences = []
            for number, (upload, _) in enumerate(uploads):
                answer = httpx.post(f"{server.url}/score", files={"image": ("x.png", upload, "image/png")},
                                    timeout=120).json()
                differences.append(abs(answer["score"] - expected[number]["score"]))
                same = {k: v for k, v in answer.items() if k not in ("path", "score")} == \
                    {k: v for k, v in expected[number].items() if k not in ("path", "score")}
                differences[-1] = differences[-1] if same else float("inf")
            report["max_score_difference"] = float(max(differences))

            levels = []
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                jobs = [("/score", uploads[i % len(uploads)][0], {}) for i in range(args.requests)]
                run = asyncio.run(drive(server.url, jobs, concurrency, args.deadline))
                levels.append({"concurrency": concurrency, "requests": run["done"],
                               "per_s": round(run["done"] / run["seconds"], 2),
                               **percentiles(run["latencies"].get("/score", [])), "errors": len(run["errors"]),
                               "first_errors": run["errors"][:3]})
            report["levels"] = levels
            report["mean_batch"] = round(batch_mean(server.url), 2)

            # mixed: 1 in 4 requests adds a good exemplar while the others score
            jobs = [("/exemplars", additions[i % len(additions)], {"label": "good"}) if i % 4 == 3 else
                    ("/score", uploads[i % len(uploads)][0], {}) for i in range(args.mixed)]
            run = asyncio.run(drive(server.url, jobs, 8, args.deadline))
            acknowledged = {answer["id"] for path, answer in run["answers"] if path == "/exemplars"}
            code = server.terminate()
            stored = ExemplarIndex.load(work)
            report["mixed"] = {"requests": run["done"], "adds_acknowledged": len(acknowledged),
                               "per_s": round(run["done"] / run["seconds"], 2),
                               "score": percentiles(run["latencies"].get("/score", [])),
                               "add": percentiles(run["latencies"].get("/exemplars", [])),
                               "errors": len(run["errors"]), "first_errors": run["errors"][:3],
                               "lost": len(acknowledged - set(stored.exemplars)), "sigterm_exit": code}
        finally:
            server.kill()

        # crash: SIGKILL during a stream of adds, then restart and ask for every acknowledged id
        server = Server(work, weights, *runtime_flags)
        acknowledged_kill: list[int] = []

        def stream_adds() -> None:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                for number, upload in enumerate(additions):
                    try:
                        response = client.post("/exemplars", files={"image": (f"k{number}.png", upload, "image/png")},
                                               data={"label": "good"})
                    except httpx.HTTPError:
                        return
                    if response.status_code == 200:
                        acknowledged_kill.append(response.json()["id"])

        writer = threading.Thread(target=stream_adds, daemon=True)
        writer.start()
        deadline = time.monotonic() + args.deadline
        while len(acknowledged_kill) < args.kill_after and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        writer.join(timeout=60)
        try:
            loaded = ExemplarIndex.load(work)
            load_error = None
        except Exception as error:  # the point of the test: this must not happen
            loaded, load_error = None, str(error)
        restarted = Server(work, weights, *runtime_flags)
        try:
            missing = [i for i in acknowledged_kill
                       if httpx.get(f"{restarted.url}/exemplars/{i}").status_code != 200]
        finally:
            restarted.terminate()
        report["kill"] = {"adds_acknowledged": len(acknowledged_kill), "index_loads": load_error is None,
                          "load_error": load_error, "lost_after_restart": len(missing),
                          "exemplars_on_disk": len(loaded) if loaded is not None else None}

    if args.json:
        print(json.dumps(report))
        return
    base = report["in_process"]
    print(f"index {report['index']}, uploads {args.upload_size or 'original'} px PNG, {report['cpu_cores']} cores, "
          f"OMP_WAIT_POLICY={report['omp_wait_policy']}, embedder run by {report['embedder']}")
    print(f"in-process Inspector.score: {base['one_by_one_per_s']} img/s one by one ({base['one_by_one_ms']} ms), "
          f"{base['batched_per_s']} img/s in one batch")
    print(f"server vs in-process: largest score difference {report['max_score_difference']:.2e} "
          "(inf = another field differs)")
    print(f"{'concurrency':>11} {'requests':>8} {'img/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for level in report["levels"]:
        print(f"{level['concurrency']:>11} {level['requests']:>8} {level['per_s']:>7} {level['p50_ms']:>8} "
              f"{level['p95_ms']:>8} {level['p99_ms']:>8} {level['errors']:>6}")
    print(f"mean model batch over the runs: {report['mean_batch']}")
    mixed = report["mixed"]
    print(f"mixed (8 clients, 1 in 4 adds): {mixed['requests']} requests, {mixed['per_s']} req/s, score p50/p95 "
          f"{mixed['score']['p50_ms']}/{mixed['score']['p95_ms']} ms, add p50/p95 {mixed['add']['p50_ms']}/"
          f"{mixed['add']['p95_ms']} ms, errors {mixed['errors']}, adds acknowledged {mixed['adds_acknowledged']}, "
          f"lost {mixed['lost']}, SIGTERM exit {mixed['sigterm_exit']}")
    kill = report["kill"]
    print(f"SIGKILL during adds: {kill['adds_acknowledged']} acknowledged, index loads: {kill['index_loads']}, "
          f"lost after restart: {kill['lost_after_restart']}")
    for level in report["levels"] + [mixed]:
        for line in level["first_errors"]:
            print(f"  error: {line}")


if __name__ == "__main__":
    main()
