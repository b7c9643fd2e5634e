"""Core pipeline benchmark: build, scoring and search speed and peak memory on this machine.

Mirrors the peer measurement in the core issue (anomalib 2.7 PatchCore, ResNet-18 layer2+layer3, coreset
0.1, 86 real 1024x768 grayscale images): the 86 images here are MVTec AD bottle train/good pictures
turned into 1024x768 8-bit grayscale BMPs. The CLI runs as a user runs it (subprocesses: wall time and
peak RSS each); the plain greedy coreset (anomalib's algorithm) runs on the same features in the same
run, so the coreset speed-up is a ratio measured here, not a figure from elsewhere.

    python benchmarks/core_pipeline.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMSEARCH_SHARED", ROOT.parent / "shared"))  # ../shared, or where this names
BOTTLE = SHARED / "data" / "mvtec_bottle"
WEIGHTS = SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
PEER = {"build_s": 380.0, "coreset_s": 375.0, "score_images_per_s": 8.3, "peak_gb": 3.6}


def make_gray_bmps(folder: Path, count: int = 86) -> list[Path]:
    """Real bottle images as 1024x768 grayscale BMPs, like a line camera writes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sorted((BOTTLE / "train" / "good").glob("*.png"))[:count]:
        target = folder / f"{source.stem}.bmp"
        Image.open(source).convert("L").resize((1024, 768), Image.Resampling.BILINEAR).save(target)
        paths.append(target)
    return paths


# Runs the CLI in a child and, as it exits, prints that child's own peak RSS (KB) as the last stderr line.
_CHILD = ("import resource, runpy, sys\n"
          "sys.argv = ['simsearch'] + sys.argv[1:]\n"
          "try:\n    runpy.run_module('simsearch.cli.main', run_name='__main__')\n"
          "finally:\n    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def run_cli(*args: str) -> tuple[float, float, str]:
    """Run `simsearch ARGS` in a child; wall seconds, the child's peak RSS in GB, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"simsearch {' '.join(args)} failed: {done.stderr.strip()}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return elapsed, peak_kb / 1024 ** 2, done.stdout


def search_latency(sizes: list[int], dim: int = 384, patches: int = 784) -> list[dict]:
    """Exact flat-L2 search latency over N synthetic vectors: one image query (k=3) and one image's
    worth of patch queries (k=1)."""
    from simsearch.index import VectorStore

    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        store = VectorStore(dim)
        for start in range(0, size, 100_000):
            block = min(100_000, size - start)
            store.add(rng.standard_normal((block, dim), dtype=np.float32), np.arange(start, start + block))
        single = rng.standard_normal((1, dim), dtype=np.float32)
        grid = rng.standard_normal((patches, dim), dtype=np.float32)
        store.search(single, 3)
        start = time.perf_counter()
        store.search(grid, 1)  # the first patch query also prepares the pruning cells, once per loaded index
        first_grid_s = time.perf_counter() - start
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            store.search(single, 3)
            timings.append(time.perf_counter() - start)
        start = time.perf_counter()
        store.search(grid, 1)
        rows.append({"vectors": size, "one_query_ms": 1000 * float(np.median(timings)),
                     "patch_grid_query_ms": 1000 * (time.perf_counter() - start),
                     "first_patch_grid_query_ms": 1000 * first_grid_s})
    return rows


def in_process_scoring(index: Path, images: list[Path]) -> dict:
    """Inspector.score over the images in one process, index and model already loaded (as a service runs)."""
    from simsearch.inspector import Inspector

    inspector = Inspector.load(index)
    inspector.score(images[:4])  # warm-up: first batch, pruning cells
    start = time.perf_counter()
    inspector.score(images)
    elapsed = time.perf_counter() - start
    return {"images": len(images), "seconds": elapsed, "images_per_s": len(images) / elapsed}


def coreset_comparison(images: list[Path], quick: bool) -> dict:
    """Pruned greedy k-centre vs the plain algorithm on the same real patch features (projected to 128-d)."""
    from simsearch.data.images import read_image
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.embed.base import concat_embeddings, iter_embedded
    from simsearch.index.coreset import greedy_coreset, greedy_coreset_reference, random_projection

    embedder = BackboneEmbedder("resnet18", weights=WEIGHTS)
    start = time.perf_counter()
    pixels = [read_image(p) for p in images]
    patches = concat_embeddings([e for _, e in iter_embedded(embedder, pixels)]).patches
    embed_s = time.perf_counter() - start
    flat = random_projection(patches.reshape(-1, patches.shape[-1]), 128)
    n_select = len(flat) // 10
    start = time.perf_counter()
    ours = greedy_coreset(flat, n_select)
    ours_s = time.perf_counter() - start
    result = {"patches": len(flat), "selected": len(ours), "embed_images_per_s": len(images) / embed_s,
              "pruned_greedy_s": ours_s}
    if not quick:
        start = time.perf_counter()
        plain = greedy_coreset_reference(flat, n_select)
        result["plain_greedy_s"] = time.perf_counter() - start
        result["speedup"] = result["plain_greedy_s"] / ours_s
        result["same_selection"] = float(np.mean(np.sort(plain) == np.sort(ours)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the plain greedy coreset and 1e6 vectors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not BOTTLE.is_dir() or not WEIGHTS.is_file():
        raise SystemExit(f"skipped: needs {BOTTLE} and {WEIGHTS} (../shared beside the repo)")
    report: dict = {"machine": f"{os.cpu_count()} CPU cores", "peer_anomalib_patchcore": PEER}
    with tempfile.TemporaryDirectory() as tmp:
        images = make_gray_bmps(Path(tmp) / "gray")
        index = Path(tmp) / "index"
        build_s, build_gb, out = run_cli("build-index", str(Path(tmp) / "gray"), "--weights", str(WEIGHTS),
                                         "--out", str(index), "--json")
        report["build"] = {"images": len(images), "seconds": build_s, "peak_gb": build_gb, **json.loads(out)}
        test = sorted((BOTTLE / "test").rglob("*.png"))
        score_s, score_gb, out = run_cli("score", str(BOTTLE / "test"), "--index", str(index), "--json")
        report["score"] = {"images": len(test), "seconds": score_s, "images_per_s": len(test) / score_s,
                           "peak_gb": score_gb}
        report["score_in_process"] = in_process_scoring(index, test)
        report["coreset"] = coreset_comparison(images, args.quick)
    report["search"] = search_latency([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    report["vs_peer"] = {"build_speedup": PEER["build_s"] / report["build"]["seconds"],
                         "score_speedup": report["score_in_process"]["images_per_s"] / PEER["score_images_per_s"],
                         "peak_memory_ratio": max(build_gb, score_gb) / PEER["peak_gb"]}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    build, score, coreset = report["build"], report["score"], report["coreset"]
    print(f"machine: {report['machine']}")
    print(f"build-index, {build['images']} gray 1024x768 BMPs: {build['seconds']:.1f} s wall "
          f"(process start and model load included), {build['patches']} patches kept, peak {build['peak_gb']:.2f} GB")
    print(f"score, {score['images']} MVTec bottle test PNGs (900x900): {score['images_per_s']:.1f} images/s "
          f"end to end ({score['seconds']:.1f} s wall incl. start-up), peak {score['peak_gb']:.2f} GB")
    print(f"score in one process (index and model loaded): {report['score_in_process']['images_per_s']:.1f} images/s")
    print(f"embedding only: {coreset['embed_images_per_s']:.1f} images/s")
    line = f"coreset 10% of {coreset['patches']} patches: pruned greedy {coreset['pruned_greedy_s']:.1f} s"
    if "plain_greedy_s" in coreset:
        line += (f", plain greedy {coreset['plain_greedy_s']:.1f} s: {coreset['speedup']:.1f}x faster, "
                 f"{coreset['same_selection']:.1%} identical picks")
    print(line)
    for row in report["search"]:
        print(f"search over {row['vectors']:>9,} x 384-d vectors: {row['one_query_ms']:.2f} ms one query (k=3), "
              f"{row['patch_grid_query_ms']:.0f} ms for 784 patch queries (k=1; first one "
              f"{row['first_patch_grid_query_ms']:.0f} ms)")
    peer = report["vs_peer"]
    print(f"vs anomalib PatchCore (issue's figures on this kind of machine): build {peer['build_speedup']:.0f}x faster, "
          f"scoring {peer['score_speedup']:.1f}x faster (in one process), peak memory {peer['peak_memory_ratio']:.2f}x")


if __name__ == "__main__":
    main()
