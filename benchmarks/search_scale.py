"""Search at scale: each index kind's query time, recall against exact search, build time, size and peak memory
for banks of 1e4, 1e5 and 1e6 vectors (1e7 with --large), as `simsearch` searches them (VectorStore with an
index kind applied, its depth tuned by the library).

The vectors are real patch features: ResNet-18 layer2+layer3 (the project's embedder and the shared ImageNet
weights) of MVTec AD bottle and ELPV good images, repeated with Gaussian noise (half the median
nearest-neighbour distance) to reach the size. The queries are patches of other images (out of sample), as a
new part's patches are: 100 single queries for `ms_per_query`, whole images (784 patches, one search an
image; the median of 4 images searched 3 times) for `patch_query_ms`. Recall is against exact search on the
same vectors, measured on true distances. Each (size, kind) runs in its own process, so `peak_rss_gb` is that
build's own peak.

    python benchmarks/search_scale.py [--json] [--large] [--sizes 10000,100000] [--kinds "Flat;auto;HNSW32"]

One JSON object a line with --json: n, dim, kind, ms_per_query, recall_at_1, recall_at_10, build_s, bytes,
distance_error (mean relative error of the returned nearest distance against the exact one: what a patch score
is made of; a miss and a compressed code's estimate both count), patch_query_ms, patch_first_query_ms,
peak_rss_gb (+ the library's own record: nprobe / ef_search and its recall on the index's own vectors).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"  # --shared for another place
CHUNK = 100_000
SEED = 0
DEFAULT_KINDS = "Flat;auto;HNSW32;IVF1024,PQ48"  # factory strings hold commas: ; between kinds
PATCH_REPEATS = 3
LARGE_KIND = "auto"  # at 1e7: IVF-PQ, built in chunks from a training sample


# -- real features --------------------------------------------------------------------------------------
def real_features(cache: Path, images: int, shared: Path) -> dict[str, np.ndarray]:
    """Patch vectors of `images` bottle and `images` ELPV good images (the bank's source), and of 4 other
    images (the queries), cached in `cache` (outside the repository)."""
    if cache.is_file():
        with np.load(cache) as stored:
            if int(stored["images"]) == images:
                return {key: stored[key] for key in stored.files}
    sys.path.insert(0, str(ROOT))
    from simsearch.embed import create_embedder
    from simsearch.embed.base import concat_embeddings, iter_embedded

    bottle_root, elpv_root = shared / "data" / "mvtec_bottle", shared / "data" / "elpv_subset"
    weights = shared / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
    for path in (bottle_root, elpv_root, weights):
        if not path.exists():
            raise SystemExit(f"{path} is missing: this benchmark needs the shared data and weights (--shared)")
    bottle = sorted((bottle_root / "train" / "good").glob("*.png"))
    elpv = sorted((elpv_root / "good").glob("*.png"))
    bank_files = bottle[:images] + elpv[:images]
    query_files = sorted((bottle_root / "test" / "good").glob("*.png"))[:2] + elpv[images:images + 2]
    embedder = create_embedder("backbone:resnet18", weights=weights, device="cpu")

    def patches(files: list[Path]) -> np.ndarray:
        parts = [embeddings for _, embeddings in iter_embedded(embedder, [str(f) for f in files])]
        grids = concat_embeddings(parts).patches
        return grids.reshape(len(files), -1, grids.shape[-1]).astype(np.float32)

    bank, queries = patches(bank_files), patches(query_files)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, bank=bank.reshape(-1, bank.shape[-1]), queries=queries, images=np.int64(images))
    return {"bank": bank.reshape(-1, bank.shape[-1]), "queries": queries, "images": np.int64(images)}


def noise_scale(bank: np.ndarray) -> float:
    """Per-dimension noise: half the median nearest-neighbour distance among the real vectors, spread over
    the dimensions, so that a synthetic vector stays near the real patch it came from."""
    import faiss

    rows = np.random.default_rng(SEED).choice(len(bank), min(2000, len(bank)), replace=False)
    distances, _ = faiss.knn(bank[rows], bank, 2)
    return float(0.5 * np.median(np.sqrt(np.maximum(distances[:, 1], 0))) / np.sqrt(bank.shape[1]))


def chunk(bank: np.ndarray, sigma: float, number: int, size: int) -> np.ndarray:
    """Synthetic chunk `number` (reproducible: the same chunk for the same number)."""
    rng = np.random.default_rng([SEED, number])
    rows = rng.integers(0, len(bank), size)
    return bank[rows] + sigma * rng.standard_normal((size, bank.shape[1]), dtype=np.float32)


def chunks(bank: np.ndarray, sigma: float, n: int):
    for number, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        yield chunk(bank, sigma, number, size), np.arange(start, start + size, dtype=np.int64)


# -- one measurement (in a child process) -----------------------------------------------------------------
def measure(features: dict[str, np.ndarray], n: int, kind: str, queries: int) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    import faiss

    from simsearch.index import kinds
    from simsearch.index.vectors import VectorStore

    bank, held_out = features["bank"], features["queries"]
    dim = bank.shape[1]
    sigma = noise_scale(bank)
    all_queries = held_out.reshape(-1, dim)
    singles = all_queries[np.random.default_rng(SEED + 1).choice(len(all_queries), queries, replace=False)]
    image_patches = held_out  # (images, 784, dim): every held-out image's patches, one search an image
    streamed = n > 2_000_000  # too big to hold as float32 beside the index: built in chunks, as the library can
    start = time.perf_counter()
    if not streamed:
        vectors = np.concatenate([c for c, _ in chunks(bank, sigma, n)])
        store = VectorStore(dim)
        store.add(vectors, np.arange(n, dtype=np.int64))
        store.apply_kind(kind, kinds.RECALL_TARGET)
        record = store.record
    else:
        spec = kinds.auto_kind(n, dim) if kind == "auto" else kind
        sample = max(1, kinds.training_minimum(spec, dim) // CHUNK + 1)
        # handed over, not held here: build frees the training sample before it fills the index
        index = kinds.build(spec, dim, np.concatenate([chunk(bank, sigma, 10_000 + i, CHUNK) for i in range(sample)]),
                            chunks(bank, sigma, n))
        record = kinds.KindRecord(kind, spec, n, nprobe=16)
        store = VectorStore(dim, index, record)
    build_s = time.perf_counter() - start
    if not streamed:
        exact, _ = faiss.knn(singles, vectors, 10)
    else:
        exact, _ = kinds.exact_neighbours(singles, chunks(bank, sigma, n), 10)
    with tempfile.TemporaryDirectory() as folder:
        faiss.write_index(store.index, str(Path(folder) / "index.faiss"))
        size = (Path(folder) / "index.faiss").stat().st_size
    common = {"n": n, "dim": dim, "kind": record.kind, "requested": kind, "build_s": round(build_s, 2),
              "bytes": size, "own_recall_at_1": record.recall_at_1, "queries": len(singles),
              "patch_queries": image_patches.shape[1]}
    rows = [{**common, "depth": "library", **search_figures(store, singles, image_patches, exact,
                                                             None if streamed else vectors, bank, sigma, n)}]
    # the depth/recall/time trade-off around the library's choice
    ivf, hnsw = kinds.ivf_of(store.index), kinds.hnsw_of(store.index)
    for depth in (1, 4, 16, 64, 256) if ivf is not None else (16, 64, 256) if hnsw is not None else ():
        if ivf is not None and depth <= ivf.nlist and depth != ivf.nprobe:
            tuned, ivf.nprobe = ivf.nprobe, depth
        elif hnsw is not None and depth != hnsw.hnsw.efSearch:
            tuned, hnsw.hnsw.efSearch = hnsw.hnsw.efSearch, depth
        else:
            continue
        rows.append({**common, "depth": "sweep", **search_figures(store, singles, image_patches, exact,
                                                                  None if streamed else vectors, bank, sigma, n)})
        if ivf is not None:
            ivf.nprobe = tuned
        else:
            hnsw.hnsw.efSearch = tuned
    return rows


def search_figures(store, singles: np.ndarray, image_patches: np.ndarray, exact: np.ndarray,
                   vectors: np.ndarray | None, bank: np.ndarray, sigma: float, n: int) -> dict:
    """Query time, 784-patch time and recall of a store at its current search depth."""
    from simsearch.index import kinds

    ivf, hnsw = kinds.ivf_of(store.index), kinds.hnsw_of(store.index)
    start = time.perf_counter()
    for row in range(len(singles)):
        store.search(singles[row:row + 1], 1)
    ms_per_query = (time.perf_counter() - start) * 1000 / len(singles)
    start = time.perf_counter()
    store.search(image_patches[0], 1)
    first_ms = (time.perf_counter() - start) * 1000
    times = []  # the median of every held-out image, 3 times over: one search is too noisy to quote
    for _ in range(PATCH_REPEATS):
        for patches in image_patches:
            start = time.perf_counter()
            store.search(patches, 1)
            times.append((time.perf_counter() - start) * 1000)
    patch_ms = float(np.median(times))

    returned, found = store.search(singles, 10)
    distance_error = np.abs(returned[:, 0] / np.sqrt(np.maximum(exact[:, 0], 1e-12)) - 1)  # exact is squared
    if vectors is not None:
        true = np.sort(kinds.true_distances(singles, found, vectors, np.arange(n, dtype=np.int64)), axis=1)
    else:  # one pass over the regenerated chunks for the found ones' true distances
        true = np.full(found.shape, np.inf, np.float32)
        for part, ids in chunks(bank, sigma, n):
            inside = (found >= ids[0]) & (found <= ids[-1])
            rows, cols = np.nonzero(inside)
            true[rows, cols] = ((part[found[rows, cols] - ids[0]] - singles[rows]) ** 2).sum(axis=1)
        true = np.sort(true, axis=1)
    return {"ms_per_query": round(ms_per_query, 3), "recall_at_1": round(kinds.recall(exact, true, 1), 4),
            "recall_at_10": round(kinds.recall(exact, true, 10), 4),
            "distance_error": round(float(distance_error.mean()), 5),
            "patch_query_ms": round(patch_ms, 1),
            "patch_first_query_ms": round(first_ms, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 3),
            "nprobe": int(ivf.nprobe) if ivf is not None else None,
            "ef_search": int(hnsw.hnsw.efSearch) if hnsw is not None else None}


# -- driver ---------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--large", action="store_true", help="also 1e7 vectors (IVF-PQ, built in chunks)")
    parser.add_argument("--large-kind", default=LARGE_KIND,
                        help="the kind of the 1e7 build (auto: IVF16384_HNSW32,PQ48; "
                             "IVF4096,PQ48 trains and fills in minutes, with the same memory)")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated bank sizes")
    parser.add_argument("--kinds", default=DEFAULT_KINDS,
                        help="semicolon-separated kinds (auto, Flat, HNSW32, IVF4096,Flat, ...)")
    parser.add_argument("--images", type=int, default=24, help="real images of each data set behind the bank")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "simsearch_search_scale.npz",
                        help="where the real features are cached (not in the repository)")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data and weights folder")
    parser.add_argument("--child", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    features = real_features(args.cache, args.images, args.shared)
    if args.child:
        for row in measure(features, int(args.child[0]), args.child[1], args.queries):
            print(json.dumps(row), flush=True)
        return
    kinds_list = [k.strip() for k in args.kinds.split(";") if k.strip()]
    runs = [(int(float(n)), kind) for n in args.sizes.split(",") if n.strip() for kind in kinds_list]
    if args.large:
        runs.append((10_000_000, args.large_kind))
    if not args.json:  # 80 columns; * marks the library's own depth; 784q: ms
        print(f"{'n':>8} {'kind':<11} {'depth':<6} {'ms/q':>6} {'rec@1':>5} {'rec@10':>6} {'d.err':>6} "
              f"{'build':>6} {'MB':>5} {'784q':>6} {'GB':>4}")
    for n, kind in runs:
        if kind != "auto" and _too_small(kind, n):
            continue
        done = subprocess.run([sys.executable, __file__, "--child", str(n), kind, "--cache", str(args.cache),
                               "--images", str(args.images), "--queries", str(args.queries),
                               "--shared", str(args.shared)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            message = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(json.dumps({"n": n, "kind": kind, "error": message}) if args.json
                  else f"{n:>9} {kind:<16} failed: {message}", flush=True)
            continue
        for line in done.stdout.strip().splitlines():
            row = json.loads(line)
            if args.json:
                print(json.dumps(row), flush=True)
                continue
            depth = f"p{row['nprobe']}" if row["nprobe"] else f"ef{row['ef_search']}" if row["ef_search"] else ""
            print(f"{row['n']:>8} {row['kind'][:11]:<11} {depth + ('*' if row['depth'] == 'library' else ''):<6} "
                  f"{row['ms_per_query']:>6.2f} {row['recall_at_1']:>5.2f} {row['recall_at_10']:>6.3f} "
                  f"{row['distance_error']:>6.4f} {row['build_s']:>6.0f} {row['bytes'] / 1e6:>5.0f} "
                  f"{row['patch_query_ms']:>6.0f} {row['peak_rss_gb']:>4.1f}", flush=True)


def _too_small(kind: str, n: int) -> bool:
    """A kind that needs more training vectors than the bank has (it would stay exact): not a row of its own."""
    sys.path.insert(0, str(ROOT))
    from simsearch.index import kinds

    return kinds.resolve(kinds.check_kind(kind, 384), n, 384)[0] != kind


if __name__ == "__main__":
    main()
