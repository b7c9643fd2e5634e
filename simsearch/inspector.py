"""The whole pipeline behind one object: images -> embedder -> vectors -> index -> scores -> verdict.

`Inspector` follows scikit-learn's shape: `fit` returns self, learned state ends in `_`
(`index_`), `score_samples` gives raw anomaly scores (higher = more anomalous, as in PyOD and
anomalib), `decision_function` the normalised score minus 0.5, and `predict` 1 for a reject, 0 for a pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from simsearch.datasets import good_image_files
from simsearch.embedder import Embedder, create_embedder, embedder_from_config
from simsearch.embedder.base import Embeddings
from simsearch.files import file_sha256
from simsearch.images import ImageError, ImageLike, iter_readable_images, list_image_files
from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
from simsearch.index.storage import read_manifest
from simsearch.maps import add_map_and_boxes
from simsearch.scoring import ScoreResult, score_embeddings
from simsearch.threshold import is_anomalous, normalise_scores

Progress = Callable[[int], None]  # called with how many more images are done
OnSkip = Callable[[str, str], None]  # called with (path, reason) for an unreadable file

FIT_CHUNK = 512  # good images embedded and coreset-reduced at a time: bounds memory on large sets


@dataclass
class _Item:
    """An input image once read: where it came from and its pixels."""

    path: str | None
    pixels: np.ndarray
    position: int  # index in the input list

    def sha256(self) -> str:
        """The file's hash, or the pixels' for in-memory images (only adding an exemplar needs it)."""
        return file_sha256(self.path) if self.path is not None else hashlib.sha256(self.pixels.tobytes()).hexdigest()


def expand_inputs(images: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    """A path, folder, PIL image, array or a list of them -> a flat list (folders walked recursively)."""
    if isinstance(images, (str, Path, Image.Image, np.ndarray)):
        images = [images]
    expanded: list[ImageLike] = []
    for image in images:
        if isinstance(image, (str, Path)):
            expanded.extend(list_image_files([image]))
        else:
            expanded.append(image)
    return expanded


def iter_items(images: Sequence[ImageLike], on_skip: OnSkip | None = None) -> Iterator[_Item]:
    """Read inputs one by one; unreadable files are reported and skipped."""
    for position, pixels in iter_readable_images(images, on_skip):
        source = images[position]
        yield _Item(str(source) if isinstance(source, (str, Path)) else None, pixels, position)


def iter_embedded(embedder: Embedder, images: Sequence[ImageLike], on_progress: Progress | None = None,
                  on_skip: OnSkip | None = None) -> Iterator[tuple[list[_Item], Embeddings]]:
    """Embed inputs in the embedder's batches, yielding (items, embeddings) per batch."""
    batch: list[_Item] = []
    for item in iter_items(images, on_skip):
        batch.append(item)
        if len(batch) == embedder.batch_size:
            yield batch, embedder.embed([i.pixels for i in batch])
            if on_progress:
                on_progress(len(batch))
            batch = []
    if batch:
        yield batch, embedder.embed([i.pixels for i in batch])
        if on_progress:
            on_progress(len(batch))


def _concat(parts: list[Embeddings]) -> Embeddings:
    patches = [p.patches for p in parts]
    return Embeddings(np.concatenate([p.image for p in parts]),
                      None if any(p is None for p in patches) else np.concatenate(patches))


class Inspector:
    """Anomaly scoring by similarity search over good (and defect) exemplars."""

    def __init__(self, embedder: Embedder | None = None, mode: str = "patch", k: int = 1,
                 coreset_ratio: float = 0.1, n_nearest: int = 3):
        self.embedder = embedder
        self.mode = mode
        self.k = k
        self.coreset_ratio = coreset_ratio
        self.n_nearest = n_nearest
        self.index_: ExemplarIndex | None = None

    # -- building ---------------------------------------------------------------------------------
    def _require_embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = create_embedder("backbone:resnet18")
        return self.embedder

    def _require_index(self) -> ExemplarIndex:
        if self.index_ is None:
            raise RuntimeError("this Inspector has no index yet: call fit() or Inspector.load()")
        return self.index_

    def fit(self, good: ImageLike | Sequence[ImageLike], defects: ImageLike | Sequence[ImageLike] | None = None,
            defect_type: str | None = None, on_progress: Progress | None = None,
            on_skip: OnSkip | None = None) -> "Inspector":
        """Build a new index from good images (paths, folders, PIL images or arrays) and optional defects."""
        embedder = self._require_embedder()
        if self.mode == "patch" and not embedder.supports_patches:
            raise ValueError("this embedder gives no patch vectors: use mode='image'")
        good_inputs = _expand_good(good)
        if not good_inputs:
            raise ImageError("no good images found to build the index from")
        self.index_ = ExemplarIndex(embedder.dim, embedder.config, embedder.fingerprint, self.mode, self.k,
                                    self.coreset_ratio)
        readable = 0
        for start in range(0, len(good_inputs), FIT_CHUNK):
            chunk = good_inputs[start:start + FIT_CHUNK]
            try:
                self.add(chunk, "good", on_progress=on_progress, on_skip=on_skip)
                readable += 1
            except ImageError:
                if len(good_inputs) == 1:
                    raise
        if readable == 0:
            raise ImageError(f"none of the {len(good_inputs)} good inputs could be read as an image")
        if defects is not None:
            self.add(defects, "defect", defect_type=defect_type, on_progress=on_progress, on_skip=on_skip)
        return self

    def add(self, images: ImageLike | Sequence[ImageLike], label: str = "good", defect_type: str | None = None,
            defect_types: Sequence[str | None] | None = None, on_progress: Progress | None = None,
            on_skip: OnSkip | None = None) -> list[int]:
        """Embed and add exemplars; returns their ids. The index changes only once all are embedded."""
        embedder = self._require_embedder()
        index = self._require_index()
        inputs = expand_inputs(images)
        if defect_types is not None and len(defect_types) != len(inputs):
            raise ValueError(f"{len(defect_types)} defect types for {len(inputs)} images")
        new: list[NewExemplar] = []
        parts: list[Embeddings] = []
        for batch, embeddings in iter_embedded(embedder, inputs, on_progress, on_skip):
            for item in batch:  # keep what the catalogue needs, not the pixels
                sha = item.sha256()
                kind = defect_types[item.position] if defect_types is not None else defect_type
                new.append(NewExemplar(item.path or f"<array {sha[:12]}>", label, kind, sha))
            parts.append(embeddings)
        if not new:
            raise ImageError("nothing to add: no readable image")
        embeddings = _concat(parts)
        return index.add(new, embeddings.image, embeddings.patches)

    def remove(self, ids: Sequence[int]) -> None:
        """Remove exemplars by id."""
        self._require_index().remove(ids)

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, images: ImageLike | Sequence[ImageLike], on_progress: Progress | None = None,
              on_skip: OnSkip | None = None) -> list[ScoreResult]:
        """Score images: raw and normalised score, verdict (once a threshold exists), nearest exemplars."""
        return list(self.iter_score(images, on_progress, on_skip))

    def iter_score(self, images: ImageLike | Sequence[ImageLike], on_progress: Progress | None = None,
                   on_skip: OnSkip | None = None) -> Iterator[ScoreResult]:
        """Like score(), one result at a time as batches finish."""
        index = self._require_index()
        embedder = self._require_embedder()
        for batch, embeddings in iter_embedded(embedder, expand_inputs(images), on_progress, on_skip):
            results = score_embeddings(index, embeddings, [i.path for i in batch], self.n_nearest)
            for item, result in zip(batch, results):
                result.image_size = item.pixels.shape[:2]
                self._apply_threshold(result)
                yield result

    def _apply_threshold(self, result: ScoreResult) -> None:
        threshold = self.index_.threshold if self.index_ is not None else None
        if threshold:
            result.normalised_score = float(normalise_scores([result.score], threshold)[0])
            result.is_anomaly = bool(is_anomalous([result.score], threshold)[0])
        add_map_and_boxes(result, threshold)

    def score_samples(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Raw anomaly scores, higher = more anomalous."""
        return np.array([r.score for r in self.score(images)])

    def _threshold(self) -> dict:
        threshold = self._require_index().threshold
        if not threshold:
            raise RuntimeError("no threshold yet: run `simsearch calibrate` (or Inspector.calibrate) first")
        return threshold

    def decision_function(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """Normalised score minus 0.5: positive means reject."""
        return normalise_scores(self.score_samples(images), self._threshold()) - 0.5

    def predict(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """1 for images at or above the threshold (reject), 0 otherwise."""
        return is_anomalous(self.score_samples(images), self._threshold()).astype(int)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the index (atomically) to a folder."""
        self._require_index().save(folder)

    @classmethod
    def load(cls, folder: str | Path, weights: str | Path | None = None, embedder: Embedder | None = None,
             n_nearest: int = 3, **runtime) -> "Inspector":
        """Open a saved index with the embedder it was built with (refusing any other)."""
        manifest = read_manifest(folder)
        if embedder is None:
            embedder = embedder_from_config(manifest.get("embedder", {}).get("config", {}), weights=weights, **runtime)
        index = ExemplarIndex.load(folder, fingerprint=embedder.fingerprint)
        inspector = cls(embedder, index.mode, index.k, index.coreset_ratio, n_nearest)
        inspector.index_ = index
        return inspector


def _expand_good(good: ImageLike | Sequence[ImageLike]) -> list[ImageLike]:
    items = [good] if isinstance(good, (str, Path, Image.Image, np.ndarray)) else list(good)
    paths = [i for i in items if isinstance(i, (str, Path))]
    others = [i for i in items if not isinstance(i, (str, Path))]
    return list(good_image_files(paths)) + others if paths else others
