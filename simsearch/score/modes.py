"""Scoring modes: how an image's embeddings and the index become an anomaly score (higher = more
anomalous, PyOD's sign). A mode is one class and one registry entry; the index records its name."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from simsearch.embed.base import Embeddings
from simsearch.errors import IndexProblem, InputError, UnknownComponentError
from simsearch.index.exemplar_index import ExemplarIndex

SCORING_MODES: dict[str, type["ScoringMode"]] = {}


def register_scoring_mode(cls: type["ScoringMode"]) -> type["ScoringMode"]:
    """Class decorator: make a scoring mode available by its `name`."""
    SCORING_MODES[cls.name] = cls
    return cls


def get_scoring_mode(name: str) -> "ScoringMode":
    """The registered scoring mode called `name`."""
    if name not in SCORING_MODES:
        raise UnknownComponentError(f"unknown scoring mode {name!r}; known: {', '.join(sorted(SCORING_MODES))}",
                                    hint="choose one of them for {param}", parameter="mode")
    return SCORING_MODES[name]()


class ScoringMode(ABC):
    """Embeddings + index -> raw image scores (N,) and, where the mode has them, patch maps (N, h, w)."""

    name: str = ""
    needs_patches: bool = False  # the embedder must give patch vectors, and the index keeps a patch bank

    @abstractmethod
    def score(self, index: ExemplarIndex, embeddings: Embeddings,
              exclude: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores of a batch; with `exclude`, exemplar `exclude` is left out (leave-one-out)."""


@register_scoring_mode
class ImageMode(ScoringMode):
    """Mean distance of the image vector to its k nearest good exemplars."""

    name = "image"
    needs_patches = False

    def score(self, index, embeddings, exclude=None):
        distances, _ = index.nearest_good(embeddings.image, index.k, exclude=exclude)
        return distances.mean(axis=1), None


@register_scoring_mode
class PatchMode(ScoringMode):
    """PatchCore: each patch's distance to the nearest good patches; the image score is the largest."""

    name = "patch"
    needs_patches = True

    def score(self, index, embeddings, exclude=None):
        if embeddings.patches is None:
            raise InputError("patch mode needs patch vectors, and this embedder gives none",
                             hint="use the image mode for {param}", parameter="mode")
        maps, _ = index.nearest_patches(embeddings.patches, index.k, exclude=exclude)
        return maps.reshape(len(maps), -1).max(axis=1), maps


def anomaly_scores(index: ExemplarIndex, embeddings: Embeddings,
                   exclude: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw image scores (N,) and patch maps (N, h, w) or None, by the index's scoring mode."""
    if len(index.good) == 0:
        raise IndexProblem("the index holds no good exemplars to score against", hint="add good exemplars first")
    return get_scoring_mode(index.mode).score(index, embeddings, exclude)
