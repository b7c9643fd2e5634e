"""Defect-aware scores on ELPV: image AUROC of plain kNN (good exemplars only) against the same index with the
training folds' defects added as exemplars, in image and patch mode, 3 stratified folds (README figures).

    python benchmarks/defect_aware_elpv.py [--image-size 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data, weights = SHARED / "data" / "elpv_subset", SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
    if not data.is_dir() or not weights.is_file():
        print(f"skipped: {data} or {weights} is absent", file=sys.stderr)
        return 0
    from simsearch.data.datasets import discover_samples
    from simsearch.data.splits import select_fold
    from simsearch.embed import create_embedder
    from simsearch.embed.base import Embeddings, concat_embeddings, iter_embedded
    from simsearch.evaluate.metrics import image_auroc
    from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
    from simsearch.score.modes import anomaly_scores

    samples = discover_samples(data)
    embedder = create_embedder("backbone:resnet18", weights=weights, image_size=args.image_size)
    vectors = concat_embeddings([e for _, e in iter_embedded(embedder, [s.path for s in samples])])
    row = {str(s.path): i for i, s in enumerate(samples)}
    results = {}
    for mode in ("image", "patch"):
        plain, aware = [], []
        for fold in (1, 2, 3):
            train = [s for other in (1, 2, 3) if other != fold for s in select_fold(samples, other, 3)]
            test = select_fold(samples, fold, 3)
            good = [row[str(s.path)] for s in train if not s.is_defect]
            defects = [s for s in train if s.is_defect]
            index = ExemplarIndex(embedder.dim, embedder.config, embedder.fingerprint, mode=mode, coreset_ratio=0.1)
            index.add([NewExemplar(str(i)) for i in good], vectors.image[good], vectors.patches[good])
            rows = [row[str(s.path)] for s in test]
            queries = Embeddings(vectors.image[rows], vectors.patches[rows])
            labels = np.array([s.is_defect for s in test], int)
            plain.append(image_auroc(labels, anomaly_scores(index, queries)[0]))
            defect_rows = [row[str(s.path)] for s in defects]
            index.add([NewExemplar(str(s.path), "defect", s.defect_type) for s in defects],
                      vectors.image[defect_rows], vectors.patches[defect_rows])
            aware.append(image_auroc(labels, anomaly_scores(index, queries)[0]))
        results[mode] = {"good_only_auroc": round(float(np.mean(plain)), 4),
                         "defect_aware_auroc": round(float(np.mean(aware)), 4)}
        if args.json:
            print(json.dumps({"mode": mode, **results[mode]}))
        else:
            print(f"{mode:>5} mode: good exemplars only {results[mode]['good_only_auroc']:.3f}, "
                  f"with the training defects {results[mode]['defect_aware_auroc']:.3f} (3 folds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
