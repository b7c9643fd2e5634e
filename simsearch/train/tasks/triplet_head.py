"""Train a projection head on a frozen backbone with the triplet loss: metric learning on pretrained features.

The backbone never changes, so its image vectors are computed once per image and view (the original
and `views - 1` augmented copies) and cached in the run's folder; epochs then take seconds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from simsearch.data.datasets import Sample, class_ids
from simsearch.data.roi import apply_roi
from simsearch.data.splits import validation_split
from simsearch.data.transforms import to_uint8_arrays, to_unit_tensor
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.embed.triplet_head import HeadConfig
from simsearch.runtime import resolve_device
from simsearch.train.augment import InspectionAugment
from simsearch.train.loop import OnEvent, TrainResult, TrainSettings, run_training
from simsearch.train.tasks.common import (OnProgress, OnSkip, TripletObjective, TripletOptions, balanced_batches,
                                          read_samples)

KIND = "triplet-head"
FEATURES = "features.pt"


def view_vectors(backbone: BackboneEmbedder, image: np.ndarray, views: int, augment: InspectionAugment,
                 generator: torch.Generator, roi: str | None = None) -> torch.Tensor:
    """Backbone image vectors (views, D) of an image: as it is, then `views - 1` augmented copies."""
    image = apply_roi(image, roi)
    copies = [image]
    if views > 1:
        pixels = to_unit_tensor([image], max(image.shape[:2]), channels=3).expand(views - 1, -1, -1, -1)
        copies += to_uint8_arrays(augment(pixels, generator))
    return torch.from_numpy(backbone.embed(copies).image)


class HeadTask:
    """Cached backbone vectors; each batch draws one cached view per image."""

    kind = KIND

    def __init__(self, head_config: HeadConfig, settings: TrainSettings, train_vectors: torch.Tensor,
                 train_labels: Sequence[int], val_vectors: torch.Tensor | None, val_labels: Sequence[int],
                 triplet: TripletOptions | None = None):
        self.head_config, self.settings = head_config, settings
        self.device = resolve_device(settings.device)
        torch.manual_seed(settings.seed)
        self.model = head_config.build()
        self.model.set_standardisation(train_vectors[:, 0])
        self.model.to(self.device)
        self.objective = TripletObjective(triplet)
        self.train_vectors, self.train_labels = train_vectors, torch.tensor(list(train_labels))
        self.sampler = balanced_batches(list(train_labels), settings, settings.seed)
        self._val = []
        if val_vectors is not None and len(set(val_labels)) > 1:
            sampler = balanced_batches(list(val_labels), settings, settings.seed + 1)
            labels = torch.tensor(list(val_labels))
            self._val = [(val_vectors[rows, 0], labels[rows]) for rows in sampler]

    def config(self) -> dict[str, Any]:
        return asdict(self.head_config)

    def train_batches(self, epoch: int) -> list:
        self.sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.settings.seed * 100_003 + epoch)
        batches = []
        for rows in self.sampler:
            view = torch.randint(self.train_vectors.shape[1], (len(rows),), generator=generator)
            batches.append((self.train_vectors[rows, view], self.train_labels[rows]))
        return batches

    def val_batches(self) -> list:
        return self._val

    def losses(self, batch) -> dict[str, torch.Tensor]:
        vectors, labels = batch
        loss = self.objective(self.model(vectors.to(self.device)), labels.to(self.device))
        return {"loss": loss}


def cached_vectors(samples: Sequence[Sample], backbone: BackboneEmbedder, views: int, seed: int, roi: str | None,
                   cache: Path, on_read: OnProgress | None = None,
                   on_skip: OnSkip | None = None) -> tuple[list[Sample], torch.Tensor]:
    """(kept samples, vectors (N, views, D)); reused from `cache` when made from the same inputs."""
    key = hashlib.sha256(json.dumps([backbone.fingerprint, views, seed, roi, [str(s.path) for s in samples]])
                         .encode()).hexdigest()
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("key") == key:
            by_path = {str(s.path): s for s in samples}
            if on_read:
                on_read(len(samples))
            return [by_path[p] for p in stored["paths"]], stored["vectors"]
    augment, generator = InspectionAugment(), torch.Generator().manual_seed(seed)
    kept, vectors = read_samples(samples, lambda image: view_vectors(backbone, image, views, augment, generator, roi),
                                 on_skip, on_read)
    vectors = torch.stack(vectors)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key": key, "paths": [str(s.path) for s in kept], "vectors": vectors}, cache)
    return kept, vectors


def train_triplet_head(samples: Sequence[Sample], backbone: BackboneEmbedder, out_dir: str | Path,
                       head_config: HeadConfig | None = None, settings: TrainSettings | None = None,
                       views: int = 2, resume: bool = False, on_event: OnEvent | None = None,
                       on_read: OnProgress | None = None, on_skip: OnSkip | None = None,
                       triplet: TripletOptions | None = None) -> TrainResult:
    """Cache the backbone's vectors of a stratified train/validation split, then train the head on them."""
    head_config = head_config or HeadConfig()
    settings = settings or TrainSettings()
    head_config.backbone, head_config.in_dim = backbone.config, backbone.dim
    out_dir = Path(out_dir)
    kept, vectors = cached_vectors(samples, backbone, max(1, views), settings.seed, head_config.roi,
                                   out_dir / FEATURES, on_read, on_skip)
    position = {str(s.path): i for i, s in enumerate(kept)}
    train, val = validation_split(kept, settings.val_fraction, settings.seed)
    train_rows, val_rows = ([position[str(s.path)] for s in part] for part in (train, val))
    task = HeadTask(head_config, settings, vectors[train_rows], class_ids(train)[0],
                    vectors[val_rows] if val else None, class_ids(val)[0] if val else [], triplet)
    return run_training(task, settings, out_dir, resume, on_event)
