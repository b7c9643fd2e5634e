"""The Scorer contract: what the kNN Inspector and every baseline implement, so that `score`, `evaluate`,
`report` and `serve` take either.

scikit-learn shaped: `fit(samples)` returns self, learned state ends in `_`, and scores follow PyOD's sign
(higher = more anomalous). A similarity scorer's score is a distance; a classifier's a defect probability.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Sequence

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample
from simsearch.data.images import ImageLike
from simsearch.errors import InputError
from simsearch.score.results import ScoreResult

FAMILIES = ("similarity", "classifier")
MAP_CHOICES = ("all", "needed")  # score(maps=...): every image's anomaly map, or only the rejects' (their boxes)


def check_maps(maps: str) -> None:
    """Refuse a `maps` value that is not one of MAP_CHOICES."""
    if maps not in MAP_CHOICES:
        raise InputError(f"maps={maps!r}: expected one of {', '.join(MAP_CHOICES)}", parameter="maps")


class Scorer(ABC):
    """Fit on labelled samples, score images one ScoreResult each, save and load from a folder."""

    name: str = ""  # the registry name ('knn', 'cnn', 'cam', 'probe', ...)
    family: str = ""  # one of FAMILIES

    @abstractmethod
    def fit(self, samples: Sequence[Sample]) -> "Scorer":
        """Learn from labelled good/defect samples (with defect types where known); returns self."""

    @abstractmethod
    def iter_score(self, images: ImageLike | Sequence[ImageLike], callbacks: Callbacks | None = None,
                   maps: str = "all") -> Iterator[ScoreResult]:
        """One ScoreResult per readable image, as batches finish (unreadable ones go to callbacks.skip, the images
        done to callbacks.progress). Anomaly maps for every image (maps="all"), or where a reject's boxes need them
        ("needed": the same scores; a scorer whose maps cost nothing extra may make them all the same)."""

    def score(self, images: ImageLike | Sequence[ImageLike], callbacks: Callbacks | None = None,
              maps: str = "all") -> list[ScoreResult]:
        """Like iter_score(), as a list."""
        check_maps(maps)
        return list(self.iter_score(images, callbacks, maps))

    @property
    @abstractmethod
    def threshold_(self) -> Any:
        """The reject threshold the scorer holds (None until there is one)."""

    @abstractmethod
    def save(self, folder: str | Path) -> None:
        """Write everything `load` needs into folder."""

    @classmethod
    @abstractmethod
    def load(cls, folder: str | Path, weights: str | Path | None = None, **runtime: Any) -> "Scorer":
        """Open a scorer saved by `save`; runtime: batch_size, device."""

    def describe(self) -> dict[str, Any]:
        """The set-up in a few JSON-able fields, for reports."""
        return {"scorer": self.name, "family": self.family, "threshold": self.threshold_}
