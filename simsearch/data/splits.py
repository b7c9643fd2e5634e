"""Train/test splits shared by every compared method: stratified by defect type, fixed seed, k-fold
(seed 001: 5 folds) or one hold-out split (seed 002: 80/20). Splits are plain lists of Sample."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sklearn.model_selection import StratifiedKFold, train_test_split

from simsearch.data.datasets import (
    GOOD,
    DatasetError,
    Sample,
    discover_samples,
    mvtec_good_folder,
)
from simsearch.data.images import list_image_files
from simsearch.errors import InputError

DEFAULT_SEED = 42  # seed 002's random_state
RARE = "defect:rare"  # stratum for defect types too small to spread over every part


@dataclass(frozen=True)
class Split:
    """One fold: the samples to train on and the samples to test on (disjoint)."""

    fold: int
    train: list[Sample] = field(repr=False)
    test: list[Sample] = field(repr=False)

    @property
    def train_good(self) -> list[Sample]:
        """What kNN indexes: the good images of the training part."""
        return [s for s in self.train if not s.is_defect]

    def describe(self) -> dict:
        return {"fold": self.fold, "train": len(self.train), "test": len(self.test),
                "train_defect": sum(s.is_defect for s in self.train),
                "test_defect": sum(s.is_defect for s in self.test)}


def stratum(sample: Sample) -> str:
    """'good', or the defect type ('defect' when untyped): what the splits keep in proportion."""
    return GOOD if not sample.is_defect else f"defect:{sample.defect_type or 'defect'}"


def _strata(samples: Sequence[Sample], minimum: int) -> list[str]:
    """Strata with fewer than `minimum` members are pooled, so every part still gets some of them."""
    keys = [stratum(s) for s in samples]
    counts = Counter(keys)
    return [k if counts[k] >= minimum else RARE for k in keys]


def _check(samples: Sequence[Sample], parts: int) -> list[Sample]:
    samples = sorted(samples, key=lambda s: str(s.path))  # the order of discovery must not change the split
    defects = sum(s.is_defect for s in samples)
    if defects < parts or len(samples) - defects < parts:
        raise DatasetError(f"{parts} parts need at least {parts} good and {parts} defect images; "
                           f"found {len(samples) - defects} good and {defects} defect")
    return samples


def kfold_splits(samples: Sequence[Sample], folds: int = 5, seed: int = DEFAULT_SEED) -> list[Split]:
    """Stratified k-fold: every sample is tested exactly once."""
    if folds < 2:
        raise InputError("folds must be at least 2 (use holdout_split for one split)")
    samples = _check(samples, folds)
    keys = _strata(samples, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a pooled rare stratum may still be smaller than the fold count
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(keys, keys))
    return [Split(fold, [samples[i] for i in train], [samples[i] for i in test])
            for fold, (train, test) in enumerate(parts)]


def holdout_split(samples: Sequence[Sample], test_size: float = 0.2, seed: int = DEFAULT_SEED) -> Split:
    """One stratified train/test split (seed 002: 80/20)."""
    samples = _check(samples, 2)
    keys = _strata(samples, 2)
    train, test = train_test_split(list(range(len(samples))), test_size=test_size, random_state=seed,
                                   stratify=keys)
    return Split(0, [samples[i] for i in sorted(train)], [samples[i] for i in sorted(test)])


def comparison_samples(root: str | Path) -> list[Sample]:
    """All labelled images of a data set; for an MVTec category, train/good joins test/ in the pool
    (as seeds 001/002 do: the test defects are then split between training and testing)."""
    samples = discover_samples(root)
    good = mvtec_good_folder(Path(root)) if Path(root).is_dir() else None
    if good is not None:
        samples = [Sample(path, GOOD) for path in list_image_files([good])] + samples
    return samples
