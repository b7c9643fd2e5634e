"""The training loop both metric-learning trainers share: batches, validation, checkpoints, resume, curves."""

from __future__ import annotations

import csv
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from simsearch.data.datasets import Sample
from simsearch.embed.checkpoint import read_checkpoint, write_checkpoint
from simsearch.errors import TrainingError
from simsearch.data.splits import validation_split

LAST = "last.pt"  # the checkpoint a resumed run continues from
FINAL = "model.pt"  # the trained model, written at the end: what build-index --embedder KIND:FILE takes
HISTORY = "history.csv"
CURVES = "loss_curves.png"




@dataclass
class TrainSettings:
    """Options of a training run that do not change the model's architecture."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    save_interval: int = 5
    val_fraction: float = 0.1
    seed: int = 0
    miner: str = "batch-hard"
    margin: float = 0.2
    device: str | None = None


@dataclass
class TrainEvent:
    """What the progress callback receives after every batch."""

    stage: str  # "train" or "validate"
    epoch: int  # 1-based
    epochs: int
    step: int  # batches done in this run, over all epochs
    steps: int  # batches this run will do
    losses: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    """Where a finished run left its files, and its per-epoch history."""

    out_dir: Path
    model_path: Path
    history: list[dict[str, float]]
    epochs_run: int

    @property
    def history_path(self) -> Path:
        return self.out_dir / HISTORY

    @property
    def curves_path(self) -> Path:
        return self.out_dir / CURVES


class TrainingTask(Protocol):
    """What a trainer supplies to the loop: a model, batches, and the losses of a batch ('loss' is the total)."""

    kind: str
    model: nn.Module

    def config(self) -> dict[str, Any]: ...

    def train_batches(self, epoch: int) -> Sequence[Any]: ...

    def val_batches(self) -> Sequence[Any]: ...

    def losses(self, batch: Any) -> dict[str, torch.Tensor]: ...


OnEvent = Callable[[TrainEvent], None]

stratified_split = validation_split  # old name (benchmarks, tests)


def run_training(task: TrainingTask, settings: TrainSettings, out_dir: str | Path, resume: bool = False,
                 on_event: OnEvent | None = None) -> TrainResult:
    """Train task.model for settings.epochs with Adam; checkpoint every save_interval epochs and at the end.

    With resume=True the run continues from out_dir/last.pt (model, optimiser, history); the task's
    config must match the checkpoint's. Without it, an out_dir that already holds a run is refused.
    """
    out_dir = Path(out_dir)
    if settings.epochs < 1 or settings.save_interval < 1:
        raise TrainingError("--epochs and --save-interval must be at least 1")
    optimizer = torch.optim.Adam([p for p in task.model.parameters() if p.requires_grad], lr=settings.lr)
    history: list[dict[str, float]] = []
    start = 0
    if resume:
        state = read_checkpoint(out_dir / LAST, kind=task.kind)
        if state["config"] != task.config():
            raise TrainingError(f"{out_dir / LAST} was trained with other model settings: {state['config']}")
        task.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = settings.lr
        start, history = int(state["epoch"]), list(state["history"])
        if start >= settings.epochs:
            raise TrainingError(f"{out_dir / LAST} already has {start} epochs; ask for more with --epochs")
    elif (out_dir / LAST).exists():
        raise TrainingError(f"{out_dir} already holds a training run: pass --resume to continue it, "
                            "or choose another --out")
    train_count = len(task.train_batches(start))
    val_count = len(task.val_batches())
    steps, step = (settings.epochs - start) * (train_count + val_count), 0
    for epoch in range(start, settings.epochs):
        task.model.train()
        totals = _Totals()
        for batch in task.train_batches(epoch):
            optimizer.zero_grad(set_to_none=True)
            losses = task.losses(batch)
            losses["loss"].backward()
            optimizer.step()
            totals.add(losses)
            step += 1
            if on_event:
                on_event(TrainEvent("train", epoch + 1, settings.epochs, step, steps, totals.means()))
        row = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in totals.means().items()}}
        task.model.eval()
        val_totals = _Totals()
        with torch.no_grad():
            for batch in task.val_batches():
                val_totals.add(task.losses(batch))
                step += 1
                if on_event:
                    on_event(TrainEvent("validate", epoch + 1, settings.epochs, step, steps, val_totals.means()))
        row.update({f"val_{k}": v for k, v in val_totals.means().items()})
        history.append(row)
        write_history(out_dir / HISTORY, history)
        last_epoch = epoch + 1 == settings.epochs
        if (epoch + 1) % settings.save_interval == 0 or last_epoch:
            extra = dict(optimizer=optimizer.state_dict(), epoch=epoch + 1, history=history,
                         settings=asdict(settings))
            write_checkpoint(out_dir / LAST, task.kind, task.config(), task.model.state_dict(), **extra)
            shutil.copyfile(out_dir / LAST, out_dir / f"epoch-{epoch + 1:04d}.pt")
    shutil.copyfile(out_dir / LAST, out_dir / FINAL)
    plot_history(history, out_dir / CURVES, title=task.kind)
    return TrainResult(out_dir, out_dir / FINAL, history, settings.epochs - start)


class _Totals:
    """Running means of a batch's losses."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach())
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.sums.items()} if self.count else {}


def write_history(path: Path, history: Iterable[dict[str, float]]) -> None:
    """The per-epoch losses as CSV (one row per epoch)."""
    history = list(history)
    columns = list(dict.fromkeys(key for row in history for key in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def plot_history(history: Sequence[dict[str, float]], path: Path, title: str = "") -> None:
    """Train and validation loss curves (total and parts) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")  # files only: no display needed, safe on servers
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    names = [k for k in history[0] if k.startswith("train_")]
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        part = name.removeprefix("train_")
        axis.plot(epochs, [row[name] for row in history], marker="o", label="train")
        if f"val_{part}" in history[0]:
            axis.plot(epochs, [row.get(f"val_{part}", np.nan) for row in history], marker="o", label="validation")
        axis.set_title(f"{title} {part}".strip())
        axis.set_xlabel("epoch")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
