"""Supervised good/defect classification as a TrainingTask (the CNN and CAM baselines, seeds 000-002):
weighted cross-entropy, flip/rotation/zoom augmentation, stop once the training accuracy reaches a target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from simsearch.train.loop import TrainSettings


@dataclass
class ClassifierOptions:
    """The classification task's own options (seed defaults: good 1 / defect 3, stop at 98% accuracy)."""

    class_weights: tuple[float, float] = (1.0, 3.0)
    target_accuracy: float = 0.98
    augment: bool = True
    rotation_degrees: float = 36.0  # Keras RandomRotation(0.1) = +-0.1 of a full turn
    zoom: float = 0.1  # Keras RandomZoom(0.1)


def classifier_settings(**changes: Any) -> TrainSettings:
    """The seeds' run settings: Adam 1e-4, batches of 10, <= 10 epochs, no validation hold-out."""
    return TrainSettings(**{"epochs": 10, "lr": 1e-4, "batch_size": 10, "val_fraction": 0.0, **changes})


def augmentation(options: ClassifierOptions) -> nn.Module:
    """Seed 000's random flip, rotation and zoom, applied per image."""
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomAffine(degrees=options.rotation_degrees, scale=(1 - options.zoom, 1 + options.zoom)),
    ])


class ClassificationTask:
    """Pixels in memory, shuffled each epoch by a seeded generator; `frozen` (a submodule without gradients)
    stays in eval mode so its BatchNorm keeps its ImageNet statistics."""

    kind = "classifier"

    def __init__(self, model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, settings: TrainSettings,
                 options: ClassifierOptions | None = None, frozen: nn.Module | None = None,
                 validation: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.options = options or ClassifierOptions()
        self.model, self.labels, self.frozen = model, labels, frozen
        self.batch_size = settings.batch_size
        torch.manual_seed(settings.seed)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.weights = torch.tensor(self.options.class_weights, dtype=torch.float32, device=labels.device)
        self.augment = augmentation(self.options) if self.options.augment else None
        self.inputs, self.classify = pixels, model
        # Validation pixels and labels: the loop's validation loss picks the best epoch and stops early.
        self.val_inputs, self.val_labels = validation if validation is not None else (None, None)
        if frozen is not None and self.augment is None and hasattr(model, "classify_frozen"):
            # Without augmentation the frozen trunk sees the same pixels every epoch: run it once.
            frozen.eval()
            with torch.no_grad():
                self.inputs = torch.cat([model.frozen_features(pixels[i:i + 32]) for i in range(0, len(pixels), 32)])
                if self.val_inputs is not None:
                    self.val_inputs = torch.cat([model.frozen_features(self.val_inputs[i:i + 32])
                                                 for i in range(0, len(self.val_inputs), 32)])
            self.classify = model.classify_frozen
        self._orders: list[torch.Tensor] = []  # drawn in epoch order, so asking twice draws nothing new

    def config(self) -> dict[str, Any]:
        return {"options": self.options.__dict__}

    def train_mode(self) -> None:
        self.model.train()
        if self.frozen is not None:
            self.frozen.eval()

    def train_batches(self, epoch: int) -> list[torch.Tensor]:
        while len(self._orders) <= epoch:
            self._orders.append(torch.randperm(len(self.inputs), generator=self.generator))
        order = self._orders[epoch]
        return [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def val_batches(self) -> list:
        if self.val_inputs is None:
            return []
        rows = torch.arange(len(self.val_inputs))
        return [_ValidationRows(rows[start:start + self.batch_size]) for start in range(0, len(rows), self.batch_size)]

    def batch_weight(self, rows: torch.Tensor) -> float:
        return float(len(rows))  # means over images, not batches: the accuracy is correct / N

    def losses(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(rows, _ValidationRows):  # never augmented
            batch, labels = self.val_inputs[rows.rows], self.val_labels[rows.rows]
        else:
            batch, labels = self.inputs[rows], self.labels[rows]
            if self.augment is not None:
                batch = torch.stack([self.augment(image) for image in batch])
        logits = self.classify(batch)
        loss = F.cross_entropy(logits, labels, weight=self.weights)
        # float64: exact counts
        return {"loss": loss, "accuracy": (logits.argmax(dim=1) == labels).double().mean().detach()}

    def should_stop(self, row: dict[str, float]) -> bool:
        return row["train_accuracy"] >= self.options.target_accuracy


class _ValidationRows:
    """Rows of the validation set (a batch the task must not take from the training set)."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)
