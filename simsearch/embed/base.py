"""The Embedder interface: images in, image vectors (N, D) and patch vectors (N, h, w, D) out."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from simsearch.data.callbacks import Callbacks
from simsearch.data.images import ImageLike
from simsearch.data.inputs import DEFAULT_WORKERS, Item, iter_batches
from simsearch.runtime import DEFAULT_BATCH_SIZE, check_batch_size

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Embeddings:
    """A batch of embeddings: one vector per image and, for patch-capable embedders, a grid per image."""

    image: np.ndarray  # (N, D) float32
    patches: np.ndarray | None = None  # (N, h, w, D) float32


class Embedder(ABC):
    """Turns RGB uint8 images (H, W, 3) into vectors.

    Subclasses set `kind`, implement `from_config` and `from_spec` and register with `@register_embedder`.
    `config` is a JSON-able dict from which `embedder_from_config` rebuilds the same embedder;
    `fingerprint` changes whenever the vectors would (architecture, preprocessing or weights), so an
    index built with one embedder refuses to be searched with another.
    """

    kind: str  # the registry key, also the config's 'kind'
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    @abstractmethod
    def from_config(cls, config: dict[str, Any], weights: str | Path | None = None, **runtime: Any) -> "Embedder":
        """Rebuild from `config`; `weights` is a moved weights file, `runtime` batch size and device."""

    @classmethod
    @abstractmethod
    def from_spec(cls, argument: str, **options: Any) -> "Embedder":
        """Build from the ARG of a `KIND:ARG` spec and the build options (weights, image size, device...)."""

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able settings that rebuild this embedder (with a 'kind' key)."""

    @property
    @abstractmethod
    def weights_digest(self) -> str:
        """A digest of the weights the vectors depend on."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length D of each vector."""

    @abstractmethod
    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        """Embed one batch of RGB uint8 arrays (sizes may differ)."""

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """The per-image part of the preprocessing (e.g. resizing), run ahead on the loader's threads; `embed`
        gives the same vectors for prepared and unprepared images. This default leaves images as they are."""
        return pixels

    @property
    def supports_patches(self) -> bool:
        return True

    def inference_module(self) -> "tuple[nn.Module, int | tuple[int, int]] | None":
        """(module, size): a torch module that takes prepared uint8 batches (N, height, width, 3) to the image and
        patch vectors `embed` gives, for `simsearch.embed.compiled` to compile; None where there is none."""
        return None

    @property
    def fingerprint(self) -> str:
        """Digest of what determines the vectors: config fields that matter plus the weights (file
        locations may change, so they are left out, at any depth)."""
        text = json.dumps(_without_locations(self.config), sort_keys=True) + self.weights_digest
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _without_locations(config: dict) -> dict:
    return {k: _without_locations(v) if isinstance(v, dict) else v for k, v in config.items()
            if k not in {"weights_path", "device", "batch_size"}}


def tensor_digest(state: dict) -> str:
    """sha256 over a state dict's tensors in key order (names, shapes and bytes)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def iter_embedded(embedder: Embedder, images: Sequence[ImageLike], callbacks: Callbacks | None = None,
                  workers: int = DEFAULT_WORKERS) -> Iterator[tuple[list[Item], Embeddings]]:
    """Embed inputs in the embedder's batches, yielding (items, embeddings) per batch; `workers` loader threads
    read and prepare the next batches while the network runs (0: all in this thread)."""
    # A batch size below 1 would make the whole input one batch: refuse it here, for every embedder.
    callbacks = callbacks or Callbacks()
    batches = iter_batches(images, check_batch_size(embedder.batch_size), callbacks, embedder.prepare, workers)
    for batch in batches:
        yield batch, embedder.embed([i.pixels for i in batch])
        callbacks.progress(len(batch))


def concat_embeddings(parts: Sequence[Embeddings]) -> Embeddings:
    """One Embeddings from several batches (patches only when every part has them)."""
    patches = [p.patches for p in parts]
    return Embeddings(np.concatenate([p.image for p in parts]),
                      None if any(p is None for p in patches) else np.concatenate(patches))
