"""`simsearch train triplet-ae|triplet-head DATA`: metric learning on labelled good/defect images."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from simsearch.cli.app import app
from simsearch.cli.options import (
    BackboneWeightsOption,
    DeviceOption,
    EpochsOption,
    JsonResultOption,
    LrOption,
    MarginOption,
    MinerOption,
    PatienceOption,
    ResumeOption,
    RoiOption,
    SaveOption,
    SeedOption,
    TrainingDataArgument,
    TripletBatchOption,
    ValOption,
)
from simsearch.cli.output import SkippedInputs, console, err_console, fail, handle_errors

train_app = typer.Typer(no_args_is_help=True, help="Train a metric-learning embedder (triplet loss).")
app.add_typer(train_app, name="train")



@contextlib.contextmanager
def _training_progress(total_images: int) -> Iterator[tuple[Callable[[int], None], Callable]]:
    """Yields (on_read(n), on_event(TrainEvent)): a reading bar, then a training bar showing the losses."""
    if not err_console.is_terminal:
        yield (lambda n: None), (lambda event: None)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[losses]}")]
    with Progress(*columns, console=err_console, transient=True) as progress:
        reading = progress.add_task("reading", total=total_images, losses="")
        training = None

        def on_event(event) -> None:
            nonlocal training
            if event.stage == "epoch":
                return
            if training is None:
                progress.update(reading, visible=False)
                training = progress.add_task("training", total=event.steps, losses="")
            losses = " ".join(f"{k} {v:.4f}" for k, v in event.losses.items())
            progress.update(training, completed=event.step,
                            description=f"{event.stage} epoch {event.epoch}/{event.epochs}", losses=losses)

        yield (lambda n: progress.advance(reading, n)), on_event


def _settings(epochs, lr, batch_size, save_interval, val_fraction, seed, miner, margin, device, patience=None):
    from simsearch.train.loop import TrainSettings
    from simsearch.train.tasks.common import TripletOptions
    from simsearch.train.triplets import miner_names

    if miner not in miner_names():
        fail(f"--miner must be one of {', '.join(miner_names())}, not {miner!r}")
    if not 0 <= val_fraction < 1:
        fail("--val-fraction must be in [0, 1)")
    settings = TrainSettings(epochs=epochs, lr=lr, batch_size=batch_size, save_interval=save_interval,
                             val_fraction=val_fraction, seed=seed, device=device, patience=patience)
    return settings, TripletOptions(miner=miner, margin=margin)


def _samples(data: Path):
    from simsearch.data.datasets import count_by_class, training_samples

    if not data.exists():
        fail(f"{data}: no such file or folder")
    samples = training_samples(data)  # an MVTec category: train/good + test/, not the test images alone
    counts = count_by_class(samples)
    if counts.get("good", 0) == 0 or len(counts) < 2:
        fail(f"{data}: triplet training needs good and defect images, found {counts}")
    err_console.print("images: " + ", ".join(f"{key} {count}" for key, count in counts.items()))
    return samples, counts


def _resumed_config(ctx: typer.Context, out: Path, resume: bool, kind: str, cls, limits: dict,
                    given: dict) -> object:
    """The model config: with --resume, the checkpoint's settings, except those given on the command line (a
    differing one is then named by the training loop); else the options' values. `given` maps each model option
    (its parameter name) to (config field, value)."""
    from simsearch.embed.checkpoint import config_from_record, read_checkpoint
    from simsearch.train.loop import LAST

    explicit = {field: value for name, (field, value) in given.items()
                if ctx.get_parameter_source(name) is not None and ctx.get_parameter_source(name).name != "DEFAULT"}
    if not resume or not (out / LAST).is_file():
        return cls(**{field: value for field, value in given.values()})
    stored = read_checkpoint(out / LAST, kind=kind)["config"]
    config = config_from_record(cls, stored, f"checkpoint {out / LAST}", limits)
    return dataclasses.replace(config, **explicit)


def _hyperparameters(settings, triplet, result, model_config) -> dict:
    """What a training run was asked to do, for its report: the loop's settings, the triplet loss's, the model's."""
    return {"epochs": settings.epochs, "epochs run": result.epochs_run, "learning rate (Adam)": settings.lr,
            "batch size": settings.batch_size, "triplet margin": triplet.margin, "triplet miner": triplet.miner,
            "validation fraction": settings.val_fraction,
            "patience": settings.patience if settings.patience is not None else "none (every epoch runs)",
            "seed": settings.seed, "device": settings.device or "auto",
            **{f"model: {key}": value for key, value in dataclasses.asdict(model_config).items()
               if not isinstance(value, dict)}}


def _report(kind: str, result, counts: dict, as_json: bool, skips: SkippedInputs, data: Path | None = None,
            hyperparameters: dict | None = None) -> None:
    from simsearch.report import training_run, write_run

    # run.json beside the checkpoints, so that `simsearch report OUT` shows the curves
    write_run(training_run(kind, result.history, data, counts, {"checkpoint": str(result.model_path),
                                                                 "hyperparameters": hyperparameters or {}},
                           result.best_epoch, splits=result.splits), result.out_dir)
    last = result.history[-1]
    summary = {"kind": kind, "checkpoint": str(result.model_path), "epochs_run": result.epochs_run,
               "epochs": int(last["epoch"]), "best_epoch": result.best_epoch, "images": counts,
               "history": str(result.history_path),
               "curves": str(result.curves_path), "final": last, "skipped": skips.records}
    if as_json:
        typer.echo(json.dumps(summary))
        skips.finish()
        return
    losses = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "epoch")
    console.print(f"trained {kind} for {int(last['epoch'])} epochs ({losses})")
    best = f" (epoch {result.best_epoch}, lowest validation loss)" if result.best_epoch else ""
    console.print(f"model: {result.model_path}{best}\ncurves: {result.curves_path} and {result.history_path}")
    console.print(f"next: simsearch build-index GOOD --mode image --embedder {kind}:{result.model_path}\n"
                  f"report: simsearch report {result.out_dir}", soft_wrap=True)  # commands print whole, to paste
    skips.finish()


@train_app.command("triplet-ae")
def triplet_ae(
    ctx: typer.Context,
    data: Path = TrainingDataArgument,
    out: Path = typer.Option(Path("artifacts/train/triplet-ae"), "--out", "-o", help="Run folder."),
    epochs: int = EpochsOption, lr: float = LrOption, batch_size: int = TripletBatchOption,
    save_interval: int = SaveOption, resume: bool = ResumeOption,
    embedding_dim: int = typer.Option(64, "--embedding-dim", help="Length of the embedding (bottleneck)."),
    miner: str = MinerOption, margin: float = MarginOption, val_fraction: float = ValOption,
    image_size: int = typer.Option(128, "--image-size", help="Square input size (a multiple of 16)."),
    grayscale: bool = typer.Option(False, "--grayscale", help="One input channel (for gray inspection images)."),
    triplet_weight: float = typer.Option(1.0, "--triplet-weight", help="Weight of the triplet loss vs reconstruction."),
    roi: str = RoiOption, seed: int = SeedOption, device: Optional[str] = DeviceOption,
    as_json: bool = JsonResultOption, patience: Optional[int] = PatienceOption,
) -> None:
    """Train the triplet-loss convolutional autoencoder (reconstruction + triplet loss on its embedding)."""
    with handle_errors():
        from simsearch.data.callbacks import Callbacks
        from simsearch.embed.triplet_ae import AUTOENCODER_LIMITS, AutoencoderConfig
        from simsearch.train.tasks.triplet_ae import train_triplet_ae

        settings, triplet = _settings(epochs, lr, batch_size, save_interval, val_fraction, seed, miner, margin,
                                      device, patience)
        model_config = _resumed_config(ctx, out, resume, "triplet-ae", AutoencoderConfig, AUTOENCODER_LIMITS, {
            "image_size": ("image_size", image_size), "embedding_dim": ("embedding_dim", embedding_dim),
            "grayscale": ("channels", 1 if grayscale else 3), "roi": ("roi", None if roi == "none" else roi),
            "triplet_weight": ("triplet_weight", triplet_weight)})
        samples, counts = _samples(data)
        skips = SkippedInputs()
        with _training_progress(len(samples)) as (on_read, on_event):
            result = train_triplet_ae(samples, out, model_config, settings, resume, on_event,
                                      Callbacks(progress=on_read, skip=skips), triplet)
        _report("triplet-ae", result, counts, as_json, skips, data,
                _hyperparameters(settings, triplet, result, model_config))


@train_app.command("triplet-head")
def triplet_head(
    ctx: typer.Context,
    data: Path = TrainingDataArgument,
    out: Path = typer.Option(Path("artifacts/train/triplet-head"), "--out", "-o", help="Run folder."),
    epochs: int = typer.Option(30, "--epochs", help="Training epochs (in total, when resuming)."),
    lr: float = LrOption, batch_size: int = TripletBatchOption,
    save_interval: int = typer.Option(10, "--save-interval",
                                      help="Checkpoint every this many epochs (and at the end)."),
    resume: bool = ResumeOption,
    embedding_dim: int = typer.Option(128, "--embedding-dim", help="Length of the head's output."),
    hidden_dim: int = typer.Option(512, "--hidden-dim", help="Width of the head's hidden layer."),
    miner: str = MinerOption, margin: float = MarginOption, val_fraction: float = ValOption,
    backbone: str = typer.Option("resnet18", "--backbone", help="torchvision ResNet-family model (kept frozen)."),
    weights: Optional[Path] = BackboneWeightsOption,
    no_pretrained: bool = typer.Option(False, "--no-pretrained", help="Random backbone (for tests and demos only)."),
    image_size: int = typer.Option(224, "--image-size", help="Backbone input size."),
    views: int = typer.Option(2, "--views", help="Cached views per image: the original + augmented copies."),
    roi: str = RoiOption, seed: int = SeedOption, device: Optional[str] = DeviceOption,
    as_json: bool = JsonResultOption, patience: Optional[int] = PatienceOption,
    level: str = typer.Option("image", "--level", help="image: learn on pooled image vectors; patch: on patch "
                              "vectors (defect patches mined from image labels; for --mode patch indexes)."),
    joined: bool = typer.Option(True, "--joined/--head-only", help="Patch level: each patch vector is the "
                                "backbone's and the head's side by side (default), or the head's alone."),
) -> None:
    """Train a projection head on a frozen pretrained backbone with the triplet loss."""
    with handle_errors():
        from simsearch.data.callbacks import Callbacks
        from simsearch.embed.backbone import BackboneEmbedder
        from simsearch.embed.triplet_head import HEAD_LIMITS, LEVELS, HeadConfig
        from simsearch.errors import InputError
        from simsearch.train.tasks.triplet_head import train_triplet_head

        if level not in LEVELS:
            raise InputError(f"unknown level {level!r}", hint=f"{{param}} takes {' or '.join(LEVELS)}",
                             parameter="level")
        settings, triplet = _settings(epochs, lr, batch_size, save_interval, val_fraction, seed, miner, margin,
                                      device, patience)
        samples, counts = _samples(data)
        frozen = BackboneEmbedder(backbone, image_size=image_size, weights=weights, pretrained=not no_pretrained,
                                  device=device)
        head_config = _resumed_config(ctx, out, resume, "triplet-head", HeadConfig, HEAD_LIMITS, {
            "embedding_dim": ("embedding_dim", embedding_dim), "hidden_dim": ("hidden_dim", hidden_dim),
            "roi": ("roi", None if roi == "none" else roi), "level": ("level", level),
            "joined": ("joined", joined and level == "patch")})
        skips = SkippedInputs()
        with _training_progress(len(samples)) as (on_read, on_event):
            result = train_triplet_head(samples, frozen, out, head_config, settings, views, resume, on_event,
                                        Callbacks(progress=on_read, skip=skips), triplet)
        _report("triplet-head", result, counts, as_json, skips, data,
                _hyperparameters(settings, triplet, result, head_config))

