"""How the labelled defects weigh in the image score: good-patch kNN alone, the patch mode's clipped image
factor, and the contrast mode's d_good / d_defect (k nearest image exemplars on each side), on the same
stratified folds of a labelled set. The good patch bank is a seeded random fraction of the fold's good
patches (the coreset is the product's; a random bank keeps this benchmark minutes long at 224 px).

    python benchmarks/defect_contrast.py [--data ../shared/data/elpv_subset] [--image-size 224]
        [--bank-fraction 0.1] [--folds 3] [--json]
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
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--bank-fraction", type=float, default=0.1)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(args.data).exists() or not Path(args.weights).exists():
        raise SystemExit(f"skipped: {args.data} or {args.weights} is absent")

    from simsearch.data.datasets import training_samples
    from simsearch.data.images import read_image
    from simsearch.data.splits import kfold_splits
    from simsearch.embed import create_embedder
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.index.vectors import VectorStore
    from simsearch.score.modes import defect_factor

    samples = training_samples(args.data)
    embedder = create_embedder("backbone:resnet18", weights=args.weights, image_size=args.image_size)
    start = time.perf_counter()
    parts = [embedder.embed([read_image(s.path) for s in samples[at:at + 32]]) for at in range(0, len(samples), 32)]
    embed_seconds = time.perf_counter() - start
    image = np.concatenate([p.image for p in parts])
    patches = np.concatenate([p.patches for p in parts])
    dim = image.shape[1]
    row = {str(s.path): i for i, s in enumerate(samples)}
    defect = np.array([s.is_defect for s in samples])
    rng = np.random.default_rng(args.seed)

    def store(vectors: np.ndarray) -> VectorStore:
        built = VectorStore(dim)
        built.add(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(len(vectors)))
        return built

    results: dict[str, list[float]] = {}
    for split in kfold_splits(samples, args.folds, args.seed):
        train = np.array([row[str(s.path)] for s in split.train])
        test = np.array([row[str(s.path)] for s in split.test])
        good, known = train[~defect[train]], train[defect[train]]
        bank = patches[good].reshape(-1, dim)
        bank = bank[rng.choice(len(bank), max(1, int(len(bank) * args.bank_fraction)), replace=False)]
        distances, _ = store(bank).search(patches[test].reshape(-1, dim), 1)
        good_only = distances[:, 0].reshape(len(test), -1).max(axis=1)
        goods, defects = store(image[good]), store(image[known])
        figures = {"good_only": good_only}
        nearest_good, _ = goods.search(image[test], 1)
        nearest_defect, _ = defects.search(image[test], 1)
        factor = defect_factor(nearest_good[:, 0], nearest_defect[:, 0])
        figures["patch_mode_factor"] = good_only * factor
        ratios = {}
        for k in (1, 3, 5):
            d_good = goods.search(image[test], k)[0].mean(axis=1)
            d_defect = defects.search(image[test], k)[0].mean(axis=1)
            ratios[k] = d_good / np.maximum(d_defect, 1e-12)
            figures[f"contrast_k{k}"] = good_only * ratios[k]
        # the contrast mode as scored: the k=3 ratio mixed with the patch mode's factor by the defects' coherence
        to_defect = defects.search(image[known], 2)[0][:, 1]
        weight = float(np.mean(to_defect < goods.search(image[known], 1)[0][:, 0])) if len(known) > 1 else 0.0
        figures["contrast_mode"] = good_only * (weight * ratios[3] + (1 - weight) * factor)
        results.setdefault("coherence", []).append(weight)
        for name, scores in figures.items():
            results.setdefault(name, []).append(image_auroc(defect[test].astype(int), scores))

    summary = {"data": Path(args.data).name, "image_size": args.image_size, "bank_fraction": args.bank_fraction,
               "folds": args.folds, "embed_seconds": round(embed_seconds, 1),
               **{name: round(float(np.mean(v)), 4) for name, v in results.items()},
               "per_fold": {name: [round(float(x), 4) for x in v] for name, v in results.items()}}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{summary['data']}, {args.image_size} px, {args.folds} folds, random {args.bank_fraction:.0%} good bank")
    for name, values in results.items():
        if name == "coherence":
            print(f"  defect coherence (the contrast mode's weight): {', '.join(f'{v:.2f}' for v in values)}")
            continue
        print(f"  {name:18s} image AUROC {np.mean(values):.4f}  (folds {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
