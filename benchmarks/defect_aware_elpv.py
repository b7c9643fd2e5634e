"""Labelled defects on ELPV, 3 stratified folds (train = the other two folds, test = the fold), each method
trained on the training part only: image AUROC, F1 at the method's own threshold, training seconds per fold.

  knn-patch      frozen backbone, good exemplars only; threshold on held-out goods + training defects (compare's)
  defect-aware   frozen backbone, training defects as defect exemplars (image + patch level); threshold on a
                 validation part of the training part (triplet-patch with 0 epochs)
  triplet-patch  patch-level triplet head trained per fold (early stopping on the validation part) + defect-aware

    python benchmarks/defect_aware_elpv.py [--image-size 224] [--epochs 10] [--folds 1,2,3] [--shared DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
METHODS = ("knn-patch", "defect-aware", "triplet-patch")


def build(name: str, args: argparse.Namespace, weights: Path):
    from simsearch.baselines.compare import KnnMethod
    from simsearch.baselines.learned import TripletPatchScorer
    from simsearch.embed import create_embedder

    if name == "knn-patch":
        embedder = create_embedder("backbone:resnet18", weights=weights, image_size=args.image_size)
        return KnnMethod(embedder, "patch", 1, args.coreset_ratio, seed=0)
    epochs = 0 if name == "defect-aware" else args.epochs
    return TripletPatchScorer(weights=weights, image_size=args.image_size, epochs=epochs, seed=0,
                              coreset_ratio=args.coreset_ratio)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--folds", default="1,2,3", help="which of the 3 folds to test on")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared folder (data/, weights/)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = args.shared / "data" / "elpv_subset"
    weights = args.shared / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
    if not data.is_dir() or not weights.is_file():
        print(f"skipped: {data} or {weights} is absent", file=sys.stderr)
        return 0
    from simsearch.baselines.compare import fold_metrics
    from simsearch.data.datasets import discover_samples
    from simsearch.data.splits import select_fold

    samples = discover_samples(data)
    figures: dict[str, list[dict]] = {}
    for fold in (int(f) for f in args.folds.split(",")):
        train = [s for other in (1, 2, 3) if other != fold for s in select_fold(samples, other, 3)]
        test = select_fold(samples, fold, 3)
        for name in args.methods.split(","):
            method = build(name, args, weights)
            start = time.perf_counter()
            method.fit(train)
            seconds = time.perf_counter() - start
            results = list(method.iter_score([s.path for s in test]))
            by_path = {str(s.path): s for s in test}
            metrics = fold_metrics([by_path[r.path] for r in results], [r.score for r in results],
                                   [bool(r.is_anomaly) for r in results])
            row = {"method": name, "fold": fold, "image_auroc": round(metrics["image_auroc"], 4),
                   "f1": round(metrics["f1"], 4), "train_seconds": round(seconds, 1)}
            figures.setdefault(name, []).append(row)
            print(json.dumps(row) if args.json else
                  f"fold {fold} {name:>13}: AUROC {row['image_auroc']:.3f}  F1 {row['f1']:.3f}  "
                  f"train {row['train_seconds']:.0f} s", flush=True)
    for name, rows in figures.items():
        summary = {"method": name, "folds": len(rows),
                   "image_auroc": round(float(np.mean([r["image_auroc"] for r in rows])), 4),
                   "f1": round(float(np.mean([r["f1"] for r in rows])), 4),
                   "train_seconds": round(float(np.mean([r["train_seconds"] for r in rows])), 1),
                   "image_size": args.image_size}
        print(json.dumps({"summary": summary}) if args.json else
              f"mean {name:>13}: AUROC {summary['image_auroc']:.3f}  F1 {summary['f1']:.3f}  "
              f"train {summary['train_seconds']:.0f} s per fold ({len(rows)} folds, {args.image_size} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
