"""Embedding as a batch job for an executor (`simsearch.data.executors`): a batch of images in, their vectors and
what the caller keeps of each image (never its pixels) out. In this process the job runs the embedder it was
given; a copy in another process (a Ray worker) rebuilds that embedder from its config once, on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsearch.data.executors import Batch, BatchJob
from simsearch.embed.base import Embedder, Embeddings


@dataclass
class Embedded:
    """One batch's vectors and, for each readable image in input order, its position among the inputs, path (None
    for an in-memory image), size as read and (when the job was asked for them) its sha256."""

    positions: list[int]
    paths: list[str | None]
    sizes: list[tuple[int, int]]
    embeddings: Embeddings | None  # None: no readable image in the batch
    sha256: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)


class EmbedJob(BatchJob[Embedded]):
    """Embed each batch with `embedder` (`sha256`: hash each file too, as adding exemplars needs)."""

    def __init__(self, embedder: Embedder, sha256: bool = False):
        self.embedder: Embedder | None = embedder
        self.config = embedder.config
        self.batch_size = embedder.batch_size
        self.precision = getattr(embedder, "precision", "float32")
        self.sha256 = sha256

    def __getstate__(self) -> dict[str, Any]:
        # the model stays here: a copy elsewhere rebuilds it from the config (weights read from the same path)
        return {**self.__dict__, "embedder": None}

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            from simsearch.embed.registry import embedder_from_config
            from simsearch.runtime import Runtime

            runtime = Runtime(device=self.device, batch_size=self.batch_size, precision=self.precision)
            self.embedder = embedder_from_config(self.config, **runtime.embedder_options())
        return self.embedder

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        return self._embedder().prepare(pixels)

    def __call__(self, batch: Batch) -> Embedded:
        items = batch.items
        embeddings = self._embedder().embed([item.pixels for item in items]) if items else None
        return Embedded([item.position for item in items], [item.path for item in items],
                        [tuple(item.size) for item in items], embeddings,
                        [item.sha256() for item in items] if self.sha256 else None, list(batch.skipped))
