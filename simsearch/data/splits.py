"""Every split of labelled samples, in one place: compare's stratified k-fold (seed 001: 5 folds), one hold-out
split (seed 002: 80/20), the validation hold-out of training runs, and the `fold I/N` selection of
calibrate/evaluate/build-index. All stratify by the class key (good, or the defect type); folds count from 1."""

from __future__ import annotations

import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from simsearch.data.datasets import GOOD, DatasetError, Sample, class_ids, class_key
from simsearch.errors import InputError

DEFAULT_SEED = 0  # the one default seed of splits and training runs (compare's CLI passes seed 002's 42)
RARE = "defect:rare"  # stratum for defect types too small to spread over every part


@dataclass(frozen=True)
class Split:
    """One fold (numbered from 1): the samples to train on and the samples to test on (disjoint)."""

    fold: int
    train: list[Sample] = field(repr=False)
    test: list[Sample] = field(repr=False)

    def describe(self) -> dict:
        return {"fold": self.fold, "train": len(self.train), "test": len(self.test),
                "train_defect": sum(s.is_defect for s in self.train),
                "test_defect": sum(s.is_defect for s in self.test)}


def stratum(sample: Sample) -> str:
    """'good' or 'defect:<class key>': what the compare splits keep in proportion."""
    # The 'defect:' prefix keeps the label order (and so sklearn's fold assignment) as it always was.
    return GOOD if not sample.is_defect else f"defect:{class_key(sample)}"


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
    """Stratified k-fold, folds numbered 1..folds: every sample is tested exactly once."""
    if folds < 2:
        raise InputError("folds must be at least 2", hint="give {param} >= 2 (or use holdout_split)", parameter="folds")
    samples = _check(samples, folds)
    keys = _strata(samples, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a pooled rare stratum may still be smaller than the fold count
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(keys, keys))
    return [Split(fold, [samples[i] for i in train], [samples[i] for i in test])
            for fold, (train, test) in enumerate(parts, start=1)]


def holdout_split(samples: Sequence[Sample], test_size: float = 0.2, seed: int = DEFAULT_SEED) -> Split:
    """One stratified train/test split (seed 002: 80/20), as fold 1."""
    samples = _check(samples, 2)
    keys = _strata(samples, 2)
    train, test = train_test_split(list(range(len(samples))), test_size=test_size, random_state=seed,
                                   stratify=keys)
    return Split(1, [samples[i] for i in sorted(train)], [samples[i] for i in sorted(test)])


def validation_split(samples: Sequence[Sample], fraction: float,
                     seed: int = DEFAULT_SEED) -> tuple[list[Sample], list[Sample]]:
    """(rest, held-out fraction) for a training run's validation loss, stratified by class key."""
    from simsearch.errors import TrainingError

    samples = list(samples)
    if fraction <= 0:
        return samples, []
    labels, _ = class_ids(samples)
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None  # a single-image class cannot be split
    try:
        rest, held = train_test_split(samples, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as error:
        raise TrainingError(f"cannot hold out {fraction:.0%} of {len(samples)} images: {error}",
                            parameter="val_fraction") from None
    return rest, held


def draw_defects(samples: Sequence[Sample], count: int | None, seed: int = DEFAULT_SEED,
                 repeat: int = 0) -> list[Sample]:
    """Every good sample plus at most `count` labelled defects PER TYPE (None: all), for the learning curve.

    Seeded by (seed, repeat, type): each type's defects are put in one random order and the first `count` are
    kept, so that the draws are nested (the 1 drawn is among the 3, the 3 among the 10) and the same seed and
    repeat always draw the same files, whatever order the samples come in."""
    if count is not None and count < 0:
        raise InputError(f"a defect count must be 0 or more, not {count}", parameter="count")
    ordered = sorted(samples, key=lambda s: str(s.path))
    if count is None:
        return ordered
    by_type: dict[str, list[Sample]] = {}
    for sample in ordered:
        if sample.is_defect:
            by_type.setdefault(class_key(sample), []).append(sample)
    kept = {id(s) for s in ordered if not s.is_defect}
    for key, members in by_type.items():
        rng = np.random.default_rng([seed, repeat, zlib.crc32(key.encode("utf-8"))])
        kept.update(id(members[i]) for i in rng.permutation(len(members))[:count])
    return [s for s in ordered if id(s) in kept]


def subsample(samples: Sequence[Sample], count: int, seed: int = DEFAULT_SEED) -> list[Sample]:
    """A stratified random `count` of the samples (all of them when count >= their number), for quick runs."""
    samples = sorted(samples, key=lambda s: str(s.path))
    if count >= len(samples):
        return samples
    if count < 4:
        raise InputError(f"a subset of {count} images is too small", hint="give {param} >= 4", parameter="limit")
    keys = _strata(samples, 2)
    kept, _ = train_test_split(list(range(len(samples))), train_size=count, random_state=seed, stratify=keys)
    return [samples[i] for i in sorted(kept)]


def select_fold(samples: Sequence[Sample], fold: int, n_folds: int, seed: int = DEFAULT_SEED) -> list[Sample]:
    """Fold `fold` (1-based) of `n_folds`, stratified by class key: e.g. calibrate on fold 1/2 of a test set
    and evaluate on fold 2/2. Within a class, the i-th sample (in the given order) goes to fold i % n + 1."""
    if not 1 <= fold <= n_folds:
        raise DatasetError(f"fold must be between 1 and {n_folds}, not {fold}", parameter="fold")
    chosen: list[Sample] = []
    rng = np.random.default_rng(seed)
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(class_key(sample), []).append(sample)
    for key in sorted(groups):
        members = groups[key]
        # The permutation only reorders within the fold (then sorted away): the assignment is positional,
        # and must stay so, since published figures were computed with it.
        order = rng.permutation(len(members))
        chosen.extend(members[i] for i in order if i % n_folds == fold - 1)
    return sorted(chosen, key=lambda s: str(s.path))


def parse_fold(text: str) -> tuple[int, int]:
    """'1/2' -> (1, 2)."""
    try:
        fold, total = (int(part) for part in text.split("/"))
    except ValueError:
        raise DatasetError(f"{text!r} is not a fold", hint="give {param} as I/N, e.g. 1/2",
                           parameter="fold") from None
    if total < 1 or not 1 <= fold <= total:
        raise DatasetError(f"fold {text} does not exist", hint="{param} I/N needs 1 <= I <= N", parameter="fold")
    return fold, total
