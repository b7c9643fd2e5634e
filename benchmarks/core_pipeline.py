"""Core pipeline benchmark: build, scoring and search speed and peak memory on this machine.

The build runs on 86 real 1024x768 grayscale images (MVTec AD bottle train/good pictures turned into 8-bit
grayscale BMPs, like a line camera writes). The CLI runs as a user runs it (subprocesses: wall time and
peak RSS each, and the start-up to the first result of one image); in one process, the backbone alone
(`embed.images_per_s`: decoded, resized images through the network) is set against the whole scoring path
(`score_in_process.images_per_s`: decoding, resizing, network, search, verdicts), with and without the
loader threads; embedding only and scoring run `--rounds` times in turn and each ratio is the median of its
rounds (the machine's noise moves a round's runs alike). Each stage's CPU time alone gives the ratio this
machine's cores allow at best (`cpu_bound_png`, `cpu_bound_bmp`), and how near the runs came to it. The
embedder's options (bfloat16 autocast, channels-last) are each measured for speed and for image AUROC on
bottle and ELPV. The plain greedy coreset (anomalib's algorithm) runs on the same features in the same run,
so the coreset speed-up is a ratio measured here. anomalib itself runs in benchmarks/peer_anomalib.py.

    python benchmarks/core_pipeline.py [--quick] [--json] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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
ELPV = SHARED / "data" / "elpv_subset"
OPTIONS = {"float32": {}, "bfloat16": {"precision": "bfloat16"}, "channels_last": {"channels_last": True},
           "bfloat16+channels_last": {"precision": "bfloat16", "channels_last": True}}


def make_gray_bmps(folder: Path, count: int = 86, sources: list[Path] | None = None) -> list[Path]:
    """Real bottle images (train/good, or `sources`) as 1024x768 grayscale BMPs, like a line camera writes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, source in enumerate(sources or sorted((BOTTLE / "train" / "good").glob("*.png"))[:count]):
        target = folder / f"{number:03d}-{source.stem}.bmp"
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


def in_process_scoring(inspector, images: list[Path], maps: str = "needed") -> dict:
    """Inspector.score over the image files in one process, index and model already loaded (as a service
    runs): decoding, resizing, the network, search and verdicts; anomaly maps as `simsearch score` makes
    them (maps="needed": a reject's, for its boxes; "all": every image's, as for overlays)."""
    start = time.perf_counter()
    inspector.score(images, maps=maps)
    elapsed = time.perf_counter() - start
    return {"images": len(images), "workers": inspector.workers, "maps": maps, "seconds": elapsed,
            "images_per_s": len(images) / elapsed}


def scoring_rounds(runs: list[tuple[str, object, list[Path], str]], embedders: dict, embed_images: list[Path],
                   rounds: int) -> dict:
    """Embedding only with each embedder (name -> embedder: the compiled one the loaded index runs, and torch),
    then each scoring run (name, inspector, images, maps) in one process, `rounds` times in turn. A noisy
    neighbour slows everything in a round alike, so each ratio to embedding only (with the embedder the run
    uses) is taken within its round; the medians are reported, with every round's figures."""
    for _, inspector, images, maps in runs:
        inspector.score(images[:4], maps=maps)  # warm-up: first batch, pruning cells
    baseline = {name: next(key for key, embedder in embedders.items() if embedder is inspector.embedder)
                for name, inspector, *_ in runs}
    figures: dict[str, list[dict]] = {**{key: [] for key in embedders}, **{name: [] for name, *_ in runs}}
    for _ in range(rounds):
        for key, embedder in embedders.items():
            figures[key].append(embedding_only(embed_images, embedder))
        for name, inspector, images, maps in runs:
            run = in_process_scoring(inspector, images, maps)
            run["ratio_to_embed"] = run["images_per_s"] / figures[baseline[name]][-1]["images_per_s"]
            figures[name].append(run)
    report = {}
    for name, rows in figures.items():
        report[name] = {key: (float(np.median([row[key] for row in rows])) if key != "maps" else rows[0][key])
                        for key in rows[0]}
        report[name]["rounds"] = rows
    return report


def embedding_only(images: list[Path], embedder=None, **options) -> dict:
    """The backbone's speed: images already decoded and resized, through the network in batches (`embedder`,
    else a torch ResNet-18 with `options`)."""
    from simsearch.data.images import read_image
    from simsearch.embed.backbone import BackboneEmbedder

    embedder = embedder or BackboneEmbedder("resnet18", weights=WEIGHTS, **options)
    ready = [embedder.prepare(read_image(p)) for p in images]
    batches = [ready[i:i + embedder.batch_size] for i in range(0, len(ready), embedder.batch_size)]
    embedder.embed(batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        embedder.embed(batch)
    elapsed = time.perf_counter() - start
    return {"images": len(images), "seconds": elapsed, "images_per_s": len(images) / elapsed}


def stage_costs(inspector, images: list[Path], repeats: int = 3) -> dict:
    """CPU milliseconds per image of each scoring stage run alone (decoding, resizing, the network, the search
    for scores and nearest exemplars; the least of `repeats` runs each, as a neighbour only ever adds), and the
    ratio to embedding only
    that this machine's cores allow however well the stages overlap: min(1, cores x the network's wall time /
    all stages' CPU time). The scoring runs cannot beat it; the rest of the gap to it is the pipeline's own."""
    from simsearch.data.images import read_image
    from simsearch.score.results import score_embeddings

    embedder, index, count = inspector.embedder, inspector.index_, len(images)
    costs: dict = {}

    def timed(stage: str, work):
        runs = []
        for _ in range(repeats):
            cpu, wall = time.process_time(), time.perf_counter()
            result = work()
            runs.append(((time.process_time() - cpu) / count * 1e3, (time.perf_counter() - wall) / count * 1e3))
        costs[f"{stage}_cpu_ms"], costs[f"{stage}_wall_ms"] = min(runs)
        return result

    decoded = timed("decode", lambda: [read_image(path, gray_view=True) for path in images])
    ready = timed("resize", lambda: [embedder.prepare(pixels) for pixels in decoded])
    decoded.clear()  # free the decoded images before the network runs
    batches = [ready[i:i + embedder.batch_size] for i in range(0, count, embedder.batch_size)]
    embedder.embed(batches[0])  # warm-up
    embedded = timed("network", lambda: [embedder.embed(batch) for batch in batches])
    timed("search", lambda: [score_embeddings(index, embeddings, None, inspector.n_nearest, maps=False)
                             for embeddings in embedded])
    total = sum(value for key, value in costs.items() if key.endswith("_cpu_ms"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    costs["cores"] = cores
    costs["cpu_bound_ratio"] = min(1.0, cores * costs["network_wall_ms"] / total)
    return costs


def first_result(index: Path, image: Path, tries: int = 3) -> dict:
    """What a user waits for: `import simsearch`, and `simsearch score ONE_IMAGE` to its printed result, with
    the index's compiled embedder (the default on a CPU) and with torch (--no-compiled); the median of `tries`
    runs each, in turn."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import simsearch"], check=True, cwd=ROOT)
    report: dict = {"import_simsearch_s": time.perf_counter() - start}
    runs: dict[str, list[tuple[float, float]]] = {"first_result": [], "first_result_torch": []}
    for _ in range(tries):
        for name, extra in (("first_result", ()), ("first_result_torch", ("--no-compiled",))):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, _, out = run_cli("score", str(image), "--index", str(index), "--json", *extra)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            json.loads(out)
            # CPU seconds as well: on a busy machine the wall time measures the neighbours as much as simsearch
            runs[name].append((seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)))
    for name, rows in runs.items():
        report[f"{name}_s"] = float(np.median([wall for wall, _ in rows]))
        report[f"{name}_cpu_s"] = float(np.median([cpu for _, cpu in rows]))
    return report


def option_auroc(quick: bool) -> dict:
    """Each embedder option: embedding speed on bottle test images, and image AUROC on bottle (train/good ->
    test) and ELPV (the seeded split of benchmarks/peer_anomalib.py), which must not move at 3 decimals."""
    from peer_anomalib import bottle_set, elpv_set

    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.inspector import Inspector

    sets = [bottle_set(40 if quick else None)]
    if ELPV.is_dir():
        sets.append(elpv_set(40 if quick else 100, 30 if quick else 60))
    speed_images = sorted((BOTTLE / "test").rglob("*.png"))
    rows = {}
    for name, options in OPTIONS.items():
        row = {"embed_images_per_s": embedding_only(speed_images, **options)["images_per_s"]}
        for spec in sets:
            embedder = BackboneEmbedder("resnet18", weights=WEIGHTS, **options)
            inspector = Inspector(embedder, coreset_ratio=0.1).fit(spec["bank"])
            scores = [r.score for r in inspector.score(spec["test"])]
            row[f"{spec['name']}_auroc"] = round(image_auroc(spec["labels"], scores), 4)
        rows[name] = row
    reference = rows["float32"]
    for row in rows.values():
        row["same_auroc_3dp"] = all(round(row[key], 3) == round(reference[key], 3)
                                    for key in reference if key.endswith("_auroc"))
        row["speed_vs_float32"] = row["embed_images_per_s"] / reference["embed_images_per_s"]
    return rows


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
    parser.add_argument("--rounds", type=int, default=3, help="embedding-only and scoring runs in turn (median)")
    args = parser.parse_args()
    if not BOTTLE.is_dir() or not WEIGHTS.is_file():
        raise SystemExit(f"skipped: needs {BOTTLE} and {WEIGHTS} (../shared beside the repo)")
    report: dict = {"machine": f"{os.cpu_count()} CPU cores"}
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
        report["startup"] = first_result(index, test[0])
        # the line camera's case: uncompressed 8-bit BMPs decode in about a millisecond, where a 900x900 PNG
        # takes ~20 ms of a core (zlib), as much CPU as a third of the network's
        camera = make_gray_bmps(Path(tmp) / "gray-test", sources=test)
        # verdicts and boxes as on a line: a copy of the index calibrated on half of bottle's labelled test set
        calibrated = Path(tmp) / "calibrated"
        shutil.copytree(index, calibrated)
        run_cli("calibrate", str(BOTTLE), "--fold", "1/2", "--index", str(calibrated), "--json")
        from simsearch.inspector import Inspector

        plain, judged = Inspector.load(index), Inspector.load(calibrated)
        judged.embedder = plain.embedder  # one embedder: its own embedding-only baseline
        torch_index = Inspector.load(index, compiled=False)  # the same index, its embedder run by torch
        passes = [p for p, s in zip(camera, test) if s.parent.name == "good"] * 4  # a line of good parts
        rounds = scoring_rounds([("score_in_process", plain, test, "needed"),
                                 ("score_in_process_bmp", plain, camera, "needed"),
                                 ("score_in_process_all_maps", plain, test, "all"),
                                 ("score_calibrated_bmp", judged, camera, "needed"),
                                 ("score_calibrated_bmp_good", judged, passes, "needed"),
                                 ("score_in_process_torch", torch_index, test, "needed")],
                                {"embed": plain.embedder, "embed_torch": torch_index.embedder}, test, args.rounds)
        report.update(rounds)
        report["embedder"] = type(plain.embedder).__name__
        report["compiled_to_torch_embed_ratio"] = float(np.median(
            [a["images_per_s"] / b["images_per_s"] for a, b in zip(rounds["embed"]["rounds"],
                                                                     rounds["embed_torch"]["rounds"])]))
        report["rejected_of_bmp"] = sum(bool(r.is_anomaly) for r in judged.score(camera, maps="needed"))
        report["score_to_embed_ratio"] = rounds["score_in_process"]["ratio_to_embed"]
        report["score_bmp_to_embed_ratio"] = rounds["score_in_process_bmp"]["ratio_to_embed"]
        # what 2 cores allow: every stage's CPU against the network's alone, and how near the runs came
        for key, run, files in (("cpu_bound_png", "score_in_process", test),
                                ("cpu_bound_bmp", "score_in_process_bmp", camera)):
            report[key] = stage_costs(plain, files)
            report[key]["share_of_bound"] = report[run]["ratio_to_embed"] / report[key]["cpu_bound_ratio"]
        unthreaded = Inspector.load(index)
        unthreaded.workers = 0
        unthreaded.score(test[:4])  # warm-up, as in the rounds
        report["score_in_process_no_loader"] = in_process_scoring(unthreaded, test)
        report["coreset"] = coreset_comparison(images, args.quick)
    report["embedder_options"] = option_auroc(args.quick)
    report["search"] = search_latency([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    if args.json:
        print(json.dumps(report, indent=2))
        return
    build, score, coreset = report["build"], report["score"], report["coreset"]
    print(f"machine: {report['machine']}")
    print(f"build-index, {build['images']} gray 1024x768 BMPs: {build['seconds']:.1f} s wall "
          f"(process start and model load included), {build['patches']} patches kept, peak {build['peak_gb']:.2f} GB")
    print(f"score, {score['images']} MVTec bottle test PNGs (900x900): {score['images_per_s']:.1f} images/s "
          f"end to end ({score['seconds']:.1f} s wall incl. start-up), peak {score['peak_gb']:.2f} GB")
    inproc, plain, embed = report["score_in_process"], report["score_in_process_no_loader"], report["embed"]
    startup = report["startup"]
    print(f"start-up: import simsearch {startup['import_simsearch_s']:.2f} s; one image scored by the CLI in "
          f"{startup['first_result_s']:.2f} s wall ({startup['first_result_cpu_s']:.2f} s CPU) with the compiled "
          f"embedder, {startup['first_result_torch_s']:.2f} s ({startup['first_result_torch_cpu_s']:.2f} s CPU) "
          "with torch")
    print(f"embedding only (decoded, resized images through the network): {embed['images_per_s']:.1f} images/s "
          f"with the index's {report['embedder']}, {report['embed_torch']['images_per_s']:.1f} with torch "
          f"({report['compiled_to_torch_embed_ratio']:.2f}x; median of {len(embed['rounds'])} rounds, each followed "
          "by the scoring runs below)")
    print(f"score in one process (index and model loaded, no threshold: no verdicts, no maps): "
          f"{inproc['images_per_s']:.1f} images/s with {inproc['workers']:.0f} loader threads "
          f"({report['score_to_embed_ratio']:.2f} of embedding only), {plain['images_per_s']:.1f} images/s without")
    print(f"  every image's map too (as for overlays): {report['score_in_process_all_maps']['images_per_s']:.1f} "
          f"images/s ({report['score_in_process_all_maps']['ratio_to_embed']:.2f})")
    print(f"  the same images as 1024x768 gray BMPs: {report['score_in_process_bmp']['images_per_s']:.1f} images/s "
          f"({report['score_bmp_to_embed_ratio']:.2f})")
    for key, label in (("cpu_bound_png", "PNGs"), ("cpu_bound_bmp", "BMPs")):
        bound = report[key]
        print(f"  what {bound['cores']} cores allow for the {label}: decoding {bound['decode_cpu_ms']:.1f} + resizing "
              f"{bound['resize_cpu_ms']:.1f} + search {bound['search_cpu_ms']:.1f} ms CPU per image beside the "
              f"network's {bound['network_cpu_ms']:.1f}: at most {bound['cpu_bound_ratio']:.2f} of embedding only; "
              f"the runs reached {bound['share_of_bound']:.0%} of that")
    judged = report["score_calibrated_bmp"]
    print(f"  BMPs, calibrated index (verdicts; {report['rejected_of_bmp']} of {judged['images']:.0f} rejected, "
          f"each with its map and boxes): {judged['images_per_s']:.1f} images/s ({judged['ratio_to_embed']:.2f})")
    print(f"  BMPs of good parts only, calibrated (all pass): "
          f"{report['score_calibrated_bmp_good']['images_per_s']:.1f} "
          f"images/s ({report['score_calibrated_bmp_good']['ratio_to_embed']:.2f})")
    print(f"  PNGs with the embedder run by torch: {report['score_in_process_torch']['images_per_s']:.1f} images/s "
          f"({report['score_in_process_torch']['ratio_to_embed']:.2f} of torch's embedding only)")
    line = f"coreset 10% of {coreset['patches']} patches: pruned greedy {coreset['pruned_greedy_s']:.1f} s"
    if "plain_greedy_s" in coreset:
        line += (f", plain greedy {coreset['plain_greedy_s']:.1f} s: {coreset['speedup']:.1f}x faster, "
                 f"{coreset['same_selection']:.1%} identical picks")
    print(line)
    for name, row in report["embedder_options"].items():
        aurocs = ", ".join(f"{key[:-6]} AUROC {value:.3f}" for key, value in row.items() if key.endswith("_auroc"))
        print(f"embedder {name:<22} {row['embed_images_per_s']:6.1f} images/s ({row['speed_vs_float32']:.2f}x), "
              f"{aurocs}{'' if row['same_auroc_3dp'] else ' (AUROC moved)'}")
    for row in report["search"]:
        print(f"search over {row['vectors']:>9,} x 384-d vectors: {row['one_query_ms']:.2f} ms one query (k=3), "
              f"{row['patch_grid_query_ms']:.0f} ms for 784 patch queries (k=1; first one "
              f"{row['first_patch_grid_query_ms']:.0f} ms)")


if __name__ == "__main__":
    main()
