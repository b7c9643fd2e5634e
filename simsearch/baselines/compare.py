"""Every registered method on the same splits: the similarity family (kNN image/patch, the triplet embedders
trained per fold) and the classifiers (small CNN, CAM, backbone probe). Each trains on a fold's training part
only and places its threshold on out-of-fold scores of it (`simsearch.baselines.thresholds`). Per fold: image
AUROC, F1 at the method's own threshold, the oracle F1 (best threshold on the test scores), balanced accuracy,
confusion matrix, training time, images/s; methods whose scores were identical are named; then mean and spread
over folds, written as JSON, CSV and a run.json for `simsearch report`. The learning curve reruns the folds with
0, 1, 3, ... labelled defects
per type (seeded, nested draws)."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from simsearch.baselines.probe import DEFAULT_BACKBONES, DEFAULT_CACHE
from simsearch.baselines.registry import baseline_names, build_baseline, get_baseline, resolve_methods
from simsearch.data.callbacks import Callbacks, Progress
from simsearch.data.datasets import Sample, training_samples
from simsearch.data.splits import DEFAULT_SEED, Split, draw_defects, kfold_splits, subsample
from simsearch.data.transforms import ImageSize, input_size_for, size_text
from simsearch.decide.policies import threshold_for_f1
from simsearch.embed import WeightsError
from simsearch.errors import SimsearchError
from simsearch.evaluate.metrics import binary_metrics, image_auroc
from simsearch.runtime import DEFAULT_BATCH_SIZE
from simsearch.score.scorer import Scorer
from simsearch.train.classifier import TrainConfig

METRICS = ("image_auroc", "f1", "oracle_f1", "balanced_accuracy", "accuracy", "train_seconds", "images_per_second")
CURVE_METRICS = ("image_auroc", "f1", "oracle_f1", "balanced_accuracy", "train_seconds")
CURVE_COUNTS: tuple[int | None, ...] = (0, 1, 3, 10, None)  # None: every labelled defect


def method_names() -> tuple[str, ...]:
    """What `compare` can run: every registered method (`--methods all`)."""
    return baseline_names()


@dataclass
class CompareSettings:
    """What every method is run with (kNN, CAM and probe share the backbone, its weights and image size)."""

    backbone: str = "resnet18"
    weights: str | None = None
    pretrained: bool = True  # False: random weights, for tests only
    image_size: ImageSize = 224  # the short side where the aspect is kept
    aspect: str = "keep"  # "keep" the training images' aspect ratio (kNN, CAM, probe), or "square" them
    cnn_image_size: int = 128  # the small CNN's dense layer takes a square
    epochs: int = 10
    learning_rate: float = 1e-4  # seeds 001/002 (CAM)
    cnn_learning_rate: float = 1e-3  # seed 000 trains its CNN from scratch with Keras' Adam default
    cam_augment: bool = False
    class_weights: tuple[float, float] = (1.0, 3.0)
    target_accuracy: float = 0.98
    k: int = 1
    coreset_ratio: float = 0.1
    probe_backbones: tuple[str, ...] = DEFAULT_BACKBONES
    val_fraction: float = 0.2  # share of each training part held out to choose epochs (and CNN/CAM thresholds)
    patience: int | None = 3  # epochs without a lower validation loss before a training run stops
    # per-method extras, e.g. {"triplet-head": {"epochs": 20}}
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str | None = None
    seed: int = DEFAULT_SEED
    cache_dir: str | None = str(DEFAULT_CACHE)

    def train_config(self, method: str = "cam") -> TrainConfig:
        rate = self.cnn_learning_rate if method == "cnn" else self.learning_rate
        # Seed 000 augments its CNN; seeds 001/002 train the CAM model on resized images only.
        return TrainConfig(epochs=self.epochs, learning_rate=rate, class_weights=self.class_weights,
                           augment=method == "cnn" or self.cam_augment,
                           target_accuracy=self.target_accuracy, seed=self.seed)


def fold_metrics(samples: Sequence[Sample], scores: Sequence[float], verdicts: Sequence[bool]) -> dict[str, Any]:
    """Image AUROC on scores; F1, balanced accuracy, accuracy and confusion [[TN, FP], [FN, TP]] on verdicts;
    the oracle F1: the F1 of the best threshold on these test scores (what a perfect threshold would give, so
    that F1 minus oracle F1 is what the method's own threshold costs)."""
    labels = np.array([int(s.is_defect) for s in samples])
    predicted = np.array([float(bool(v)) for v in verdicts])
    at_verdicts = binary_metrics(labels, predicted, 0.5)  # a verdict is a score of 0 or 1
    (tn, fp), (fn, tp) = at_verdicts["confusion"]
    return {"image_auroc": image_auroc(labels, scores), "f1": at_verdicts["f1"],
            "oracle_f1": oracle_f1(labels, np.asarray(scores, dtype=np.float64)),
            "balanced_accuracy": at_verdicts["balanced_accuracy"],
            "accuracy": (tn + tp) / len(labels) if len(labels) else None, "confusion": at_verdicts["confusion"]}


def oracle_f1(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The F1 at the F1-best threshold on these scores (the F1 policy's own choice); None without both classes."""
    if not ((labels == 1).any() and (labels == 0).any()):
        return None
    value, _ = threshold_for_f1(labels, scores)
    return binary_metrics(labels, scores, value)["f1"]


def scores_digest(paths: Sequence[str], scores: Sequence[float]) -> str:
    """A digest of the test scores in path order, as float32: two methods with the same digest on every fold
    gave the same scores (a fallback making one method another), whatever their names."""
    order = np.argsort(np.asarray(paths, dtype=str), kind="stable")
    values = np.asarray(scores, dtype=np.float32)[order]
    return hashlib.blake2b(np.asarray(paths)[order].astype(str).tobytes() + values.tobytes(),
                           digest_size=12).hexdigest()


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
    trained = {"train_images": len(split.train), "train_defects": sum(s.is_defect for s in split.train)}
    if getattr(method, "history_", None):
        trained["history"] = method.history_
        trained["best_epoch"] = getattr(method, "best_epoch_", None)
    threshold = getattr(method, "threshold_", None)
    value = getattr(threshold, "value", threshold)
    return {"fold": split.fold, **metrics, "train_seconds": train_seconds,
            "images_per_second": len(results) / max(score_seconds, 1e-9), "test_images": len(results),
            "threshold": float(value) if value is not None else None,
            "threshold_basis": getattr(method, "threshold_basis_", None),
            "threshold_images": len(getattr(method, "threshold_paths_", ()) or ()),
            "scores_digest": scores_digest([r.path for r in results], [r.score for r in results]), **trained}


def summarise(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over folds of each metric; the confusion matrix summed over folds."""
    summary: dict[str, Any] = {}
    for metric in METRICS:
        values = [f[metric] for f in folds if f.get(metric) is not None]
        summary[metric] = {"mean": float(np.mean(values)) if values else None,
                           "std": float(np.std(values)) if values else None}
    summary["confusion"] = np.sum([f["confusion"] for f in folds], axis=0).tolist()
    # e.g. "leave-one-out f1" on every fold, or "leave-one-out f1 / leave-one-out good-only" where they differ
    summary["threshold_basis"] = " / ".join(dict.fromkeys(str(f.get("threshold_basis")) for f in folds))
    return summary


def same_scores(report: dict[str, Any]) -> list[list[str]]:
    """Groups of methods (two or more, in run order) whose test scores were identical on every fold: one is
    the other here (e.g. knn-contrast falling back to knn-patch with too few coherent defects)."""
    groups: dict[tuple, list[str]] = {}
    for name, result in report.get("methods", {}).items():
        key = tuple((f["fold"], f.get("scores_digest")) for f in result["folds"])
        if all(digest for _, digest in key):
            groups.setdefault(key, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def mark_same_scores(report: dict[str, Any], callbacks: Callbacks | None = None) -> None:
    """Record `same_scores` in the report (`same_scores`, and `same_as` on each method after the first of its
    group) with a note, so that a table never shows one method as two."""
    report["same_scores"] = same_scores(report)
    for names in report["same_scores"]:
        for name in names[1:]:
            report["methods"][name]["same_as"] = names[0]
        (callbacks or Callbacks()).note(f"{', '.join(names[1:])} gave the same scores as {names[0]} on every fold "
                                        f"here: one method, not {len(names)}")


def compare(splits: Sequence[Split], methods: str | Sequence[str], settings: CompareSettings,
            models_dir: str | Path | None = None, callbacks: Callbacks | None = None,
            report_dir: str | Path | None = None) -> dict[str, Any]:
    """Run each method on each split (methods: names, or 'all'); methods whose weights are unavailable are
    skipped with a note (each note once, kept in the report and told to callbacks.note; each method's fold to
    callbacks.done). With report_dir, the report is rewritten after each method, so a long run keeps what it has
    finished."""
    methods = resolve_methods(methods)
    notes: list[str] = []
    callbacks = _noting(notes, callbacks)
    note = callbacks.note
    settings = input_size_of(settings, splits, callbacks)
    report: dict[str, Any] = {"settings": {**asdict(settings), "methods": list(methods)},
                              "splits": [s.describe() for s in splits], "methods": {}, "notes": notes}
    for name in methods:
        folds = []
        for split in splits:
            try:
                method = build_baseline(name, settings, Callbacks(note=note))  # a method is told only notes
                folds.append(run_fold(method, split))
            except WeightsError as error:
                note(f"{name} skipped: {error}")
                break
            if models_dir is not None:
                method.save(Path(models_dir) / name / f"fold{split.fold}")
            callbacks.done(f"{name} fold {split.fold}/{len(splits)}")
        if folds:
            report["methods"][name] = {"family": get_baseline(name).family, "summary": summarise(folds),
                                       "folds": folds}
        if report_dir is not None:
            write_report(report, report_dir)
    mark_same_scores(report, callbacks)
    if report_dir is not None:
        write_report(report, report_dir)
    return report


def input_size_of(settings: CompareSettings, splits: Sequence[Split],
                  callbacks: Callbacks | None = None) -> CompareSettings:
    """The settings with the input size the methods run at: with aspect "keep", the training images' aspect
    ratio at `image_size` on the short side (said in a note where the images are not square)."""
    if not isinstance(settings.image_size, int):
        return settings
    side = settings.image_size
    size = input_size_for([str(s.path) for split in splits for s in split.train], side, settings.aspect)
    if size != side:
        (callbacks or Callbacks()).note(f"kNN, CAM and probe run at {size_text(size)} (height x width): the images' "
                                        f"aspect ratio kept (aspect 'square' squashes them to {side} px)")
    return replace(settings, image_size=size)


def _noting(notes: list[str], callbacks: Callbacks | None) -> Callbacks:
    """The callbacks with each note kept in `notes` (a report's), and told once."""
    callbacks = callbacks or Callbacks()

    def note(text: str) -> None:
        if text not in notes:
            notes.append(text)
            callbacks.note(text)
    return replace(callbacks, note=note)


def held_out_types(samples: Sequence[Sample]) -> list[str]:
    """The defect types a set can hold out one at a time (two or more named types; none otherwise)."""
    types = sorted({s.defect_type for s in samples if s.is_defect and s.defect_type})
    return types if len(types) >= 2 else []


def hold_out_type(splits: Sequence[Split], defect_type: str) -> list[Split]:
    """The same folds with one defect type never shown in training: each training part loses that type's
    defects; each test part keeps its goods and that type's defects only (how a method finds a kind of defect
    it has never seen)."""
    unseen = [s for s in splits if any(t.is_defect and t.defect_type == defect_type for t in s.test)]
    if not unseen:
        raise SimsearchError(f"no test part holds defect type {defect_type!r}")
    return [Split(s.fold, [t for t in s.train if not (t.is_defect and t.defect_type == defect_type)],
                  [t for t in s.test if not t.is_defect or t.defect_type == defect_type]) for s in unseen]


def parse_counts(text: str) -> list[int | None]:
    """'0,1,3,10,all' -> [0, 1, 3, 10, None] (None: every labelled defect), sorted, repeats dropped."""
    from simsearch.errors import InputError

    counts: list[int | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "all":
            value = None
        elif part.isdigit():
            value = int(part)
        else:
            raise InputError(f"{part!r} is not a defect count", hint="give {param} as counts and 'all', "
                             "e.g. 0,1,3,10,all", parameter="curve_counts")
        if value not in counts:
            counts.append(value)
    if not counts:
        raise InputError("no defect count given", hint="give {param}, e.g. 0,1,3,10,all", parameter="curve_counts")
    return sorted(counts, key=lambda c: float("inf") if c is None else c)


def count_label(count: int | None) -> str:
    return "all" if count is None else str(count)


def learning_curve(splits: Sequence[Split], methods: str | Sequence[str], settings: CompareSettings,
                   counts: Sequence[int | None] = CURVE_COUNTS, repeats: int = 3,
                   comparison: dict[str, Any] | None = None, callbacks: Callbacks | None = None) -> dict[str, Any]:
    """Each method's AUROC and F1 when given `count` labelled defects per type of each fold's training part
    (every good image kept; the test parts unchanged). Draws are seeded by (seed, repeat) and nested; a count
    that draws the same images every time (0, all) runs once. The 'all' point reuses `comparison`'s folds
    when given. A method that cannot train on a draw (a classifier without defects) gets no value there."""
    from simsearch.errors import InputError

    methods = resolve_methods(methods)
    if repeats < 1:
        raise InputError("repeats must be at least 1", hint="raise {param}", parameter="curve_repeats")
    notes: list[str] = []
    callbacks = _noting(notes, callbacks)
    note = callbacks.note
    curve: dict[str, Any] = {"counts": [count_label(c) for c in counts], "repeats": repeats,
                             "per": "defect type", "methods": {}, "notes": notes}
    for name in methods:
        points: dict[str, Any] = {}
        for count in counts:
            runs: list[dict[str, Any]] = []
            finished = (comparison or {}).get("methods", {}).get(name)
            if count is None and finished:
                runs = [{**_curve_row(f), "repeat": 0, "defects": f["train_defects"]} for f in finished["folds"]]
            else:
                for repeat in range(1 if count in (0, None) else repeats):
                    for split in splits:
                        drawn = draw_defects(split.train, count, settings.seed, repeat)
                        run = {"fold": split.fold, "repeat": repeat, "defects": sum(s.is_defect for s in drawn)}
                        try:
                            result = run_fold(build_baseline(name, settings, Callbacks(note=note)),
                                              Split(split.fold, drawn, split.test))
                            run.update(_curve_row(result))
                        except (SimsearchError, ValueError) as error:
                            note(f"{name} with {count_label(count)} defect(s) per type, fold {split.fold}: "
                                 f"no result ({str(error).splitlines()[0]})")
                        runs.append(run)
            points[count_label(count)] = {**{m: _mean_std([r.get(m) for r in runs]) for m in CURVE_METRICS},
                                          "defects": _mean_std([r["defects"] for r in runs]), "runs": runs}
            callbacks.done(f"{name} with {count_label(count)} defect(s) per type")
        curve["methods"][name] = {"family": get_baseline(name).family, "points": points}
    return curve


def _curve_row(fold: dict[str, Any]) -> dict[str, Any]:
    return {"fold": fold["fold"], **{m: fold.get(m) for m in CURVE_METRICS}}


def _mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    present = [float(v) for v in values if v is not None and v == v]
    return {"mean": float(np.mean(present)) if present else None,
            "std": float(np.std(present)) if present else None, "n": len(present)}


def compare_dataset(data: str | Path, methods: str | Sequence[str], settings: CompareSettings, folds: int = 5,
                    limit: int | None = None, curve_counts: str | None = None, curve_repeats: int = 3,
                    out: str | Path = "artifacts/compare", save_models: bool = True,
                    callbacks: Callbacks | None = None) -> tuple[dict[str, Any], Path, Path]:
    """`compare` on a labelled folder (an MVTec category: train/good joins test/): `folds` stratified folds of its
    images (of a stratified subset of `limit` of them), seeded by settings.seed, with the learning curve at
    `curve_counts` ('0,1,3,10,all') when given. The report is written to `out` as it grows, each fold's model
    under out/models with `save_models`. Returns the report and its JSON and CSV files."""
    chosen = resolve_methods(methods)
    counts = parse_counts(curve_counts) if curve_counts is not None else None  # refused before any training
    samples = training_samples(data)
    if limit is not None:
        samples = subsample(samples, limit, settings.seed)
    splits = kfold_splits(samples, folds, settings.seed)
    out, callbacks = Path(out), callbacks or Callbacks()
    with callbacks.staged("comparing", len(chosen) * len(splits)) as advance:
        report = compare(splits, chosen, settings, out / "models" if save_models else None,
                         _counting(callbacks, advance), report_dir=out)
    report["data"] = str(data)
    if limit is not None:
        report["limit"] = limit
        report["subset"] = {"images": len(samples), "defect": sum(s.is_defect for s in samples)}
    if counts is not None:
        methods = list(report["methods"])
        with callbacks.staged("learning curve", len(methods) * len(counts)) as advance:
            report["curve"] = learning_curve(splits, methods, settings, counts, curve_repeats, report,
                                             _counting(callbacks, advance))
    return (report, *write_report(report, out))


def _counting(callbacks: Callbacks, advance: Progress) -> Callbacks:
    """The callbacks with each unit done also counted by `advance` (a stage's bar)."""
    def done(what: str) -> None:
        callbacks.done(what)
        advance(1)
    return replace(callbacks, done=done)


def train_baseline(method: str, samples: Sequence[Sample], settings: CompareSettings, out: str | Path,
                   callbacks: Callbacks | None = None) -> Scorer:
    """One method trained on every labelled sample (its own validation part picks the epochs and the threshold),
    at the input size `compare` runs it at, and saved to `out` (`simsearch.load` opens it); the training is the
    stage "training METHOD"."""
    callbacks = callbacks or Callbacks()
    settings = input_size_of(settings, [Split(0, samples, [])], callbacks)
    model = build_baseline(method, settings, Callbacks(note=callbacks.note))  # told only notes, as in compare
    with callbacks.staged(f"training {method}", None):
        model.fit(samples)
    model.save(out)
    return model


def write_report(report: dict[str, Any], folder: str | Path) -> tuple[Path, Path]:
    """compare.json (everything) and compare.csv (one row per method: mean and std of each metric)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = folder / "compare.json", folder / "compare.csv"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "family", "folds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]
                        + ["tn", "fp", "fn", "tp", "threshold_basis", "same_as"])
        for name, result in report["methods"].items():
            summary = result["summary"]
            (tn, fp), (fn, tp) = summary["confusion"]
            writer.writerow([name, result.get("family", ""), len(result["folds"])]
                            + [_round(summary[m][s]) for m in METRICS for s in ("mean", "std")] + [tn, fp, fn, tp]
                            + [summary.get("threshold_basis", ""), result.get("same_as", "")])
    return json_path, csv_path


def _round(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)
