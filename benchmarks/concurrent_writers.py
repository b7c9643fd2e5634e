"""Concurrent writers on one index: N `simsearch add` processes at once, R rounds, then count how many of the
exemplars the writers were told were added (exit 0, ids printed) are really in the index.

The index is a small random-weight one (64 px synthetic parts), so the figures measure the locking, not the
embedder; each `add` is a whole CLI process, as a user runs it. Lost = acknowledged but absent; reused =
an id acknowledged twice. With --page-clicks N, a `simsearch serve` on the same index (the inspection
station) takes N review clicks ("good", `POST /ui/api/history/{id}/review`, over HTTP as the page sends them)
while the CLI writers run; its acknowledged adds are counted with theirs.

    python benchmarks/concurrent_writers.py [--writers 3] [--rounds 20] [--page-clicks 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def synthetic_parts(folder: Path, count: int, seed: int) -> list[Path]:
    """Distinct small PNGs (gray discs with noise): distinct sha256, so no add is skipped as a duplicate."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2) < 26 ** 2
    paths = []
    for i in range(count):
        image = (np.where(disc, 150, 50) + rng.normal(0, 3, (64, 64))).clip(0, 255).astype(np.uint8)
        paths.append(folder / f"{i:04d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "simsearch.cli.main", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def page_clicks(index: Path, images: list[Path], start: threading.Event, acknowledged: list[int],
                failures: dict[str, int]) -> tuple[threading.Thread, object]:
    """Serve the index, score `images` through the API (the station's history), then, once `start` is set,
    review each as good, one click after the other, as the page does; acknowledged exemplar ids are appended."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import httpx
    from service_load import Server

    token = index.parent / "station.token"
    token.write_text("concurrent-writers-page-token-0123")
    token.chmod(0o600)
    server = Server(index, None, "--token-file", str(token), "--history", str(len(images) + 10))
    client = httpx.Client(base_url=server.url, timeout=120,
                          headers={"Authorization": f"Bearer {token.read_text()}"})
    for image in images:
        response = client.post("/score", files={"image": (image.name, image.read_bytes(), "image/png")})
        response.raise_for_status()
    history = [item["id"] for item in client.get("/ui/api/history").json()["items"]]

    def click() -> None:
        start.wait()
        for item_id in history:
            try:
                response = client.post(f"/ui/api/history/{item_id}/review", json={"action": "good"})
            except httpx.HTTPError as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
                continue
            if response.status_code == 200:
                acknowledged.append(response.json()["exemplar"]["id"])
            else:
                failures[str(response.status_code)] = failures.get(str(response.status_code), 0) + 1
        client.close()

    return threading.Thread(target=click), server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--page-clicks", type=int, default=0,
                        help="review clicks sent to a `simsearch serve` on the index while the CLI writers run")
    parser.add_argument("--json", action="store_true", help="one JSON object, for machines")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seed_images = synthetic_parts(tmp / "seed", 4, seed=0)
        index = tmp / "index"
        build = cli("build-index", *map(str, seed_images), "--out", str(index), "--no-pretrained",
                    "--image-size", "64", "--device", "cpu", "--json")
        _, err = build.communicate()
        if build.returncode:
            sys.exit(f"build-index failed: {err.strip()}")
        images = synthetic_parts(tmp / "new", options.writers * options.rounds, seed=1)
        acknowledged: list[int] = []
        failures: dict[int, int] = {}
        clicked: list[int] = []
        click_failures: dict[str, int] = {}
        go = threading.Event()
        clicker, server = (page_clicks(index, synthetic_parts(tmp / "page", options.page_clicks, seed=2), go, clicked,
                                       click_failures) if options.page_clicks else (None, None))
        if clicker:
            clicker.start()
        go.set()
        start = time.perf_counter()
        for round_ in range(options.rounds):
            batch = images[round_ * options.writers:(round_ + 1) * options.writers]
            writers = [cli("add", str(index), str(image), "--json") for image in batch]
            for writer in writers:
                out, err = writer.communicate()
                if writer.returncode == 0:
                    acknowledged += json.loads(out)["added"]
                else:
                    failures[writer.returncode] = failures.get(writer.returncode, 0) + 1
                    if "please report" in err:
                        failures[-1] = failures.get(-1, 0) + 1
        if clicker:
            clicker.join()
            server.terminate()
        elapsed = time.perf_counter() - start
        info = cli("info", str(index), "--exemplars", "--json")
        out, err = info.communicate()
        if info.returncode:
            sys.exit(f"info failed: {err.strip()}")
        present = {e["id"] for e in json.loads(out)["exemplars"]}

    figures = {
        "writers": options.writers, "rounds": options.rounds, "adds": options.writers * options.rounds,
        "acknowledged": len(acknowledged), "present": len(present & set(acknowledged)),
        "lost": len(set(acknowledged) - present), "ids_reused": len(acknowledged) - len(set(acknowledged)),
        "failed_exits": {str(k): v for k, v in failures.items() if k != -1},
        "please_report_exits": failures.get(-1, 0), "seconds": round(elapsed, 1),
    }
    if options.page_clicks:
        figures["page"] = {"clicks": options.page_clicks, "acknowledged": len(clicked),
                           "present": len(present & set(clicked)), "lost": len(set(clicked) - present),
                           "failed": click_failures}
        figures["ids_reused"] = len(acknowledged + clicked) - len(set(acknowledged + clicked))
    if options.json:
        print(json.dumps(figures))
        return
    print(f"{figures['writers']} concurrent `simsearch add` writers x {figures['rounds']} rounds "
          f"({figures['adds']} adds, {figures['seconds']} s)")
    print(f"  acknowledged {figures['acknowledged']}, present {figures['present']}, lost {figures['lost']}, "
          f"ids reused {figures['ids_reused']}")
    print(f"  failed exits {figures['failed_exits'] or 'none'}, "
          f"'(please report this)' {figures['please_report_exits']}")
    if options.page_clicks:
        page = figures["page"]
        print(f"  page review clicks at the same time: {page['clicks']}, acknowledged {page['acknowledged']}, "
              f"present {page['present']}, lost {page['lost']}, failed {page['failed'] or 'none'}")


if __name__ == "__main__":
    main()
