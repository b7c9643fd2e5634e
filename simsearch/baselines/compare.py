"""Every method on the same splits: kNN (image, patch, triplet embedders where available), small CNN, CAM,
backbone probe. Per fold: image AUROC, F1, balanced accuracy, confusion matrix, training time, images/s;
then mean and spread over folds, written as JSON and CSV."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from simsearch.baselines.probe import DEFAULT_BACKBONES, DEFAULT_CACHE
from simsearch.baselines.registry import baseline_names, build_baseline
from simsearch.data.datasets import Sample
from simsearch.data.splits import DEFAULT_SEED, Split
from simsearch.decide.policies import calibrate
from simsearch.embed import WeightsError, create_embedder
from simsearch.errors import UnknownComponentError
from simsearch.evaluate.metrics import binary_metrics, image_auroc
from simsearch.inspector import Inspector
from simsearch.train.classifier import TrainConfig

KNN_METHODS = ("knn-image", "knn-patch")
TRIPLET_METHODS = ("triplet-ae", "triplet-head")
SUPERVISED_METHODS = baseline_names()  # every registered baseline (cnn, cam, probe, ...)
METHODS = KNN_METHODS + TRIPLET_METHODS + SUPERVISED_METHODS
METRICS = ("image_auroc", "f1", "balanced_accuracy", "accuracy", "train_seconds", "images_per_second")
KNN_HOLDOUT = 0.2  # share of the training good images held out of the index to place the kNN threshold
Note = Callable[[str], None]


@dataclass
class CompareSettings:
    """What every method is run with (kNN, CAM and probe share the backbone, its weights and image size)."""

    backbone: str = "resnet18"
    weights: str | None = None
    pretrained: bool = True  # False: random weights, for tests only
    image_size: int = 224
    cnn_image_size: int = 128
    epochs: int = 10
    learning_rate: float = 1e-4  # seeds 001/002 (CAM)
    cnn_learning_rate: float = 1e-3  # seed 000 trains its CNN from scratch with Keras' Adam default
    cam_augment: bool = False
    class_weights: tuple[float, float] = (1.0, 3.0)
    target_accuracy: float = 0.98
    k: int = 1
    coreset_ratio: float = 0.1
    probe_backbones: tuple[str, ...] = DEFAULT_BACKBONES
    triplet_specs: dict[str, str] = field(default_factory=dict)  # method -> embedder spec, e.g. 'triplet-head:FILE'
    batch_size: int = 16
    device: str | None = None
    seed: int = DEFAULT_SEED
    cache_dir: str | None = str(DEFAULT_CACHE)

    def train_config(self, method: str = "cam") -> TrainConfig:
        rate = self.cnn_learning_rate if method == "cnn" else self.learning_rate
        # Seed 000 augments its CNN; seeds 001/002 train the CAM model on resized images only.
        return TrainConfig(epochs=self.epochs, learning_rate=rate, class_weights=self.class_weights,
                           augment=method == "cnn" or self.cam_augment,
                           target_accuracy=self.target_accuracy, seed=self.seed)


class KnnMethod:
    """kNN similarity search as a compared method: indexes only the good images of the training part.

    Threshold without test leakage: 20% of the training good images are held out of the index; they and
    the training defects are scored against it, the F1-best threshold is kept, then the held-out goods
    join the index."""

    def __init__(self, embedder, mode: str, k: int = 1, coreset_ratio: float = 0.1, seed: int = DEFAULT_SEED):
        self.inspector = Inspector(embedder, mode=mode, k=k, coreset_ratio=coreset_ratio)
        self.seed = seed

    def fit(self, train: Sequence[Sample]) -> "KnnMethod":
        good = [s for s in train if not s.is_defect]
        defects = [s for s in train if s.is_defect]
        order = np.random.default_rng(self.seed).permutation(len(good))
        held = max(1, int(round(len(good) * KNN_HOLDOUT)))
        indexed, held_out = [good[i] for i in sorted(order[held:])], [good[i] for i in sorted(order[:held])]
        self.inspector.fit([s.path for s in indexed])
        check = held_out + defects
        scores = np.array([r.score for r in self.inspector.score([s.path for s in check])])
        labels = np.array([int(s.is_defect) for s in check])
        self.inspector.add([s.path for s in held_out], "good")
        threshold = calibrate(labels, scores, "f1")  # the same F1 policy as `simsearch calibrate`
        threshold.calibrated_on = "held-out training goods + training defects"
        self.inspector.index_.threshold = threshold.to_record()
        return self

    def iter_score(self, images, on_progress=None, on_skip=None):
        return self.inspector.iter_score(images, on_progress, on_skip)

    def save(self, folder: Path) -> None:
        self.inspector.save(folder, force=True)  # a rerun replaces its own fold models


def build_method(name: str, settings: CompareSettings, on_note: Note | None = None):
    """A fresh, untrained method. Raises WeightsError when its weights or embedder are unavailable."""
    runtime = {"batch_size": settings.batch_size, **({"device": settings.device} if settings.device else {})}
    if name in KNN_METHODS + TRIPLET_METHODS:
        if name in TRIPLET_METHODS:
            spec = settings.triplet_specs.get(name, f"{name}:")
            try:
                embedder = create_embedder(spec, **runtime)
            except WeightsError:
                raise
            except Exception as error:  # another helper's embedder: any failure to build it means "skip"
                raise WeightsError(f"cannot build the {spec!r} embedder ({error})") from None
            mode = "image"
        else:
            embedder = create_embedder(f"backbone:{settings.backbone}", weights=settings.weights,
                                       pretrained=settings.pretrained, image_size=settings.image_size, **runtime)
            mode = name.removeprefix("knn-")
        return KnnMethod(embedder, mode, settings.k, settings.coreset_ratio, settings.seed)
    if name in SUPERVISED_METHODS:
        return build_baseline(name, settings, on_note)
    raise UnknownComponentError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")


def fold_metrics(samples: Sequence[Sample], scores: Sequence[float], verdicts: Sequence[bool]) -> dict[str, Any]:
    """Image AUROC on scores; F1, balanced accuracy, accuracy and confusion [[TN, FP], [FN, TP]] on verdicts."""
    labels = np.array([int(s.is_defect) for s in samples])
    predicted = np.array([float(bool(v)) for v in verdicts])
    at_verdicts = binary_metrics(labels, predicted, 0.5)  # a verdict is a score of 0 or 1
    (tn, fp), (fn, tp) = at_verdicts["confusion"]
    return {"image_auroc": image_auroc(labels, scores), "f1": at_verdicts["f1"],
            "balanced_accuracy": at_verdicts["balanced_accuracy"],
            "accuracy": (tn + tp) / len(labels) if len(labels) else None, "confusion": at_verdicts["confusion"]}


def run_fold(method, split: Split) -> dict[str, Any]:
    """Train on the split's training part, score its test part; metrics with timings."""
    start = time.perf_counter()
    method.fit(split.train)
    train_seconds = time.perf_counter() - start
    by_path = {str(s.path): s for s in split.test}
    start = time.perf_counter()
    results = list(method.iter_score([s.path for s in split.test]))
    score_seconds = time.perf_counter() - start
    kept = [by_path[r.path] for r in results]
    metrics = fold_metrics(kept, [r.score for r in results], [bool(r.is_anomaly) for r in results])
    return {"fold": split.fold, **metrics, "train_seconds": train_seconds,
            "images_per_second": len(results) / max(score_seconds, 1e-9), "test_images": len(results)}


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over folds of each metric; the confusion matrix summed over folds."""
    summary: dict[str, Any] = {}
    for metric in METRICS:
        values = [f[metric] for f in folds if f.get(metric) is not None]
        summary[metric] = {"mean": float(np.mean(values)) if values else None,
                           "std": float(np.std(values)) if values else None}
    summary["confusion"] = np.sum([f["confusion"] for f in folds], axis=0).tolist()
    return summary


def compare(splits: Sequence[Split], methods: Sequence[str], settings: CompareSettings,
            models_dir: str | Path | None = None, on_note: Note | None = None,
            on_done: Callable[[str, int], None] | None = None,
            report_dir: str | Path | None = None) -> dict[str, Any]:
    """Run each method on each split; methods whose weights or embedder are unavailable are skipped with a note.
    With report_dir, the report is rewritten after each method, so a long run keeps what it has finished."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UnknownComponentError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    notes: list[str] = []

    def note(text: str) -> None:
        if text not in notes:
            notes.append(text)
            if on_note:
                on_note(text)

    report: dict[str, Any] = {"settings": {**asdict(settings), "methods": list(methods)},
                              "splits": [s.describe() for s in splits], "methods": {}, "notes": notes}
    for name in methods:
        folds = []
        for split in splits:
            try:
                method = build_method(name, settings, note)
                folds.append(run_fold(method, split))
            except WeightsError as error:
                note(f"{name} skipped: {error}")
                break
            if models_dir is not None:
                method.save(Path(models_dir) / name / f"fold{split.fold}")
            if on_done:
                on_done(name, split.fold)
        if folds:
            report["methods"][name] = {"summary": summarise(folds), "folds": folds}
        if report_dir is not None:
            write_report(report, report_dir)
    return report


def write_report(report: dict[str, Any], folder: str | Path) -> tuple[Path, Path]:
    """compare.json (everything) and compare.csv (one row per method: mean and std of each metric)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = folder / "compare.json", folder / "compare.csv"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "folds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
                        + ["tn", "fp", "fn", "tp"])
        for name, result in report["methods"].items():
            summary = result["summary"]
            (tn, fp), (fn, tp) = summary["confusion"]
            writer.writerow([name, len(result["folds"])]
                            + [_round(summary[m][s]) for m in METRICS for s in ("mean", "std")] + [tn, fp, fn, tp])
    return json_path, csv_path


def _round(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)
