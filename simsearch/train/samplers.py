"""Class-balanced batches: every batch holds good images and defects, so each has triplets to mine."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from simsearch.errors import InputError


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of `samples_per_class` images from each of several classes, always including `anchor_class`.

    Each class is walked in a fresh random order every epoch and recycled when it runs short, so small
    defect classes appear in every batch. Call `set_epoch` to draw that epoch's order (seeded, so a resumed
    run sees the batches it would have seen).
    """

    def __init__(self, labels: Sequence[int], batch_size: int, samples_per_class: int | None = None,
                 batches_per_epoch: int | None = None, anchor_class: int | None = 0, seed: int = 0):
        self.labels = np.asarray(labels)
        self.classes = sorted(set(self.labels.tolist()))
        if len(self.classes) < 2:
            raise InputError("triplet training needs at least two classes (good and defect images)")
        if batch_size < 4:
            raise InputError("batch size must be at least 4 for class-balanced triplet batches")
        self.samples_per_class = samples_per_class or max(2, batch_size // len(self.classes))
        self.classes_per_batch = max(2, min(len(self.classes), batch_size // self.samples_per_class))
        self.anchor_class = anchor_class if anchor_class in self.classes else None
        self.batches_per_epoch = batches_per_epoch or max(1, math.ceil(len(self.labels) / batch_size))
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        members = {c: rng.permutation(np.flatnonzero(self.labels == c)) for c in self.classes}
        cursor = {c: 0 for c in self.classes}
        others = [c for c in self.classes if c != self.anchor_class]
        for _ in range(self.batches_per_epoch):
            chosen = [] if self.anchor_class is None else [self.anchor_class]
            extra = self.classes_per_batch - len(chosen)
            chosen += list(rng.choice(others, size=min(extra, len(others)), replace=False))
            batch: list[int] = []
            for c in chosen:
                pool = members[c]
                for _ in range(self.samples_per_class):
                    if cursor[c] == len(pool):  # recycle a short class in a new order
                        members[c] = pool = rng.permutation(pool)
                        cursor[c] = 0
                    batch.append(int(pool[cursor[c]]))
                    cursor[c] += 1
            yield batch
