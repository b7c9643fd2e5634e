"""`simsearch compare` (every method on the same splits, one table) and `simsearch train-baseline`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from simsearch.cli.app import app
from simsearch.cli.options import (
    AspectOption,
    BackboneWeightsOption,
    BatchSizeOption,
    CamLrOption,
    CnnImageSizeOption,
    CnnLrOption,
    DeviceOption,
    JsonResultOption,
    LabelledDataArgument,
    NoPretrainedOption,
    ProbeBackbonesOption,
)
from simsearch.cli.output import console, err_console, fail, handle_errors, progress_bar

# the recommended similarity method (knn-open-set: build-index's mode with labelled defects) beside the plain
# residual, the trained similarity head and the classifiers inspection teams try first
DEFAULT_METHODS = "knn-image,knn-patch,knn-open-set,triplet-head,cnn,cam,probe"


def _note(text: str) -> None:
    err_console.print(f"note: {text}", style="yellow", highlight=False, markup=False, soft_wrap=True)


def _cell(summary: dict, metric: str, digits: int = 3, spread: bool = True) -> str:
    value = summary.get(metric) or {"mean": None}
    if value["mean"] is None:
        return "-"
    if not spread:
        return f"{value['mean']:.{digits}f}"
    return f"{value['mean']:.{digits}f}±{value['std']:.2f}"


BASIS_TAGS = {"leave-one-out": "LOO", "out-of-fold": "OOF", "carve-out": "val", "good-only": "good", "f1": "F1"}


def short_basis(text: str) -> str:
    """'leave-one-out good-only / leave-one-out f1' -> 'LOO good/F1': where each threshold was placed."""
    words = [[BASIS_TAGS.get(w, w) for w in part.split() if not w[0].isdigit()] for part in text.split(" / ") if part]
    if not words:
        return "-"
    if all(len(w) == 2 and w[0] == words[0][0] for w in words):
        return f"{words[0][0]} " + "/".join(w[1] for w in words)
    return "/".join(" ".join(w) for w in words)


def print_comparison(report: dict) -> None:
    """One row per method (mean±std over folds), readable at 80 columns; balanced accuracy, images/s and the
    confusion matrix are in the CSV. F1 is at the method's own threshold, placed as `threshold` says (LOO: leave-one-out
    scores of the training part, OOF: internal out-of-fold, val: a validation carve-out; good: the good-only
    quantile, too few defects for F1); oracle: the F1 of the best threshold on the test scores."""
    table = Table(title=f"{len(report['splits'])} fold(s); mean±std over folds", box=None, pad_edge=False,
                  header_style="bold")
    widths = {"method": 13, "family": 10, "AUROC": 10, "F1": 10, "oracle": 6, "threshold": 9, "train s": 7}
    for column, width in widths.items():  # 77 columns in all: fits an 80-column terminal (img/s: in the CSV)
        table.add_column(column, justify="left" if column in ("method", "family", "threshold") else "right",
                         no_wrap=column != "threshold", min_width=width,
                         max_width=11 if column == "threshold" else None)  # a mixed basis wraps
    for name, result in report["methods"].items():
        summary = result["summary"]
        label = escape(name) + ("*" if result.get("same_as") else "")  # * : the same scores as another method
        table.add_row(label, result.get("family", ""), _cell(summary, "image_auroc"), _cell(summary, "f1"),
                      _cell(summary, "oracle_f1", spread=False), short_basis(summary.get("threshold_basis", "")),
                      _cell(summary, "train_seconds", 0, False))
    console.print(table)
    for names in report.get("same_scores", []):
        console.print(f"*: the same scores on every fold: {escape(' = '.join(names))} (one method here, not "
                      f"{len(names)})", highlight=False)


def print_curve(curve: dict) -> None:
    """Methods by labelled defects per type: image AUROC / F1, means over folds and draws."""
    table = Table(title=f"learning curve: AUROC/F1 by labelled defects per type ({curve['repeats']} draw(s))",
                  box=None, pad_edge=False, header_style="bold")
    table.add_column("method")
    for label in curve["counts"]:
        table.add_column(label, justify="right")
    for name, method in curve["methods"].items():
        cells = []
        for label in curve["counts"]:
            point = method["points"][label]
            auroc, f1 = point["image_auroc"]["mean"], point["f1"]["mean"]
            cells.append("-" if auroc is None else f"{auroc:.2f}/{f1:.2f}" if f1 is not None else f"{auroc:.2f}/-")
        table.add_row(escape(name), *cells)
    console.print(table)


def _options(pairs: Optional[List[str]]) -> dict:
    """['triplet-head.epochs=20'] -> {'triplet-head': {'epochs': 20}} (numbers and true/false parsed)."""
    options: dict = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        method, dot, name = key.partition(".")
        if not (equals and dot and method and name):
            fail(f"--option {pair!r} is not METHOD.NAME=VALUE (e.g. triplet-head.epochs=20)")
        if value.lower() in ("true", "false"):
            value = value.lower() == "true"
        for kind in (int, float):
            try:
                value = kind(value) if isinstance(value, str) else value
                break
            except ValueError:
                pass
        options.setdefault(method, {})[name] = value
    return options


def _settings(backbone, weights, no_pretrained, image_size, cnn_image_size, epochs, seed, batch_size, device,
              probe_backbones=None, cache=None, lr=1e-4, cnn_lr=1e-3, val_fraction=0.2, patience=3, options=None,
              aspect="keep"):
    from simsearch.baselines.compare import CompareSettings
    from simsearch.baselines.probe import DEFAULT_BACKBONES

    if weights is not None and not weights.is_file():
        fail(f"{weights}: no such weights file")
    if not 0 <= val_fraction < 1:
        fail(f"--val-fraction must be in [0, 1), not {val_fraction}")
    backbones = tuple(b.strip() for b in probe_backbones.split(",") if b.strip()) if probe_backbones \
        else DEFAULT_BACKBONES
    return CompareSettings(backbone=backbone, weights=str(weights) if weights else None, pretrained=not no_pretrained,
                           image_size=image_size, aspect=aspect, cnn_image_size=cnn_image_size, epochs=epochs,
                           seed=seed, batch_size=batch_size, device=device, probe_backbones=backbones,
                           learning_rate=lr, cnn_learning_rate=cnn_lr, val_fraction=val_fraction,
                           patience=patience if patience and patience > 0 else None, options=options or {},
                           **({"cache_dir": str(cache)} if cache else {}))


@app.command()
def compare(
    data: Path = LabelledDataArgument,
    methods: str = typer.Option(DEFAULT_METHODS, "--methods",
                                help="Comma-separated registered methods, or all (see `simsearch compare "
                                     "--list`)."),
    folds: int = typer.Option(5, "--folds", help="Number of stratified cross-validation folds (each image is "
                              "tested once)."),
    backbone: str = typer.Option("resnet18", "--backbone", help="Backbone for kNN and CAM (ResNet family or "
                                 "vgg16)."),
    weights: Optional[Path] = BackboneWeightsOption,
    no_pretrained: bool = NoPretrainedOption,
    image_size: int = typer.Option(224, "--image-size", help="Input size for kNN, CAM and probe (the short "
                                   "side, with --aspect keep)."),
    aspect: str = AspectOption,
    cnn_image_size: int = CnnImageSizeOption,
    epochs: int = typer.Option(10, "--epochs", help="Most training epochs for CNN, CAM and triplet-ae."),
    lr: float = CamLrOption,
    cnn_lr: float = CnnLrOption,
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of each fold's training part held "
                                       "out to choose epochs (and the CNN/CAM thresholds)."),
    patience: int = typer.Option(3, "--patience", help="Stop training after this many epochs without a lower "
                                 "validation loss (0: never)."),
    option: Optional[List[str]] = typer.Option(None, "--option", help="Per-method setting METHOD.NAME=VALUE, "
                                               "e.g. triplet-head.epochs=20 (repeatable)."),
    probe_backbones: Optional[str] = ProbeBackbonesOption,
    seed: int = typer.Option(42, "--seed", help="Split, draw and training seed."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use a stratified random subset of this many "
                                        "images (quick runs on slow machines)."),
    curve: bool = typer.Option(False, "--curve", help="Also draw the learning curve: each method given 0, 1, "
                               "3, ... labelled defects per type."),
    curve_counts: str = typer.Option("0,1,3,10,all", "--curve-counts", help="Labelled defects per type for "
                                     "the learning curve."),
    curve_repeats: int = typer.Option(3, "--curve-repeats", help="Seeded draws per count."),
    out: Path = typer.Option(Path("artifacts/compare"), "--out", "-o", help="Folder for JSON, CSV, run.json "
                             "and models."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Probe embedding cache (default "
                                         "artifacts/cache/probe)."),
    save_models: bool = typer.Option(True, "--save-models/--no-save-models", help="Keep each fold's model."),
    batch_size: int = BatchSizeOption,
    device: Optional[str] = DeviceOption,
    list_methods: bool = typer.Option(False, "--list", help="List the registered methods and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Train every method on each fold's training part (thresholds placed on out-of-fold scores of it), test
    on the fold's test part; one table, saved as JSON, CSV and run.json (`simsearch report OUT`)."""
    with handle_errors():
        from simsearch.baselines.compare import compare_dataset
        from simsearch.data.callbacks import Callbacks
        from simsearch.report import comparison_run, write_run

        if list_methods:
            _print_methods()
            return
        if not data.exists():
            fail(f"{data}: no such file or folder")
        settings = _settings(backbone, weights, no_pretrained, image_size, cnn_image_size, epochs, seed,
                             batch_size, device, probe_backbones, cache, lr, cnn_lr, val_fraction, patience,
                             _options(option), aspect)
        report, json_path, csv_path = compare_dataset(data, methods, settings, folds, limit,
                                                      curve_counts if curve else None, curve_repeats, out,
                                                      save_models, Callbacks(note=_note, stage=progress_bar))
        run_path = write_run(comparison_run(report), out)
        if as_json:
            typer.echo(json.dumps(report, default=str))
            return
        print_comparison(report)
        if "curve" in report:
            print_curve(report["curve"])
        # the console has markup off: paths print as they are (escape() would add backslashes)
        console.print(f"saved {json_path}, {csv_path} and {run_path}"
                      + (f"; models under {out / 'models'}" if save_models else ""), highlight=False)
        console.print(f"next: simsearch report {out}", highlight=False, soft_wrap=True)  # whole, to paste


def _print_methods() -> None:
    """`compare --list`: each registered method, its family and what it is."""
    from simsearch.baselines.registry import baseline_names, get_baseline

    for name in baseline_names():
        entry = get_baseline(name)
        console.print(f"{escape(name):14} {entry.family:11} {escape(entry.help)}", highlight=False)


@app.command("train-baseline")
def train_baseline(
    data: Path = LabelledDataArgument,
    method: str = typer.Option("cam", "--method", help="A registered method: cnn, cam, probe, knn-patch, "
                               "triplet-head, ... (see `simsearch compare --list`)."),
    out: Path = typer.Option(Path("artifacts/baseline"), "--out", "-o", help="Model folder to write."),
    backbone: str = typer.Option("resnet18", "--backbone",
                                 help="Backbone for CAM and the probe (ResNet family or vgg16)."),
    weights: Optional[Path] = BackboneWeightsOption,
    no_pretrained: bool = NoPretrainedOption,
    image_size: int = typer.Option(224, "--image-size", help="Input size for CAM and the probe (the short side, "
                                   "with --aspect keep)."),
    aspect: str = AspectOption,
    cnn_image_size: int = CnnImageSizeOption,
    epochs: int = typer.Option(10, "--epochs",
                               help="Most training epochs (CNN and CAM stop early at 98% training accuracy)."),
    lr: float = CamLrOption,
    cnn_lr: float = CnnLrOption,
    probe_backbones: Optional[str] = ProbeBackbonesOption,
    seed: int = typer.Option(42, "--seed", help="Seed of the training (same seed, same model)."),
    batch_size: int = BatchSizeOption,
    device: Optional[str] = DeviceOption,
    as_json: bool = JsonResultOption,
) -> None:
    """Train one method on every labelled image (a validation part held out for epochs and threshold) and save
    it with run.json for `simsearch score --model` and `simsearch report`."""
    with handle_errors():
        from simsearch.baselines.compare import train_baseline as train
        from simsearch.baselines.registry import resolve_methods
        from simsearch.data.callbacks import Callbacks
        from simsearch.data.datasets import count_by_class, training_samples
        from simsearch.report import training_run, write_run

        if "," in method or method.strip() == "all":
            fail(f"--method takes one method, not {method!r}")
        (method,) = resolve_methods(method)
        if not data.exists():
            fail(f"{data}: no such file or folder")
        settings = _settings(backbone, weights, no_pretrained, image_size, cnn_image_size, epochs, seed,
                             batch_size, device, probe_backbones, lr=lr, cnn_lr=cnn_lr, aspect=aspect)
        samples = training_samples(data)  # an MVTec category: train/good joins test/
        counts = count_by_class(samples)
        err_console.print("images: " + ", ".join(f"{key} {count}" for key, count in counts.items()),
                          highlight=False)
        model = train(method, samples, settings, out, Callbacks(note=_note, stage=progress_bar))
        run = training_run(method, getattr(model, "history_", None) or [], data, counts, setup={
            "model": str(out), "backbone": settings.backbone, "hyperparameters": model.describe()},
            best_epoch=getattr(model, "best_epoch_", None))
        summary = {"model": str(out), "method": method, "images": len(samples),
                   "defect": sum(s.is_defect for s in samples), "images_per_class": counts,
                   "run": str(write_run(run, out))}
        if as_json:
            typer.echo(json.dumps(summary))
        else:
            console.print(f"trained {method} on {len(samples)} images; saved to {out} "
                          f"(score with `simsearch score --model {out} IMAGES`)")
