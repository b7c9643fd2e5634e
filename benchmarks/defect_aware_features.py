"""The scoring variants on ELPV from cached backbone features: fast enough for a shared 2-core CPU, where
`defect_aware_elpv.py` (the full methods, re-embedding every image per method and fold) runs for hours.

The backbone's image and patch vectors of all 1050 images are computed once (cached under artifacts/). Per fold
(3 stratified folds; train = the other two): the good bank is a random 10 % of the training goods' patches (not
the product's greedy coreset, whose selection alone takes too long here); the defect patch bank holds each
training defect's 5 % of patches least like that bank (the index's rule). Image AUROC of:

  plain        good patches only (knn-patch)
  patch_aware  + per-patch defect_aware against the defect patch bank
  image_factor + the image-level factor only (the previous default)
  both         patch level and image factor (the per-patch raise is no longer in the default score)
  contrast     the contrast mode: good-patch maximum x sqrt(image ratio x region ratio), each ratio
               d_good / d_defect over the CONTRAST_K nearest exemplars (no coherence mixing); a training
               good's region is found against the bank of the other half of the goods (its own left out)

With --epochs N > 0 the same on the vectors of a patch-level triplet head trained on the fold's training
part (`mine_patches` + `HeadTask`, early stopping on a 20 % validation part): the head alone ("learned") and
the product's default joined head ("joined": `ProjectionHead.joined`, the frozen and learned patch vectors
side by side, each in units of its typical good-to-good gap).

    python benchmarks/defect_aware_features.py [--image-size 128] [--epochs 0] [--folds 1,2,3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CACHE = Path(__file__).resolve().parents[1] / "artifacts" / "bench_features"


def nearest(bank: np.ndarray, queries: np.ndarray, k: int = 1) -> np.ndarray:
    """Each query's mean Euclidean distance to its k nearest bank vectors (exact)."""
    import faiss

    squared, _ = faiss.knn(np.ascontiguousarray(queries, np.float32), np.ascontiguousarray(bank, np.float32), k)
    return np.sqrt(np.maximum(squared, 0)).mean(axis=1)


def contrast_ratio(vectors: np.ndarray, good, defects, test) -> np.ndarray:
    """d_good / d_defect of the test rows' vectors over the CONTRAST_K nearest good and defect rows."""
    from simsearch.score.modes import CONTRAST_K

    return nearest(vectors[good], vectors[test], CONTRAST_K) / nearest(vectors[defects], vectors[test], CONTRAST_K)


def variants(patches, images, good, defects, test, labels) -> dict[str, float]:
    """Image AUROC of the scorings for one fold."""
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.score.banks import DEFECT_PATCH_FRACTION, region_descriptors
    from simsearch.score.modes import defect_aware, defect_factor

    count, height, width, dim = patches.shape
    per_image = height * width
    rng = np.random.default_rng(0)
    good_patches = patches[good].reshape(-1, dim)
    bank = good_patches[rng.choice(len(good_patches), len(good_patches) // 10, replace=False)].astype(np.float32)
    query = nearest(bank, patches[test].reshape(-1, dim)).reshape(len(test), per_image)
    defect_grids = patches[defects].reshape(len(defects), per_image, dim).astype(np.float32)
    unlike = nearest(bank, defect_grids.reshape(-1, dim)).reshape(len(defects), per_image)
    top = np.argsort(-unlike, axis=1)[:, :max(1, int(round(per_image * DEFECT_PATCH_FRACTION)))]
    defect_bank = np.concatenate([defect_grids[i, top[i]] for i in range(len(defects))])
    to_defect = nearest(defect_bank, patches[test].reshape(-1, dim)).reshape(len(test), per_image)
    good_image, defect_image = nearest(images[good], images[test]), nearest(images[defects], images[test])
    factor = defect_factor(good_image, defect_image)
    plain, aware = query.max(1), defect_aware(query, to_defect).max(1)
    # regions: each row's distances to the good bank; a training good's to the other half's patches only
    distances = np.zeros((count, per_image), np.float32)
    halves = (good[0::2], good[1::2])
    for half, other in zip(halves, halves[::-1]):
        other_patches = patches[other].reshape(-1, dim)
        other_bank = other_patches[rng.choice(len(other_patches), len(other_patches) // 10, replace=False)]
        distances[half] = nearest(other_bank, patches[half].reshape(-1, dim)).reshape(len(half), per_image)
    distances[defects] = unlike
    distances[test] = query
    regions = region_descriptors(patches, distances.reshape(count, height, width))
    ratio = np.sqrt(contrast_ratio(images, good, defects, test) * contrast_ratio(regions, good, defects, test))
    return {"plain": image_auroc(labels, plain), "patch_aware": image_auroc(labels, aware),
            "image_factor": image_auroc(labels, plain * factor), "both": image_auroc(labels, aware * factor),
            "contrast": image_auroc(labels, plain * ratio)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--folds", default="1,2,3")
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared folder (data/, weights/)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = args.shared / "data" / "elpv_subset"
    weights = args.shared / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
    if not data.is_dir() or not weights.is_file():
        print(f"skipped: {data} or {weights} is absent", file=sys.stderr)
        return 0
    import torch

    from simsearch.data.datasets import class_ids, discover_samples
    from simsearch.data.splits import select_fold, validation_split
    from simsearch.embed import create_embedder
    from simsearch.embed.base import concat_embeddings, iter_embedded
    from simsearch.embed.triplet_head import HeadConfig
    from simsearch.train.loop import TrainSettings, run_training
    from simsearch.train.tasks.triplet_head import HeadTask, join_sample, mine_patches

    samples = discover_samples(data)
    cache = CACHE / f"elpv{args.image_size}.npz"
    if not cache.is_file():
        embedder = create_embedder("backbone:resnet18", weights=weights, image_size=args.image_size)
        vectors = concat_embeddings([e for _, e in iter_embedded(embedder, [s.path for s in samples])])
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, image=vectors.image, patches=vectors.patches.astype(np.float16),
                 paths=np.array([str(s.path) for s in samples]))
    stored = np.load(cache)
    if list(stored["paths"]) != [str(s.path) for s in samples]:
        raise SystemExit(f"{cache} was made from other images: delete it")
    patches, images = stored["patches"], stored["image"]
    labels_all = np.array([int(s.is_defect) for s in samples])
    row = {str(s.path): i for i, s in enumerate(samples)}
    figures: dict[str, list[float]] = {}
    for fold in (int(f) for f in args.folds.split(",")):
        train = [s for other in (1, 2, 3) if other != fold for s in select_fold(samples, other, 3)]
        test = np.array([row[str(s.path)] for s in select_fold(samples, fold, 3)])
        good = np.array([row[str(s.path)] for s in train if not s.is_defect])
        defects = np.array([row[str(s.path)] for s in train if s.is_defect])
        result = {f"frozen_{k}": v for k, v in
                  variants(patches, images, good, defects, test, labels_all[test]).items()}
        if args.epochs > 0:
            start = time.perf_counter()
            part, val = validation_split(train, 0.2, 0)

            def grids(chosen: list) -> torch.Tensor:
                return torch.from_numpy(patches[[row[str(s.path)] for s in chosen]].astype(np.float32))

            train_vectors, train_labels, bank = mine_patches(part, grids(part), class_ids(part)[0], 0)
            val_vectors, val_labels, _ = mine_patches(val, grids(val), class_ids(val)[0], 0, bank)
            settings = TrainSettings(epochs=args.epochs, seed=0, device="cpu", patience=3, batch_size=128)
            task = HeadTask(HeadConfig(in_dim=patches.shape[-1], level="patch", joined=True), settings,
                            train_vectors, train_labels, val_vectors, val_labels,
                            join_sample=join_sample(train_vectors, train_labels, 0))
            trained = run_training(task, settings)
            result["train_seconds"] = time.perf_counter() - start
            result["best_epoch"] = trained.best_epoch
            with torch.no_grad():
                chunks = [torch.from_numpy(patches[i:i + 50].astype(np.float32)) for i in range(0, len(patches), 50)]
                learned = np.concatenate([task.model(chunk).numpy() for chunk in chunks])
                joined = np.concatenate([task.model.joined(chunk).numpy() for chunk in chunks])
            pooled = learned.mean(axis=(1, 2))
            pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
            result.update({f"learned_{k}": v for k, v in
                           variants(learned, pooled, good, defects, test, labels_all[test]).items()})
            result.update({f"joined_{k}": v for k, v in
                           variants(joined, joined.mean(axis=(1, 2)), good, defects, test, labels_all[test]).items()})
        for key, value in result.items():
            figures.setdefault(key, []).append(value)
        shown = {k: round(float(v), 4) for k, v in result.items() if v is not None}
        print(json.dumps({"fold": fold, **shown}) if args.json else f"fold {fold}: {shown}", flush=True)
    mean = {k: round(float(np.mean(v)), 4) for k, v in figures.items() if None not in v}
    mean["image_size"] = args.image_size
    print(json.dumps({"mean": mean}) if args.json else f"mean: {mean}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
