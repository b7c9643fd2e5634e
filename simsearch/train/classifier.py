"""The supervised training loop shared by the CNN and CAM baselines (seeds 000-002): weighted cross-entropy,
Adam, flip/rotation/zoom augmentation, early stop once the training accuracy reaches a target."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from simsearch.data.images import ImageLike, as_rgb_array
from simsearch.data.transforms import unit_pixels

EpochCallback = Callable[[int, float, float], None]  # (epoch, loss, training accuracy)


@dataclass
class TrainConfig:
    """Seed defaults: class weights good 1 / defect 3, Adam 1e-4, <= 10 epochs, stop at 98% training accuracy."""

    epochs: int = 10
    learning_rate: float = 1e-4
    batch_size: int = 10
    class_weights: tuple[float, float] = (1.0, 3.0)
    target_accuracy: float = 0.98
    augment: bool = True
    rotation_degrees: float = 36.0  # Keras RandomRotation(0.1) = +-0.1 of a full turn
    zoom: float = 0.1  # Keras RandomZoom(0.1)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def to_pixels(images: Sequence[ImageLike], size: int) -> torch.Tensor:
    """Images (paths, PIL, arrays) -> (N, 3, size, size) float pixels in [0, 1] (the seeds' rescaling)."""
    return unit_pixels([as_rgb_array(image) for image in images], size)


def augmentation(config: TrainConfig) -> nn.Module:
    """Seed 000's random flip, rotation and zoom, applied per image."""
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomAffine(degrees=config.rotation_degrees, scale=(1 - config.zoom, 1 + config.zoom)),
    ])


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train_classifier(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                     on_epoch: EpochCallback | None = None, frozen: nn.Module | None = None) -> list[dict]:
    """Train in place; `frozen` (a submodule without gradients) stays in eval mode so its BatchNorm keeps
    its ImageNet statistics. Returns the per-epoch history (loss, accuracy)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    weights = torch.tensor(config.class_weights, dtype=torch.float32)
    optimiser = torch.optim.Adam(trainable_parameters(model), lr=config.learning_rate)
    augment = augmentation(config) if config.augment else None
    inputs, classify = pixels, model
    if frozen is not None and augment is None and hasattr(model, "classify_frozen"):
        # Without augmentation the frozen trunk sees the same pixels every epoch: run it once.
        frozen.eval()
        with torch.no_grad():
            inputs = torch.cat([model.frozen_features(pixels[i:i + 32]) for i in range(0, len(pixels), 32)])
        classify = model.classify_frozen
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        if frozen is not None:
            frozen.eval()
        order = torch.randperm(len(inputs), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            batch = inputs[rows]
            if augment is not None:
                batch = torch.stack([augment(image) for image in batch])
            logits = classify(batch)
            loss = F.cross_entropy(logits, labels[rows], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total_loss += float(loss.detach()) * len(rows)
            correct += int((logits.argmax(dim=1) == labels[rows]).sum())
        accuracy = correct / max(len(pixels), 1)
        history.append({"epoch": epoch, "loss": total_loss / max(len(pixels), 1), "accuracy": accuracy})
        if on_epoch is not None:
            on_epoch(epoch, history[-1]["loss"], accuracy)
        if accuracy >= config.target_accuracy:
            break
    model.eval()
    return history
