"""Do pseudo defects help the open-set mode's discriminant? (issue 26: DRA's and CutPaste's idea, measured)

Per set and stratified fold: pseudo defects are made from the fold's TRAINING goods only (seeded: a patch of
the part cut and pasted elsewhere, a thin scar, a noise blob; one per good), embedded, and added to the
defect side of the open-set discriminant (`simsearch.score.open_set.fit_direction`) beside 1, 3, 10 or all
real labelled defects per type. Printed per set and count: test image AUROC of the good-only patch residual,
of the discriminant alone (real, real+pseudo), and of log(residual) + v * z at the mode's weights, each term
brought to the residual's spread on the training goods as the mode does. With no real defect the mode must
score as the residual (bit for bit), so pseudo defects alone are shown but cannot be chosen by the mode.

    python benchmarks/pseudo_defects.py [--sets bottle,elpv,mpdd] [--limit 120] [--image-size 160]
        [--folds 3] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = {"bottle": SHARED / "data" / "mvtec_bottle", "elpv": SHARED / "data" / "elpv_subset",
        "mpdd": SHARED / "data" / "mpdd_metal_plate"}
WEIGHTS_FILE = SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
COUNTS = (1, 3, 10, None)


def pseudo_defect(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of an RGB uint8 image with one synthetic flaw: cut-and-paste, scar or noise blob."""
    out = image.copy()
    height, width = out.shape[:2]
    kind = int(rng.integers(3))
    if kind == 0:  # a patch of the part, flipped and re-lit, pasted elsewhere (CutPaste)
        ph, pw = int(height * rng.uniform(0.05, 0.2)) + 1, int(width * rng.uniform(0.05, 0.2)) + 1
        y0, y1 = rng.integers(0, height - ph, 2)
        x0, x1 = rng.integers(0, width - pw, 2)
        patch = out[y0:y0 + ph, x0:x0 + pw][::-1].astype(np.float32) * rng.uniform(0.7, 1.3)
        out[y1:y1 + ph, x1:x1 + pw] = np.clip(patch, 0, 255).astype(np.uint8)
    elif kind == 1:  # a thin scar of a random colour
        canvas = Image.fromarray(out)
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        angle, length = rng.uniform(0, np.pi), rng.uniform(0.1, 0.4) * max(height, width)
        ImageDraw.Draw(canvas).line([(x, y), (x + length * np.cos(angle), y + length * np.sin(angle))],
                                    fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                                    width=max(1, int(max(height, width) * rng.uniform(0.004, 0.012))))
        out = np.asarray(canvas).copy()
    else:  # a blob of noise
        radius = max(2, int(max(height, width) * rng.uniform(0.03, 0.1)))
        cy, cx = rng.integers(radius, height - radius), rng.integers(radius, width - radius)
        yy, xx = np.ogrid[:height, :width]
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        out[inside] = np.clip(out[inside] + rng.normal(0, 60, out[inside].shape), 0, 255).astype(np.uint8)
    return out


def pseudo_defects(good_paths: Sequence[str | Path], seed: int) -> tuple[list[str], list[np.ndarray]]:
    """One pseudo defect per good image, seeded by (seed, position): (the source files, the images). Only the
    files given are read: callers pass a training part's goods, never a test image."""
    from simsearch.data.images import read_image

    rng = np.random.default_rng(seed)
    sources, images = [], []
    for path in good_paths:
        sources.append(str(path))
        images.append(pseudo_defect(np.asarray(read_image(path)), rng))
    return sources, images


def _embed(embedder, images) -> "object":
    from simsearch.embed.base import concat_embeddings, iter_embedded

    return concat_embeddings([e for _, e in iter_embedded(embedder, images)])


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    from simsearch.score.open_set import auroc

    return round(auroc(labels, scores), 4)


def run_set(name: str, folder: Path, args: argparse.Namespace) -> list[dict]:
    from simsearch.data.datasets import training_samples
    from simsearch.data.splits import draw_defects, kfold_splits, subsample
    from simsearch.embed.backbone import BackboneEmbedder
    from simsearch.inspector import Inspector
    from simsearch.score.modes import PatchMode
    from simsearch.score.open_set import WEIGHTS, fit_direction

    samples = training_samples(folder)
    if args.limit:
        samples = subsample(samples, args.limit, args.seed)
    weights = WEIGHTS_FILE if WEIGHTS_FILE.is_file() else None
    embedder = BackboneEmbedder("resnet18", image_size=args.image_size, weights=weights, pretrained=True)
    results: dict[tuple, list[float]] = {}
    for split in kfold_splits(samples, args.folds, args.seed):
        goods = [s for s in split.train if not s.is_defect]
        test_paths = {str(s.path) for s in split.test}
        inspector = Inspector(embedder, mode="open-set").fit([s.path for s in goods])
        index = inspector.index_
        test = _embed(embedder, [s.path for s in split.test])
        labels = np.array([s.is_defect for s in split.test])
        log_residual = np.log(np.maximum(PatchMode.patch_scores(index, test, maps=False)[0], 1e-12))
        spread = float(np.std(np.log(np.maximum(index.vectors["good_residuals"].contents()[0][:, 0], 1e-12))))
        sources, images = pseudo_defects([s.path for s in goods], args.seed * 1000 + split.fold)
        assert not set(sources) & test_paths, "a pseudo defect was made from a test image"
        pseudo = _embed(embedder, images).image
        good_vectors = _embed(embedder, [s.path for s in goods]).image
        results.setdefault((0, "residual"), []).append(_auroc(labels, log_residual))
        for count in COUNTS:
            defects = [s for s in draw_defects(split.train, count, args.seed) if s.is_defect]
            real = _embed(embedder, [s.path for s in defects]).image
            for variant, defect_side in (("real", real), ("real+pseudo", np.vstack([real, pseudo]))):
                direction, origin = fit_direction(good_vectors, defect_side)
                z_test, z_goods = (test.image - origin) @ direction, (good_vectors - origin) @ direction
                scale = spread / (float(np.std(z_goods)) or 1.0)
                results.setdefault((count, f"{variant} z"), []).append(_auroc(labels, z_test))
                for v in WEIGHTS[1:]:
                    results.setdefault((count, f"{variant} v={v:g}"), []).append(
                        _auroc(labels, log_residual + v * scale * z_test))
        direction, origin = fit_direction(good_vectors, pseudo)
        results.setdefault((0, "pseudo z"), []).append(_auroc(labels, (test.image - origin) @ direction))
    return [{"set": name, "defects_per_type": "all" if count is None else count, "score": score,
             "image_auroc": float(np.mean(values)), "images": len(samples), "image_size": args.image_size}
            for (count, score), values in results.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        if name not in SETS or not SETS[name].exists():
            print(f"[{name}] skipped: unknown, or {SETS.get(name)} is absent", file=sys.stderr)
            continue
        print(f"[{name}] running", file=sys.stderr, flush=True)
        rows += run_set(name, SETS[name], args)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print_tables(rows)
    return 0 if rows else 1


def print_tables(rows: list[dict]) -> None:
    """Per set: a row per score, a column per count of real defects per type (0: none given)."""
    counts = ["0"] + ["all" if c is None else str(c) for c in COUNTS]
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        print(f"\n{name} ({mine[0]['images']} images, {mine[0]['image_size']} px): test image AUROC, mean of folds")
        print(f"{'score':20}" + "".join(f"{c:>8}" for c in counts))
        for score in dict.fromkeys(r["score"] for r in mine):
            values = {str(r["defects_per_type"]): r["image_auroc"] for r in mine if r["score"] == score}
            print(f"{score:20}" + "".join(f"{values[c]:8.3f}" if c in values else f"{'':8}" for c in counts))


if __name__ == "__main__":
    sys.exit(main())
