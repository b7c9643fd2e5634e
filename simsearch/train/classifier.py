"""The CNN and CAM baselines' training (seeds 000-002), run by the one training loop as a ClassificationTask.

TrainConfig is the flat record the baselines save in baseline.json (its keys are the saved format); it splits
into the run's TrainSettings and the task's ClassifierOptions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import torch
from torch import nn

from simsearch.data.images import ImageLike, as_rgb_array
from simsearch.data.transforms import ImageSize, unit_pixels
from simsearch.train.loop import TrainEvent, TrainSettings, run_training
from simsearch.train.tasks.classify import ClassificationTask, ClassifierOptions, augmentation, classifier_settings

# (epoch, loss, training accuracy): its own hook, not a Callbacks one, for training's own payload
EpochCallback = Callable[[int, float, float], None]
_DEFAULTS, _OPTIONS = classifier_settings(), ClassifierOptions()


@dataclass
class TrainConfig:
    """The baselines' saved training record; defaults are the classification task's (the seeds')."""

    epochs: int = _DEFAULTS.epochs
    learning_rate: float = _DEFAULTS.lr
    batch_size: int = _DEFAULTS.batch_size
    class_weights: tuple[float, float] = _OPTIONS.class_weights
    target_accuracy: float = _OPTIONS.target_accuracy
    augment: bool = _OPTIONS.augment
    rotation_degrees: float = _OPTIONS.rotation_degrees
    zoom: float = _OPTIONS.zoom
    seed: int = _DEFAULTS.seed

    def to_dict(self) -> dict:
        return asdict(self)

    def settings(self, device: str | None = None) -> TrainSettings:
        return classifier_settings(epochs=self.epochs, lr=self.learning_rate, batch_size=self.batch_size,
                                   seed=self.seed, device=device)

    def options(self) -> ClassifierOptions:
        return ClassifierOptions(tuple(self.class_weights), self.target_accuracy, self.augment,
                                 self.rotation_degrees, self.zoom)


def to_pixels(images: Sequence[ImageLike], size: ImageSize) -> torch.Tensor:
    """Images (paths, PIL, arrays) -> (N, 3, height, width) float pixels in [0, 1] (the seeds' rescaling)."""
    return unit_pixels([as_rgb_array(image) for image in images], size)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train_classifier(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                     on_epoch: EpochCallback | None = None, frozen: nn.Module | None = None,
                     validation: tuple[torch.Tensor, torch.Tensor] | None = None,
                     patience: int | None = None) -> list[dict]:
    """Train in place through the training loop; returns the per-epoch history (epoch, loss, accuracy, and
    val_loss, val_accuracy with a validation set). With `validation` (pixels, labels) the model ends holding
    the epoch of lowest validation loss, and `patience` epochs without a lower one stop the run."""
    settings = replace(config.settings(), patience=patience if validation is not None else None)
    task = ClassificationTask(model, pixels, labels, settings, config.options(), frozen, validation)

    def on_event(event: TrainEvent) -> None:
        if on_epoch is not None and event.stage == "epoch":
            on_epoch(event.epoch, event.losses["train_loss"], event.losses["train_accuracy"])

    result = run_training(task, settings, None, on_event=on_event)
    history = [{"epoch": int(row["epoch"]), "loss": row["train_loss"], "accuracy": row["train_accuracy"],
                **({"val_loss": row["val_loss"], "val_accuracy": row["val_accuracy"]} if "val_loss" in row else {})}
               for row in result.history]
    return history


__all__ = ["EpochCallback", "TrainConfig", "augmentation", "to_pixels", "train_classifier", "trainable_parameters"]
