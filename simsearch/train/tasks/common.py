"""Pieces both trainers use: reading labelled images, the triplet objective, and class-balanced batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from pytorch_metric_learning import distances, losses

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample, count_by_class
from simsearch.data.images import ImageError, read_image
from simsearch.errors import TrainingError
from simsearch.train.loop import TrainResult, TrainSettings
from simsearch.train.samplers import ClassBalancedBatchSampler
from simsearch.train.triplets import create_miner


def read_samples(samples: Sequence[Sample], prepare: Callable[[np.ndarray], torch.Tensor],
                 callbacks: Callbacks | None = None) -> tuple[list[Sample], list]:
    """Read and prepare each sample's image; unreadable ones (and ones the ROI crop refuses) are skipped."""
    callbacks = callbacks or Callbacks()
    kept, prepared = [], []
    for sample in samples:
        try:
            prepared.append(prepare(read_image(sample.path)))
            kept.append(sample)
        except (ImageError, ValueError) as error:
            callbacks.skip(str(sample.path), str(error))
        callbacks.progress(1)
    if not kept:
        raise TrainingError("none of the training images could be read")
    return kept, prepared


@dataclass
class TripletOptions:
    """The metric-learning tasks' own options: which triplets to mine, and the margin."""

    miner: str = "batch-hard"
    margin: float = 0.2


class TripletObjective:
    """Miner + triplet margin loss (pytorch-metric-learning) over L2-normalised Euclidean distances."""

    def __init__(self, options: TripletOptions | None = None):
        options = options or TripletOptions()
        distance = distances.LpDistance(normalize_embeddings=True, p=2)
        self.miner = create_miner(options.miner, margin=options.margin, distance=distance)
        # pml's default reducer, AvgNonZeroReducer: triplets already beyond the margin do not dilute the mean
        self.loss = losses.TripletMarginLoss(margin=options.margin, distance=distance)

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def balanced_batches(labels: Sequence[int], settings: TrainSettings, seed: int) -> ClassBalancedBatchSampler:
    """A class-balanced sampler (good always in the batch) for the run's batch size."""
    if len(set(labels)) < 2:
        raise TrainingError("triplet training needs good and defect images; found only one class")
    return ClassBalancedBatchSampler(labels, settings.batch_size, anchor_class=0, seed=seed)


def with_splits(result: TrainResult, train: Sequence[Sample], val: Sequence[Sample]) -> TrainResult:
    """The result with the images per class it trained and validated on (what a training report shows)."""
    result.splits = {"training": count_by_class(train), "validation": count_by_class(val)}
    return result
