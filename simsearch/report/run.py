"""A run folder: `run.json` (what was run, on what data, with which set-up, and what came out) plus the few
example overlays the report shows. Plain dicts, so that evaluate, compare and train share one format
(documented in docs/report.md)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from simsearch.data.datasets import DEFECT, GOOD, Sample, class_key, count_by_class
from simsearch.decide.threshold import Threshold, as_threshold
from simsearch.errors import InputError
from simsearch.evaluate.evaluation import Evaluation
from simsearch.files import write_bytes_atomic
from simsearch.index.exemplar_index import ExemplarIndex
from simsearch.score.modes import describe_index
from simsearch.score.results import Box, ScoreResult

RUN_FORMAT = "simsearch-run"
RUN_VERSION = 1
RUN_FILE = "run.json"
EXAMPLES_DIR = "examples"
EXAMPLES_PER_GROUP = 4
SAMPLES_PER_CLASS = 4
OVERLAY_SIDE = 320  # overlays are drawn at this size so that their text stays legible in the report


class RunError(InputError):
    """A run folder or run.json that cannot be read."""


def default_run_dir(root: str | Path = "artifacts/runs") -> Path:
    """artifacts/runs/<UTC timestamp>."""
    return Path(root) / _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def new_run(kind: str, title: str = "", **sections: Any) -> dict[str, Any]:
    """The skeleton every run.json starts from; sections (data, setup, results, metrics, comparison,
    training, ...) are optional and the report renders whichever are present."""
    return {"format": RUN_FORMAT, "format_version": RUN_VERSION, "kind": kind, "title": title or kind,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **sections}


# untyped defects, one row wherever they are counted: the index calls them "(untyped)", a labelled set "defect"
UNTYPED = "defect (untyped)"


def class_of(sample: Sample) -> str:
    """'good', or the defect type (UNTYPED when it has none)."""
    key = class_key(sample)
    return UNTYPED if sample.is_defect and not sample.defect_type else key


def one_untyped_row(counts: dict[str, int]) -> dict[str, int]:
    """Counts by class with untyped defects under UNTYPED, whichever name the counter gave them."""
    merged: dict[str, int] = {}
    for key, count in counts.items():
        name = UNTYPED if key in (DEFECT, "(untyped)") else key
        merged[name] = merged.get(name, 0) + count
    return merged


def data_section(dataset: str | Path, evaluated: Sequence[Sample], everything: Sequence[Sample] | None = None,
                 fold: str | None = None, index_counts: dict[str, int] | None = None,
                 calibration: Threshold | None = None) -> dict[str, Any]:
    """Counts per class and defect type for each split, and a few sample paths of each class."""
    splits: dict[str, dict[str, int]] = {}
    if index_counts:
        splits["index exemplars"] = one_untyped_row(index_counts)
    if calibration is not None and calibration.metrics:
        metrics = calibration.metrics
        splits["calibration" + (f" ({calibration.calibrated_on})" if calibration.calibrated_on else "")] = {
            GOOD: int(metrics.get("good", 0)), "defects (any type)": int(metrics.get("defect", 0))}
    splits["evaluated" + (f" (fold {fold})" if fold else "")] = one_untyped_row(count_by_class(evaluated))
    if everything is not None and fold:
        splits["whole set"] = one_untyped_row(count_by_class(everything))
    samples: dict[str, list[str]] = {}
    for sample in evaluated:
        chosen = samples.setdefault(class_of(sample), [])
        if len(chosen) < SAMPLES_PER_CLASS:
            chosen.append(absolute(sample.path))
    return {"dataset": absolute(dataset), "fold": fold, "splits": splits, "samples": samples}


def absolute(path: str | Path) -> str:
    """A path as stored in run.json: absolute (symlinks kept), so that the run reads the same from any folder."""
    return os.path.abspath(path)


def setup_section(index: Any, index_folder: str | Path | None = None, **hyperparameters: Any) -> dict[str, Any]:
    """The set-up read from an ExemplarIndex: embedder, backbone, weights, mode, k, coreset, threshold."""
    described = describe_index(index) if isinstance(index, ExemplarIndex) else index.describe()
    config = dict(described["embedder"])
    return {"index": None if index_folder is None else absolute(index_folder), **described, "embedder": config,
            "backbone": config.get("backbone") or config.get("kind"), "weights": describe_weights(config),
            "hyperparameters": hyperparameters}


def describe_weights(config: dict[str, Any]) -> str:
    """Where an embedder's weights came from, in words."""
    source = str(config.get("weights_source") or "")
    if source.startswith("file:"):
        return f"{config.get('weights_path')} (sha256 {source[5:17]}...)"
    if source.startswith("random:"):
        return f"random, untrained ({source[7:]}): for tests and demos only"
    return source or "not recorded"


def result_record(sample: Sample, result: ScoreResult) -> dict[str, Any]:
    """One image's line in run.json: its label and type, and what simsearch said of it."""
    return {**result.to_dict(), "path": absolute(sample.path), "label": sample.label, "defect_type": sample.defect_type}


def evaluation_run(evaluation: Evaluation, index: Any, dataset: str | Path, fold: str | None = None,
                   everything: Sequence[Sample] | None = None, index_folder: str | Path | None = None,
                   title: str = "") -> dict[str, Any]:
    """The run.json of `simsearch evaluate`."""
    return new_run(
        "evaluate", title or f"evaluation of {Path(dataset).name}" + (f" (fold {fold})" if fold else ""),
        data=data_section(dataset, evaluation.samples, everything, fold,
                          {GOOD: index.counts()["good"], **index.defect_types()}, as_threshold(index.threshold)),
        setup=setup_section(index, index_folder, **evaluation_hyperparameters(index)),
        results=[result_record(s, r) for s, r in zip(evaluation.samples, evaluation.results)],
        metrics=evaluation.to_dict())


def evaluation_hyperparameters(index: Any) -> dict[str, Any]:
    """What was chosen to build and score with (beyond the embedder's own config)."""
    config, threshold = index.embedder_config, as_threshold(index.threshold)
    return {"image size (px)": config.get("image_size"), "feature layers": config.get("layers"),
            "patch grid": list(index.patch_grid) if getattr(index, "patch_grid", None) else None,
            "k": index.k, "coreset ratio": index.coreset_ratio,
            "threshold policy": threshold.policy if threshold else None,
            "policy target": threshold.target if threshold else None}


def example_groups(results: Sequence[dict[str, Any]], per_group: int = EXAMPLES_PER_GROUP) -> dict[str, list[int]]:
    """Indexes into results of the examples to show: defects caught (highest score first), defects missed
    (lowest first: the clearest misses) and false alarms (highest first); without a verdict, the
    highest-scored defect and good images."""
    def pick(condition, lowest_first: bool = False) -> list[int]:
        chosen = [i for i, r in enumerate(results) if condition(r)]
        return sorted(chosen, key=lambda i: results[i]["score"] * (1 if lowest_first else -1))[:per_group]

    defect = lambda r: r.get("label") == "defect"  # noqa: E731
    if any(r.get("is_anomaly") is not None for r in results):
        return {"caught": pick(lambda r: defect(r) and r.get("is_anomaly")),
                "missed": pick(lambda r: defect(r) and r.get("is_anomaly") is False, lowest_first=True),
                "false_alarms": pick(lambda r: not defect(r) and r.get("is_anomaly"))}
    return {"top_defects": pick(defect), "top_good": pick(lambda r: not defect(r))}


def _small_overlay(result: ScoreResult, threshold: Threshold | None) -> bytes:
    """The overlay drawn on a downscaled copy of the image, so that its text is legible as a thumbnail."""
    import io

    from PIL import Image

    from simsearch.data.images import read_image
    from simsearch.report.overlay import overlay_image

    pixels = read_image(result.path)
    height, width = pixels.shape[:2]
    scale = OVERLAY_SIDE / max(height, width)  # small images are enlarged too, to be seen
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
        boxes = [Box(round(b.x0 * scale), round(b.y0 * scale), round(b.x1 * scale), round(b.y1 * scale), b.score)
                 for b in result.boxes]
        result = replace(result, boxes=boxes, image_size=pixels.shape[:2])
    buffer = io.BytesIO()
    overlay_image(pixels, result, threshold).save(buffer, format="PNG")
    return buffer.getvalue()


def write_example_overlays(run: dict[str, Any], evaluation: Evaluation, threshold: Threshold | None,
                           folder: str | Path) -> None:
    """Draw the heatmap overlays of the report's examples into folder/examples/ and name them in run.json
    (the maps themselves are not kept: they are large, and only these few are shown)."""
    folder = Path(folder)
    wanted = sorted({i for group in example_groups(run["results"]).values() for i in group})
    for i in wanted:
        result = evaluation.results[i]
        if result.path is None:
            continue
        name = f"{EXAMPLES_DIR}/{i:05d}.png"
        (folder / EXAMPLES_DIR).mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / name, _small_overlay(result, threshold))
        run["results"][i]["overlay"] = name


def _plain(value: Any) -> Any:
    """JSON-safe: numpy numbers and arrays to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_run(run: dict[str, Any], folder: str | Path) -> Path:
    """Write folder/run.json (atomically); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_FILE
    write_bytes_atomic(path, json.dumps(_plain(run), indent=1, ensure_ascii=False).encode("utf-8"))
    return path


def read_run(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read a run folder or a run.json; returns the run and the folder its relative files live in."""
    path = Path(path)
    file = path / RUN_FILE if path.is_dir() else path
    if not file.is_file():
        raise RunError(f"{path}: no run folder or run.json there")
    try:
        run = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{file}: not a readable run.json ({error})") from None
    if not isinstance(run, dict) or run.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise RunError(f"{file}: not a simsearch run (format {run.get('format') if isinstance(run, dict) else '?'!r})")
    if int(run.get("format_version", RUN_VERSION)) > RUN_VERSION:
        raise RunError(f"{file}: written by a newer simsearch (run format {run['format_version']})")
    return run, file.parent


def result_arrays(results: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Labels (1 = defect) and scores of run.json results."""
    rows = list(results)
    return (np.array([r.get("label") == "defect" for r in rows], dtype=int),
            np.array([float(r["score"]) for r in rows], dtype=np.float64))


COMPARISON_COLUMNS = (("image_auroc", "image AUROC"), ("f1", "F1"), ("oracle_f1", "oracle F1"),
                      ("balanced_accuracy", "balanced acc."),
                      ("train_seconds", "train s / fold"), ("images_per_second", "images/s"))


def comparison_run(report: dict[str, Any], title: str = "") -> dict[str, Any]:
    """The run.json of `simsearch compare`, from its compare.json report: the comparison table (with each
    method's family), the learning curve when there is one, and each fold's training curves."""
    rows = [{"method": name, "metrics": {"family": result.get("family"),
                                         **{label: result["summary"].get(key) for key, label in COMPARISON_COLUMNS},
                                         "threshold": result["summary"].get("threshold_basis"),
                                         **({"same scores as": result["same_as"]} if result.get("same_as") else {}),
                                         "folds": len(result["folds"])}}
            for name, result in report.get("methods", {}).items()]
    training = []
    for name, result in report.get("methods", {}).items():
        for fold in result["folds"]:
            if fold.get("history"):
                best = f", best epoch {fold['best_epoch']}" if fold.get("best_epoch") else ""
                training.append({"title": f"{name}, fold {fold['fold']} ({fold.get('train_images', '?')} "
                                          f"training images{best})", "rows": fold["history"]})
    splits = {f"fold {s['fold']} train": {GOOD: s["train"] - s["train_defect"], "defect": s["train_defect"]}
              for s in report.get("splits", [])}
    splits.update({f"fold {s['fold']} test": {GOOD: s["test"] - s["test_defect"], "defect": s["test_defect"]}
                   for s in report.get("splits", [])})
    settings = dict(report.get("settings") or {})
    notes = report.get("notes") or []
    subset = report.get("subset")
    limited = (f"--limit {report['limit']}: a stratified random subset of {subset['images']} images "
               f"({subset['defect']} defect)" if report.get("limit") is not None and subset else
               f"--limit {report['limit']}" if report.get("limit") is not None else None)
    return new_run(
        "compare", title or f"comparison on {Path(str(report.get('data', 'data'))).name}",
        data={"dataset": report.get("data"), "splits": splits, **({"subset": limited} if limited else {})},
        setup={"backbone": settings.get("backbone"), "weights": settings.get("weights") or
               ("ImageNet (torchvision)" if settings.get("pretrained", True) else "random, untrained: tests only"),
               "hyperparameters": settings},
        comparison={"title": "Method comparison", "rows": rows,
                    "note": "mean \u00b1 standard deviation over folds; F1 and balanced accuracy at each method's "
                            "own threshold, placed on out-of-fold scores of each fold's training part as "
                            "'threshold' says (good-only: too few defects for F1); oracle F1: the best threshold "
                            "on the test scores" + (f"; {limited}" if limited else "")
                            + ("; notes: " + "; ".join(notes) if notes else "")},
        curve=report.get("curve"), training=training)


def training_run(kind: str, history: Sequence[dict[str, Any]], dataset: str | Path | None = None,
                 counts: dict[str, int] | None = None, setup: dict[str, Any] | None = None,
                 best_epoch: int | None = None, title: str = "",
                 splits: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """The run.json of `simsearch train` and `simsearch train-baseline`: the data (`splits`: images per class of
    each part, e.g. training and validation; else `counts`, all images), the set-up (its `hyperparameters`:
    epochs, learning rate, ...) and the curves."""
    best = f" (best epoch {best_epoch}, lowest validation loss)" if best_epoch else ""
    parts = ({f"{name} images": one_untyped_row(part) for name, part in splits.items()} if splits
             else {"training images": one_untyped_row(counts)} if counts else {})
    return new_run(kind, title or f"{kind} training" + (f" on {Path(str(dataset)).name}" if dataset else ""),
                   data={"dataset": None if dataset is None else str(dataset), "splits": parts},
                   setup=setup or {}, training=[{"title": f"{kind}{best}", "rows": list(history)}])
