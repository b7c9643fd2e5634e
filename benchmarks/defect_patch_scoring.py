"""Where the labelled defects' patches belong in the product's patch mode: an Inspector (greedy coreset bank)
fitted on one fold's training part of a labelled set, its test part scored three ways: with the per-patch
defect raise in the image score, with the image-vector factor only (PatchMode's default), and good only.

    python benchmarks/defect_patch_scoring.py [--data ../shared/data/elpv_subset] [--fold 1] [--folds 3]
        [--image-size 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "data" / "elpv_subset"))
    parser.add_argument("--weights", default=str(SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"))
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(args.data).exists() or not Path(args.weights).exists():
        raise SystemExit(f"skipped: {args.data} or {args.weights} is absent")

    from simsearch.data.datasets import training_samples
    from simsearch.data.images import read_image
    from simsearch.data.splits import kfold_splits
    from simsearch.embed import create_embedder
    from simsearch.embed.base import Embeddings
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.inspector import Inspector
    from simsearch.score.modes import defect_aware, defect_factor

    split = kfold_splits(training_samples(args.data), args.folds, args.seed)[args.fold - 1]
    embedder = create_embedder("backbone:resnet18", weights=args.weights, image_size=args.image_size)
    start = time.perf_counter()
    inspector = Inspector(embedder, mode="patch").fit(list(split.train))
    fit_seconds = time.perf_counter() - start
    index, test = inspector.index_, list(split.test)
    labels = np.array([int(s.is_defect) for s in test])
    parts = [embedder.embed([read_image(s.path) for s in test[at:at + 32]]) for at in range(0, len(test), 32)]
    embeddings = Embeddings(np.concatenate([p.image for p in parts]), np.concatenate([p.patches for p in parts]))
    good_maps, _ = index.nearest_patches(embeddings.patches, index.k)
    good_scores = good_maps.reshape(len(test), -1).max(axis=1)
    raised = defect_aware(good_maps, index.nearest_defect_patches(embeddings.patches)[0])
    good = index.nearest_good(embeddings.image, 1)[0][:, 0]
    factor = defect_factor(good, index.nearest_defect(embeddings.image, 1)[0][:, 0])
    figures = {"fold": args.fold, "image_size": args.image_size, **index.counts(), "fit_seconds": round(fit_seconds, 1),
               "per_patch_raise_and_image_factor": image_auroc(labels,
                                                               raised.reshape(len(test), -1).max(axis=1) * factor),
               "image_factor_only": image_auroc(labels, good_scores * factor),
               "good_only": image_auroc(labels, good_scores)}
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:36} {value:.4f}" if isinstance(value, float) else f"{key:36} {value}")


if __name__ == "__main__":
    main()
