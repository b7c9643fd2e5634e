"""`simsearch compare` (every method on the same splits, one table) and `simsearch train-baseline`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from simsearch.cli.output import console, err_console, fail, handle_errors, progress_bar

DEFAULT_METHODS = "knn-image,knn-patch,cnn,cam,probe"


def _note(text: str) -> None:
    err_console.print(f"note: {text}", style="yellow", highlight=False, markup=False, soft_wrap=True)


def _cell(summary: dict, metric: str, digits: int = 3) -> str:
    value = summary[metric]
    if value["mean"] is None:
        return "-"
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def print_comparison(report: dict) -> None:
    """One row per method: mean ± std over folds, the confusion matrix summed over folds."""
    table = Table(title=f"{len(report['splits'])} fold(s); mean ± std over folds")
    for column in ("method", "image AUROC", "F1", "balanced acc.", "TN FP FN TP", "train s", "images/s"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, result in report["methods"].items():
        summary = result["summary"]
        (tn, fp), (fn, tp) = summary["confusion"]
        table.add_row(name, _cell(summary, "image_auroc"), _cell(summary, "f1"), _cell(summary, "balanced_accuracy"),
                      f"{tn} {fp} {fn} {tp}", _cell(summary, "train_seconds", 1),
                      _cell(summary, "images_per_second", 1))
    console.print(table)


def _settings(backbone, weights, no_pretrained, image_size, cnn_image_size, epochs, seed, batch_size, device,
              probe_backbones=None, cache=None, triplet=None, lr=1e-4, cnn_lr=1e-3):
    from simsearch.baselines.compare import CompareSettings
    from simsearch.baselines.probe import DEFAULT_BACKBONES

    if weights is not None and not weights.is_file():
        fail(f"{weights}: no such weights file")
    backbones = tuple(b.strip() for b in probe_backbones.split(",") if b.strip()) if probe_backbones \
        else DEFAULT_BACKBONES
    return CompareSettings(backbone=backbone, weights=str(weights) if weights else None, pretrained=not no_pretrained,
                           image_size=image_size, cnn_image_size=cnn_image_size, epochs=epochs, seed=seed,
                           batch_size=batch_size, device=device, probe_backbones=backbones,
                           learning_rate=lr, cnn_learning_rate=cnn_lr,
                           triplet_specs={spec.partition(":")[0]: spec for spec in triplet or []},
                           **({"cache_dir": str(cache)} if cache else {}))


def register(app: typer.Typer) -> None:
    """Add `compare` and `train-baseline` to the simsearch command."""

    @app.command()
    def compare(
        data: Path = typer.Argument(..., help="Labelled folder (good/defect), labels CSV, or MVTec category."),
        methods: str = typer.Option(DEFAULT_METHODS, "--methods",
                                    help="Comma-separated: knn-image, knn-patch, triplet-ae, triplet-head, or a baseline "
                                         "(see `simsearch train-baseline --help`)."),
        folds: int = typer.Option(5, "--folds", help="Number of stratified cross-validation folds (each image is tested once)."),
        backbone: str = typer.Option("resnet18", "--backbone", help="Backbone for kNN and CAM (ResNet family or vgg16)."),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Backbone state-dict file."),
        no_pretrained: bool = typer.Option(False, "--no-pretrained", help="Random weights (tests only)."),
        image_size: int = typer.Option(224, "--image-size", help="Image size for kNN, CAM and probe."),
        cnn_image_size: int = typer.Option(128, "--cnn-image-size", help="Image size for the small CNN."),
        epochs: int = typer.Option(10, "--epochs", help="Most training epochs for CNN and CAM (early stop at 98%)."),
        lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate for CAM."),
        cnn_lr: float = typer.Option(1e-3, "--cnn-lr", help="Adam learning rate for the small CNN."),
        probe_backbones: Optional[str] = typer.Option(None, "--probe-backbones",
                                                      help="Comma-separated torchvision backbones for the probe."),
        seed: int = typer.Option(42, "--seed", help="Split and training seed."),
        out: Path = typer.Option(Path("artifacts/compare"), "--out", "-o", help="Folder for JSON, CSV and models."),
        triplet: Optional[List[str]] = typer.Option(None, "--triplet", help="Triplet embedder spec for the "
                                                    "triplet-ae/triplet-head methods, e.g. triplet-head:MODEL."),
        cache: Optional[Path] = typer.Option(None, "--cache", help="Probe embedding cache (default artifacts/cache/probe)."),
        save_models: bool = typer.Option(True, "--save-models/--no-save-models", help="Keep each fold's model."),
        batch_size: int = typer.Option(16, "--batch-size",
                                        help="Images embedded at a time (lower it when memory runs out)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Run kNN and the supervised baselines on identical stratified splits; one table, saved as JSON and CSV."""
        with handle_errors():
            from simsearch.baselines.compare import compare as run_compare
            from simsearch.baselines.compare import write_report
            from simsearch.data.splits import comparison_samples, kfold_splits

            chosen = [m.strip() for m in methods.split(",") if m.strip()]
            if not chosen:
                fail("--methods is empty")
            if not data.exists():
                fail(f"{data}: no such file or folder")
            settings = _settings(backbone, weights, no_pretrained, image_size, cnn_image_size, epochs, seed,
                                 batch_size, device, probe_backbones, cache, triplet, lr, cnn_lr)
            samples = comparison_samples(data)
            splits = kfold_splits(samples, folds, seed)
            with progress_bar("comparing", len(chosen) * len(splits)) as advance:
                report = run_compare(splits, chosen, settings, out / "models" if save_models else None,
                                     on_note=_note, on_done=lambda name, fold: advance(1), report_dir=out)
            report["data"] = str(data)
            json_path, csv_path = write_report(report, out)
            if as_json:
                typer.echo(json.dumps(report, default=str))
                return
            print_comparison(report)
            console.print(f"saved {json_path} and {csv_path}" + (f"; models under {out / 'models'}" if save_models else ""))

    @app.command("train-baseline")
    def train_baseline(
        data: Path = typer.Argument(..., help="Labelled folder (good/defect), labels CSV, or MVTec category."),
        method: str = typer.Option("cam", "--method", help="A registered baseline: cnn, cam, probe, ..."),
        out: Path = typer.Option(Path("artifacts/baseline"), "--out", "-o", help="Model folder to write."),
        backbone: str = typer.Option("resnet18", "--backbone",
                                     help="Backbone for CAM and the probe (ResNet family or vgg16)."),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Backbone state-dict file."),
        no_pretrained: bool = typer.Option(False, "--no-pretrained", help="Random weights (tests only)."),
        image_size: int = typer.Option(224, "--image-size", help="Image size for CAM and the probe."),
        cnn_image_size: int = typer.Option(128, "--cnn-image-size", help="Image size for the small CNN."),
        epochs: int = typer.Option(10, "--epochs",
                                   help="Most training epochs (CNN and CAM stop early at 98% training accuracy)."),
        lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate for CAM."),
        cnn_lr: float = typer.Option(1e-3, "--cnn-lr", help="Adam learning rate for the small CNN."),
        probe_backbones: Optional[str] = typer.Option(None, "--probe-backbones",
                                                      help="Comma-separated torchvision backbones for the probe."),
        seed: int = typer.Option(42, "--seed", help="Seed of the training (same seed, same model)."),
        batch_size: int = typer.Option(16, "--batch-size",
                                        help="Images embedded at a time (lower it when memory runs out)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    ) -> None:
        """Train one supervised baseline on every labelled image and save it for `simsearch score --model`."""
        with handle_errors():
            from simsearch.baselines.registry import baseline_names, build_baseline
            from simsearch.data.datasets import count_by_class
            from simsearch.data.splits import comparison_samples

            if method not in baseline_names():
                fail(f"--method must be one of {', '.join(baseline_names())}, not {method!r}")
            if not data.exists():
                fail(f"{data}: no such file or folder")
            settings = _settings(backbone, weights, no_pretrained, image_size, cnn_image_size, epochs, seed,
                                 batch_size, device, probe_backbones, lr=lr, cnn_lr=cnn_lr)
            samples = comparison_samples(data)  # an MVTec category: train/good joins test/
            counts = count_by_class(samples)
            err_console.print("images: " + ", ".join(f"{key} {count}" for key, count in counts.items()),
                              highlight=False)
            model = build_baseline(method, settings, on_note=_note)
            with progress_bar(f"training {method}", None):
                model.fit(samples)
            model.save(out)
            summary = {"model": str(out), "method": method, "images": len(samples),
                       "defect": sum(s.is_defect for s in samples), "images_per_class": counts}
            if as_json:
                typer.echo(json.dumps(summary))
            else:
                console.print(f"trained {method} on {len(samples)} images; saved to {out} "
                              f"(score with `simsearch score --model {out} IMAGES`)")
