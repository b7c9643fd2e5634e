"""The one training loop (metric learning and the supervised baselines alike): batches, validation, the best
epoch, early stopping, checkpoints, resume, curves."""

from __future__ import annotations

import copy
import csv
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from simsearch.data.splits import DEFAULT_SEED
from simsearch.embed.checkpoint import read_checkpoint, write_checkpoint
from simsearch.errors import TrainingError

LAST = "last.pt"  # the checkpoint a resumed run continues from
FINAL = "model.pt"  # the trained model (the best validation epoch): what build-index --embedder KIND:FILE takes
BEST = "best.pt"  # the epoch with the lowest validation loss so far
HISTORY = "history.csv"
CURVES = "loss_curves.png"




@dataclass
class TrainSettings:
    """What every training run shares; task-specific options (miner, class weights, ...) live on the task."""

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = DEFAULT_SEED
    device: str | None = None
    val_fraction: float = 0.1
    patience: int | None = None  # stop after this many epochs without a lower validation loss; None: never
    save_interval: int = 5


@dataclass
class TrainEvent:
    """What the progress callback receives after every batch."""

    stage: str  # "train" or "validate" after each batch; "epoch" once an epoch is done (losses: its row)
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
    best_epoch: int | None = None  # the epoch model.pt holds when there was a validation set
    # images per class of each part the task trained and validated on ("training", "validation"), for reports
    splits: dict[str, dict[str, int]] = field(default_factory=dict)

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

    # Optional hooks, looked up with getattr: batch_weight(batch) -> float (weight of a batch's means; 1),
    # train_mode() (what model.train() does for this task), should_stop(row) -> bool (after each epoch),
    # before_validation() (each epoch, model in eval mode, before its validation and checkpoints).


# its own hook, not a Callbacks one: a TrainEvent (stage, epoch, step, losses) is training's payload alone
OnEvent = Callable[[TrainEvent], None]


def run_training(task: TrainingTask, settings: TrainSettings, out_dir: str | Path | None = None,
                 resume: bool = False, on_event: OnEvent | None = None) -> TrainResult:
    """Train task.model for settings.epochs with Adam; leave it holding the best epoch's weights.

    With validation batches the best epoch is the one with the lowest validation loss: it is what model.pt
    holds, and `patience` epochs without improvement stop the run. Without an out_dir nothing is written
    (the baselines keep their model in memory). With resume=True the run continues from out_dir/last.pt
    (model, optimiser, history, best epoch); the task's config must match the checkpoint's. Without it, an
    out_dir that already holds a run is refused.
    """
    if settings.epochs < 1 or settings.save_interval < 1:
        raise TrainingError("epochs and save_interval must be at least 1", hint="raise {param}",
                            parameter="epochs" if settings.epochs < 1 else "save_interval")
    out = Path(out_dir) if out_dir is not None else None
    optimizer = torch.optim.Adam([p for p in task.model.parameters() if p.requires_grad], lr=settings.lr)
    history: list[dict[str, float]] = []
    start, best = 0, _Best()
    if resume:
        start, history, best = _resume(task, settings, out, optimizer)
    elif out is not None and (out / LAST).exists():
        raise TrainingError(f"{out} already holds a training run",
                            hint="pass {param} to continue it, or write to another folder", parameter="resume")
    weight = getattr(task, "batch_weight", lambda batch: 1.0)
    train_mode = getattr(task, "train_mode", task.model.train)
    should_stop = getattr(task, "should_stop", lambda row: False)
    before_validation = getattr(task, "before_validation", lambda: None)
    train_count = len(task.train_batches(start))
    val_count = len(task.val_batches())
    steps, step = (settings.epochs - start) * (train_count + val_count), 0
    epoch = start
    for epoch in range(start + 1, settings.epochs + 1):
        train_mode()
        totals = _Totals()
        for batch in task.train_batches(epoch - 1):
            optimizer.zero_grad(set_to_none=True)
            losses = task.losses(batch)
            losses["loss"].backward()
            optimizer.step()
            totals.add(losses, weight(batch))
            step += 1
            if on_event:
                on_event(TrainEvent("train", epoch, settings.epochs, step, steps, totals.means()))
        row = {"epoch": epoch, **{f"train_{k}": v for k, v in totals.means().items()}}
        task.model.eval()
        before_validation()
        val_totals = _Totals()
        with torch.no_grad():
            for batch in task.val_batches():
                val_totals.add(task.losses(batch), weight(batch))
                step += 1
                if on_event:
                    on_event(TrainEvent("validate", epoch, settings.epochs, step, steps, val_totals.means()))
        row.update({f"val_{k}": v for k, v in val_totals.means().items()})
        history.append(row)
        if on_event:
            on_event(TrainEvent("epoch", epoch, settings.epochs, step, steps, dict(row)))
        improved = "val_loss" in row and best.offer(epoch, row["val_loss"], task.model)
        stale = best.epoch is not None and settings.patience is not None and epoch - best.epoch >= settings.patience
        stop = stale or should_stop(row) or epoch == settings.epochs
        if out is not None:
            _write_epoch(task, settings, out, optimizer, epoch, history, best, improved=improved,
                         interval=epoch % settings.save_interval == 0 or stop)
        if stop:
            break
    if best.state is not None:
        task.model.load_state_dict(best.state)
    task.model.eval()
    if out is not None:
        _write_final(task, settings, out, history, best, start)
    return TrainResult(out or Path("."), (out or Path(".")) / FINAL, history, epoch - start, best.epoch)


def _resume(task: TrainingTask, settings: TrainSettings, out: Path | None,
            optimizer: torch.optim.Optimizer) -> tuple[int, list[dict[str, float]], _Best]:
    """Load out/last.pt into the task's model and the optimiser: (epochs done, history, best epoch so far)."""
    if out is None:
        raise TrainingError("resuming needs the run's folder", parameter="out_dir")
    state = read_checkpoint(out / LAST, kind=task.kind)
    stored, asked = state["config"], task.config()
    if stored != asked:
        differ = [f"{key} {stored.get(key)!r} (asked {asked.get(key)!r})"
                  for key in sorted(set(stored) | set(asked)) if stored.get(key) != asked.get(key)] \
            if isinstance(stored, dict) else [repr(stored)]
        raise TrainingError(f"{out / LAST} was trained with other model settings: {', '.join(differ)}",
                            hint="resume with the checkpoint's values (or leave those options out)")
    task.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    for group in optimizer.param_groups:
        group["lr"] = settings.lr
    start, history = int(state["epoch"]), list(state["history"])
    best = _Best(**state.get("best", {}), state=state.get("best_model"))
    if start >= settings.epochs:
        raise TrainingError(f"{out / LAST} already has {start} epochs", hint="ask for more with {param}",
                            parameter="epochs")
    return start, history, best


def _write_epoch(task: TrainingTask, settings: TrainSettings, out: Path, optimizer: torch.optim.Optimizer,
                 epoch: int, history: list[dict[str, float]], best: _Best, improved: bool, interval: bool) -> None:
    """After an epoch: the history, best.pt where it improved, last.pt and epoch-NNNN.pt at the interval."""
    write_history(out / HISTORY, history)
    extra = dict(optimizer=optimizer.state_dict(), epoch=epoch, history=history,
                 settings=asdict(settings), best=best.record())
    if improved:
        write_checkpoint(out / BEST, task.kind, task.config(), task.model.state_dict(), **extra)
    if interval:
        # last.pt carries the best weights too, so a resumed run can still hand back the best epoch.
        write_checkpoint(out / LAST, task.kind, task.config(), task.model.state_dict(),
                         best_model=best.state, **extra)
        shutil.copyfile(out / LAST, out / f"epoch-{epoch:04d}.pt")


def _write_final(task: TrainingTask, settings: TrainSettings, out: Path, history: list[dict[str, float]],
                 best: _Best, start: int) -> None:
    """model.pt (the best epoch's weights, else the last) and the loss curves."""
    if best.state is not None and best.epoch > start and (out / BEST).is_file():
        shutil.copyfile(out / BEST, out / FINAL)
    elif best.state is not None:  # the best epoch came before the resume: rebuild its checkpoint
        write_checkpoint(out / FINAL, task.kind, task.config(), best.state, epoch=best.epoch, history=history,
                         settings=asdict(settings), best=best.record())
    else:
        shutil.copyfile(out / LAST, out / FINAL)
    plot_history(history, out / CURVES, title=task.kind)


class _Best:
    """The epoch with the lowest validation loss and a copy of its weights."""

    def __init__(self, epoch: int | None = None, val_loss: float | None = None, state: dict | None = None):
        self.epoch, self.val_loss, self.state = epoch, val_loss, state

    def offer(self, epoch: int, val_loss: float, model: nn.Module) -> bool:
        if self.val_loss is not None and not val_loss < self.val_loss:
            return False
        self.epoch, self.val_loss = epoch, val_loss
        self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        return True

    def record(self) -> dict:
        return {"epoch": self.epoch, "val_loss": self.val_loss}


class _Totals:
    """Running means of a batch's losses."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0.0

    def add(self, losses: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * weight
        self.count += weight

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
