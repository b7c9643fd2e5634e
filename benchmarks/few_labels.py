"""Few labels on several sets: `compare` (the library function: the same stratified splits for every method,
thresholds on out-of-fold scores of each training part) on MVTec bottle, the ELPV subset, MPDD metal plate
and a seeded synthetic set with three defect types; per set and method: image AUROC, F1 at the method's own
threshold, the oracle F1 (best threshold on the test scores: what the threshold costs), training seconds;
then each method's mean rank over the sets. Defaults are to be chosen on the mean over sets, never on one.

    python benchmarks/few_labels.py [--sets bottle,elpv,mpdd,synthetic] [--methods knn-image,knn-patch,...]
        [--folds 3] [--seed 0] [--limit N] [--defects 0|1|3|10|all] [--leave-type-out] [--image-size 160]
        [--epochs 5] [--json]

--defects N: a learning-curve point (`compare.learning_curve`'s draw): N labelled defects PER TYPE in each
training fold (nested seeded draws; every good kept; test parts unchanged); classifiers cannot train with 0
and are left out there, with the reason. --leave-type-out: where a set has two or more defect types, each
type in turn is held out of every training part and the test parts keep the goods and that type only
(`compare.hold_out_type`); each (set, held type) is then one evaluation unit of the ranking. A set whose
folder is absent is skipped with the reason. Progress: one line per stage on stderr. --json: one object a
line per set (and held type) and method: set, method, family, image_auroc, f1, oracle_f1, train_s, and
threshold (where it was placed), same_as, mean_rank_auroc, mean_rank_f1, images, defects, limit, defects_per_type.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SETS = {"bottle": SHARED / "data" / "mvtec_bottle", "elpv": SHARED / "data" / "elpv_subset",
        "mpdd": SHARED / "data" / "mpdd_metal_plate", "synthetic": None, "mpdd-halves": None}
WEIGHTS = SHARED / "weights" / "resnet18-imagenet1k-v1-layers1to3.pth"
SYNTHETIC_TYPES = ("scratch", "spot", "cutpaste")  # three kinds, so one can be held out and two stay seen


def stage(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A woven-looking gray surface: two random gratings plus smoothed noise (each image its own phase)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(7, 9)
    grating = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period + rng.uniform(0, 6.3))
    cross = np.sin((xx * np.cos(angle + 1.2) + yy * np.sin(angle + 1.2)) * 2 * np.pi / (period * 1.7))
    noise = rng.normal(0, 1, (size // 4, size // 4)).repeat(4, 0).repeat(4, 1)
    return 128 + 30 * grating + 15 * cross + 8 * noise


def add_defect(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A thin bright scratch, a dark round spot, or a cut-and-paste patch of the surface turned 90 degrees."""
    size = image.shape[0]
    out = image.copy()
    if kind == "scratch":
        y0, x0 = rng.integers(size // 5, 4 * size // 5, 2)
        angle, length = rng.uniform(0, np.pi), rng.integers(size // 4, size // 2)
        for t in np.linspace(0, length, length * 2):
            y, x = int(y0 + t * np.sin(angle)) % size, int(x0 + t * np.cos(angle)) % size
            out[max(0, y - 1):y + 1, max(0, x - 1):x + 1] = 235
    elif kind == "spot":
        cy, cx = rng.integers(size // 5, 4 * size // 5, 2)
        radius = rng.uniform(size / 20, size / 10)
        yy, xx = np.mgrid[:size, :size]
        out[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] *= 0.35
    else:  # cutpaste: the surface itself, out of place (DRA's and CutPaste's pseudo anomaly, here a real type)
        side = int(rng.integers(size // 6, size // 4))
        sy, sx, ty, tx = rng.integers(0, size - side, 4)
        out[ty:ty + side, tx:tx + side] = np.rot90(image[sy:sy + side, sx:sx + side]) * 1.15
    return out


def write_synthetic(root: Path, seed: int, size: int = 128, good: int = 90, per_type: int = 15) -> Path:
    """good/ and defect/<type>/ PNGs (a labelled folder tree), seeded: the same files for the same seed."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, count in [("good", good)] + [(f"defect/{t}", per_type) for t in SYNTHETIC_TYPES]:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = texture(rng, size)
            if label != "good":
                image = add_defect(image, label.split("/")[1], rng)
            gray = image.clip(0, 255).astype(np.uint8)
            Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2)).save(folder / f"{i:03d}.png")
    return root


def write_halves(source: Path, root: Path) -> Path:
    """A non-square set made of a square one with pixel masks: every image cut into its top and bottom halves
    (2:1), each half a defect of the image's type where its part of the mask is set, else good. Real pictures
    at a real camera's aspect ratio, labelled by the masks: where keeping the aspect ratio is measured."""
    from PIL import Image

    from simsearch.data.datasets import training_samples

    for sample in training_samples(source):
        image = Image.open(sample.path).convert("RGB")
        mask = None
        if sample.is_defect:
            found = list(source.glob(f"ground_truth/{sample.defect_type}/{sample.path.stem}_mask.png"))
            mask = np.asarray(Image.open(found[0]).convert("L")) > 0 if found else None
        height = image.height // 2
        for half, top in (("top", 0), ("bottom", height)):
            crop = image.crop((0, top, image.width, top + height))
            defect = mask is not None and bool(mask[top:top + height].any())
            folder = root / (f"defect/{sample.defect_type}" if defect else "good")
            folder.mkdir(parents=True, exist_ok=True)
            crop.save(folder / f"{sample.path.parent.name}_{sample.path.stem}_{half}.png")
    return root


def set_folder(name: str, scratch: Path, seed: int) -> Path | None:
    """The folder of a set: the shared one, or a derived one written to `scratch`; None (said) where absent."""
    source = SETS["mpdd"] if name == "mpdd-halves" else SETS[name]
    if source is not None and not source.exists():
        stage(f"[{name}] skipped: {source} is absent")
        return None
    if name == "synthetic":
        folder = write_synthetic(scratch / name, seed)
        stage(f"[{name}] generated in {folder} (seed {seed})")
        return folder
    if name == "mpdd-halves":
        folder = write_halves(source, scratch / name)
        stage(f"[{name}] MPDD metal plate cut into 2:1 halves in {folder}")
        return folder
    return source


def units(name: str, samples: list, args: argparse.Namespace) -> list[tuple[str, str | None, list]]:
    """(set, held-out type, splits) to run: the set's folds, or with --leave-type-out one per held type."""
    from simsearch.baselines.compare import held_out_types, hold_out_type
    from simsearch.data.splits import Split, draw_defects, kfold_splits

    splits = kfold_splits(samples, args.folds, args.seed)
    if args.defects is not None or args.defects_all:
        count = None if args.defects_all else args.defects
        splits = [Split(s.fold, draw_defects(s.train, count, args.seed, 0), s.test) for s in splits]
    if not args.leave_type_out:
        return [(name, None, splits)]
    types = held_out_types(samples)
    if not types:
        stage(f"[{name}] leave-type-out: fewer than two named defect types; the whole set is run instead")
        return [(name, None, splits)]
    return [(name, held, hold_out_type(splits, held)) for held in types]


def run_unit(name: str, held: str | None, splits: list, methods: list[str], settings: Any) -> dict[str, Any]:
    from simsearch.baselines.compare import compare
    from simsearch.data.callbacks import Callbacks

    label = name if held is None else f"{name} (without {held})"
    started = time.perf_counter()

    def done(what: str) -> None:  # what: "METHOD fold F/N"
        stage(f"[{label}] {what} done ({time.perf_counter() - started:.0f} s)")
    return compare(splits, methods, settings,
                   callbacks=Callbacks(note=lambda text: stage(f"[{label}] note: {text}"), done=done))


def rows_of(name: str, held: str | None, report: dict[str, Any], samples: list, args: argparse.Namespace) -> list[dict]:
    rows = []
    for method, result in report["methods"].items():
        summary = result["summary"]
        rows.append({"set": name if held is None else f"{name}-without-{held}", "method": method,
                     "family": result["family"], "image_auroc": summary["image_auroc"]["mean"],
                     "f1": summary["f1"]["mean"], "oracle_f1": summary["oracle_f1"]["mean"],
                     "train_s": summary["train_seconds"]["mean"], "threshold": summary["threshold_basis"],
                     "same_as": result.get("same_as"), "held_out_type": held, "images": len(samples),
                     "defects": sum(s.is_defect for s in samples), "limit": args.limit,
                     "defects_per_type": "all" if args.defects is None else args.defects,
                     "train_defects": float(np.mean([f["train_defects"] for f in result["folds"]]))})
    return rows


def add_ranks(rows: list[dict]) -> None:
    """Each method's mean rank over the evaluation units (1 = best; ties share the mean rank), by image AUROC
    and by F1 at its own threshold; a method missing from a unit is not ranked there."""
    from scipy.stats import rankdata

    for metric in ("image_auroc", "f1"):
        ranks: dict[str, list[float]] = {}
        for unit in dict.fromkeys(r["set"] for r in rows):
            present = [r for r in rows if r["set"] == unit and r[metric] is not None]
            for row, rank in zip(present, rankdata([-r[metric] for r in present])):
                ranks.setdefault(row["method"], []).append(float(rank))
        for row in rows:
            values = ranks.get(row["method"])
            key = f"mean_rank_{'auroc' if metric == 'image_auroc' else 'f1'}"
            row[key] = float(np.mean(values)) if values else None


def print_table(rows: list[dict]) -> None:
    def fmt(value: Any, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"
    header = f"{'set':24} {'method':14} {'family':10} {'AUROC':>6} {'F1':>6} {'oracle':>6} {'train s':>7}  threshold"
    print(header)
    print("-" * len(header))
    for r in rows:
        method = r["method"] + (f" (={r['same_as']})" if r.get("same_as") else "")
        print(f"{r['set'][:24]:24} {method[:14]:14} {r['family']:10} {fmt(r['image_auroc']):>6} {fmt(r['f1']):>6} "
              f"{fmt(r['oracle_f1']):>6} {fmt(r['train_s'], 1):>7}  {r['threshold']}")
    print()
    print(f"{'method':14} {'mean rank AUROC':>15} {'mean rank F1':>13} {'mean AUROC':>10} {'mean F1':>8} "
          f"{'mean oracle':>11}  units")
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]

        def mean(key: str, mine: list[dict] = mine) -> float | None:
            known = [r[key] for r in mine if r[key] is not None]
            return np.mean(known) if known else None
        print(f"{method:14} {fmt(mine[0]['mean_rank_auroc'], 2):>15} {fmt(mine[0]['mean_rank_f1'], 2):>13} "
              f"{fmt(mean('image_auroc')):>10} {fmt(mean('f1')):>8} {fmt(mean('oracle_f1')):>11}  {len(mine)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=summary, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=details)
    parser.add_argument("--sets", default=",".join(s for s in SETS if s != "mpdd-halves"),
                        help=f"comma-separated, of {', '.join(SETS)}")
    parser.add_argument("--methods", default="all", help="registered compare methods, comma-separated, or all")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="stratified random subset of N images per set")
    parser.add_argument("--defects", default=None, help="labelled defects per type in each training fold: "
                        "0, 1, 3, 10 or all (default all)")
    parser.add_argument("--leave-type-out", action="store_true",
                        help="hold each defect type out of training in turn (sets with 2+ types)")
    parser.add_argument("--image-size", type=int, default=160, help="input side (the short one with --aspect "
                        "keep)")
    parser.add_argument("--aspect", default="keep", choices=("keep", "square"),
                        help="keep the images' aspect ratio (kNN, CAM, probe) or squash them to a square")
    parser.add_argument("--epochs", type=int, default=5, help="most epochs for the trained methods (CNN, CAM, ...)")
    parser.add_argument("--probe-backbones", default="resnet18")
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--json", action="store_true", help="one JSON object a line per set and method")
    args = parser.parse_args(argv)
    args.defects_all = False
    if args.defects is not None:
        if args.defects == "all":
            args.defects, args.defects_all = None, True
        elif args.defects.isdigit():
            args.defects = int(args.defects)
        else:
            parser.error(f"--defects takes a count or all, not {args.defects!r}")
    unknown = [s for s in args.sets.split(",") if s.strip() and s.strip() not in SETS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from simsearch.baselines.compare import CompareSettings
    from simsearch.baselines.registry import get_baseline, resolve_methods
    from simsearch.data.datasets import training_samples
    from simsearch.data.splits import subsample
    from simsearch.errors import SimsearchError

    try:
        methods = resolve_methods(args.methods)
    except SimsearchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.defects == 0:
        trainable = [m for m in methods if get_baseline(m).family != "classifier"]
        for m in set(methods) - set(trainable):
            stage(f"{m} left out: a classifier cannot train without labelled defects (--defects 0)")
        methods = trainable
    weights = args.weights if Path(args.weights).is_file() else None
    if weights is None:
        stage(f"note: {args.weights} absent: torchvision's cached ImageNet weights are used where present")
    settings = CompareSettings(weights=weights, image_size=args.image_size, aspect=args.aspect, epochs=args.epochs,
                               seed=args.seed,
                               probe_backbones=tuple(b for b in args.probe_backbones.split(",") if b),
                               cache_dir=None)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="few-labels-") as scratch:
        for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            folder = set_folder(name, Path(scratch), args.seed)
            if folder is None:
                continue
            samples = training_samples(folder)
            if args.limit is not None:
                samples = subsample(samples, args.limit, args.seed)
            stage(f"[{name}] {len(samples)} images ({sum(s.is_defect for s in samples)} defect), "
                  f"{args.folds} folds")
            for unit, held, splits in units(name, samples, args):
                try:
                    report = run_unit(unit, held, splits, methods, settings)
                except SimsearchError as error:
                    stage(f"[{unit}] skipped: {str(error).splitlines()[0]}")
                    continue
                rows += rows_of(unit, held, report, samples, args)
    if not rows:
        stage("no set could be run")
        return 1
    add_ranks(rows)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
