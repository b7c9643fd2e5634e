"""The served index: scores read an immutable snapshot; adds and removes build the next snapshot under a
lock, save it atomically, and only then publish it (copy-on-write), so a score never sees half a change
and an acknowledged change is on disk."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from simsearch.errors import ConflictError, InputError
from simsearch.index.catalogue import Exemplar
from simsearch.index.exemplar_index import ExemplarIndex, IndexMismatchError, NewExemplar
from simsearch.index.storage import read_manifest
from simsearch.index.vectors import VectorStore
from simsearch.inspector import Inspector
from simsearch.score.results import ScoreResult


def _clone_store(store: VectorStore | None) -> VectorStore | None:
    return None if store is None else VectorStore.from_bytes(store.to_bytes())


def clone_index(index: ExemplarIndex) -> ExemplarIndex:
    """An independent copy of an index (vectors, catalogue, threshold) to change without touching the original."""
    clone = copy.copy(index)
    clone.good = _clone_store(index.good)
    clone.defect = _clone_store(index.defect)
    clone.patches = _clone_store(index.patches)
    clone.exemplars = dict(index.exemplars)
    clone.threshold = copy.deepcopy(index.threshold)
    return clone


class IndexState:
    """One index folder served by one process: snapshot reads, serialised atomic writes."""

    def __init__(self, inspector: Inspector, folder: str | Path):
        if inspector.index_ is None:
            raise InputError("the inspector has no index: fit or load one first")
        self.folder = Path(folder)
        self._current = inspector
        self._write_lock = threading.Lock()

    @property
    def snapshot(self) -> Inspector:
        """The inspector to use for one request; never changes under it."""
        return self._current

    def score(self, images: Sequence[np.ndarray]) -> list[ScoreResult]:
        """Score RGB arrays against the current snapshot (the same path as `simsearch score`)."""
        return self._current.score(list(images))

    def get(self, exemplar_id: int) -> Exemplar | None:
        return self._current.index_.exemplars.get(exemplar_id)

    def add(self, pixels: np.ndarray, label: str, defect_type: str | None, source: str, sha256: str) -> Exemplar:
        """Embed one image, add it, save the index, publish; returns the stored exemplar."""
        embedder = self._current.embedder
        embeddings = embedder.embed([pixels])  # outside the lock: adds embed in parallel with everything
        with self._write_lock:
            index = clone_index(self._current.index_)
            [new_id] = index.add([NewExemplar(source, label, defect_type if label == "defect" else None, sha256)],
                                 embeddings.image, embeddings.patches)
            self._commit(index)
            return index.exemplars[new_id]

    def remove(self, exemplar_id: int) -> Exemplar:
        """Remove one exemplar, save, publish; ExemplarIndex.remove refuses unknown ids and the last good one."""
        with self._write_lock:
            exemplar = self._current.index_.exemplars.get(exemplar_id)
            index = clone_index(self._current.index_)
            index.remove([exemplar_id])
            self._commit(index)
            return exemplar

    def _check_folder_unchanged(self) -> None:
        on_disk = read_manifest(self.folder).get("generation", 0) if (self.folder / "manifest.json").is_file() else 0
        if int(on_disk) != self._current.index_.generation:
            raise ConflictError(f"{self.folder} was changed by another writer (generation {on_disk}, this server "
                                f"holds {self._current.index_.generation}); restart the server to pick it up")

    def _commit(self, index: ExemplarIndex) -> None:
        self._check_folder_unchanged()  # never overwrite what `simsearch add` or another server wrote
        index.save(self.folder)  # atomic: a crash before the rename leaves the previous generation
        published = copy.copy(self._current)
        published.index_ = index
        self._current = published  # one reference swap: readers see the old or the new snapshot, whole

    def wait_for_writes(self, timeout: float | None = None) -> bool:
        """Block until no write is running (used at shutdown); False on timeout."""
        acquired = self._write_lock.acquire(timeout=-1 if timeout is None else timeout)
        if acquired:
            self._write_lock.release()
        return acquired

    def describe(self) -> dict[str, Any]:
        """The current snapshot's ExemplarIndex.describe(), with the folder it is saved to."""
        return {"index": str(self.folder), **self._current.index_.describe()}


__all__ = ["ConflictError", "IndexMismatchError", "IndexState", "clone_index"]
