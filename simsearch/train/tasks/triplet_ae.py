"""Train the triplet-loss autoencoder: reconstruction + weight x triplet margin loss on its embedding."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample, class_ids
from simsearch.data.splits import validation_split
from simsearch.embed.triplet_ae import AutoencoderConfig
from simsearch.runtime import resolve_device
from simsearch.train.augment import InspectionAugment
from simsearch.train.loop import OnEvent, TrainResult, TrainSettings, run_training
from simsearch.train.tasks.common import (
    TripletObjective,
    TripletOptions,
    balanced_batches,
    read_samples,
    with_splits,
)

KIND = "triplet-ae"


class AutoencoderTask:
    """Images held in memory at the model's size; augmented on-line each batch."""

    kind = KIND

    def __init__(self, model_config: AutoencoderConfig, settings: TrainSettings, train: Sequence[Sample],
                 train_pixels: list[torch.Tensor], val: Sequence[Sample], val_pixels: list[torch.Tensor],
                 augment: InspectionAugment | None = None, triplet: TripletOptions | None = None):
        self.model_config = model_config
        self.settings = settings
        self.device = resolve_device(settings.device)
        torch.manual_seed(settings.seed)
        self.model = model_config.build().to(self.device)
        self.objective = TripletObjective(triplet)
        self.augment = augment or InspectionAugment()
        self.train_pixels = torch.stack(train_pixels)
        self.train_labels = torch.tensor(class_ids(train)[0])
        self.sampler = balanced_batches(self.train_labels.tolist(), settings, settings.seed)
        self.val_pixels = torch.stack(val_pixels) if val_pixels else None
        self.val_labels = torch.tensor(class_ids(val)[0]) if val_pixels else None
        self._val_batches = self._fixed_val_batches()

    def config(self) -> dict[str, Any]:
        return asdict(self.model_config)

    def train_batches(self, epoch: int) -> list:
        self.sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.settings.seed * 100_003 + epoch)
        return [_Batch(self.train_pixels, self.train_labels, rows, self.augment, generator) for rows in self.sampler]

    def _fixed_val_batches(self) -> list:
        if self.val_pixels is None:
            return []
        labels = self.val_labels.tolist()
        if len(set(labels)) < 2:  # no triplets possible: still report the reconstruction loss
            size = self.settings.batch_size
            return [_Batch(self.val_pixels, self.val_labels, list(range(i, min(i + size, len(labels)))))
                    for i in range(0, len(labels), size)]
        sampler = balanced_batches(labels, self.settings, seed=self.settings.seed + 1)
        return [_Batch(self.val_pixels, self.val_labels, rows) for rows in sampler]

    def val_batches(self) -> list:
        return self._val_batches

    def losses(self, batch: "_Batch") -> dict[str, torch.Tensor]:
        pixels, labels = batch.tensors(self.device)
        embedding, reconstruction = self.model(pixels)
        reconstruction_loss = F.mse_loss(reconstruction, pixels)
        triplet_loss = self.objective(embedding, labels)
        total = reconstruction_loss + self.model_config.triplet_weight * triplet_loss
        return {"loss": total, "reconstruction": reconstruction_loss, "triplet": triplet_loss}


class _Batch:
    """Rows of the in-memory set; augmented (with the epoch's generator) when it is drawn."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, rows: list[int],
                 augment: InspectionAugment | None = None, generator: torch.Generator | None = None):
        self.pixels, self.labels, self.rows = pixels, labels, rows
        self.augment, self.generator = augment, generator

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = self.pixels[self.rows]
        if self.augment is not None:
            pixels = self.augment(pixels, self.generator)
        return pixels.to(device), self.labels[self.rows].to(device)


def train_triplet_ae(samples: Sequence[Sample], out_dir: str | Path, model_config: AutoencoderConfig | None = None,
                     settings: TrainSettings | None = None, resume: bool = False, on_event: OnEvent | None = None,
                     callbacks: Callbacks | None = None, triplet: TripletOptions | None = None) -> TrainResult:
    """Split off a stratified validation set, read the images (each told to callbacks.progress, the unreadable
    ones to callbacks.skip), and train; returns where the model went. `on_event`: the training loop's events (a
    TrainEvent each, not a Callbacks hook)."""
    model_config = model_config or AutoencoderConfig()
    settings = settings or TrainSettings()
    model_config.build()  # fail on a bad architecture before reading any image
    train, val = validation_split(samples, settings.val_fraction, settings.seed)
    train, train_pixels = read_samples(train, model_config.prepare, callbacks)
    val, val_pixels = read_samples(val, model_config.prepare, callbacks) if val else ([], [])
    task = AutoencoderTask(model_config, settings, train, train_pixels, val, val_pixels, triplet=triplet)
    return with_splits(run_training(task, settings, out_dir, resume, on_event), train, val)
