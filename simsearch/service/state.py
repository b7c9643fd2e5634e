"""The served index: scores read an immutable snapshot; adds and removes take the index folder's writer lock
(the one `simsearch add` takes), change the committed index, save it atomically, and only then publish it
(copy-on-write), so a score never sees half a change, an acknowledged change is on disk, and no writer
beside the server loses one. Commits made by other processes are picked up (reloaded) as they appear."""

from __future__ import annotations

import copy
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from simsearch.errors import ConflictError, InputError, SimsearchError
from simsearch.index.catalogue import Exemplar
from simsearch.index.exemplar_index import ExemplarIndex, IndexMismatchError, NewExemplar
from simsearch.index.lock import DEFAULT_WAIT
from simsearch.index.persist import update_index
from simsearch.index.storage import MANIFEST
from simsearch.inspector import Inspector
from simsearch.score.modes import describe_index
from simsearch.score.results import ScoreResult

log = logging.getLogger("simsearch.service")
T = TypeVar("T")


def carry_search_cells(index: ExemplarIndex, earlier: ExemplarIndex) -> None:
    """Give `index` (read in place of `earlier`: the same folder, a later generation) the search cells of
    `earlier`'s stores of the same role, so its first search does not train them again (searches stay exact)."""
    for role, store in index.vectors.items():
        if role in earlier.vectors:
            store.carry_cells_from(earlier.vectors[role])


@dataclass
class ScoreRequest:
    """One image to score: its RGB pixels, and whether a heatmap is drawn from its map."""

    pixels: np.ndarray
    heatmap: bool = False


class IndexState:
    """One index folder served by one process: snapshot reads, writes serialised with every other writer."""

    def __init__(self, inspector: Inspector, folder: str | Path, wait: float = DEFAULT_WAIT):
        if inspector.index_ is None:
            raise InputError("the inspector has no index: fit or load one first")
        self.folder = Path(folder)
        self.wait = wait
        self._current = inspector
        self._write_lock = threading.Lock()  # this process's writers; the folder's lock serialises the others
        self._seen = self._manifest_signature()
        # why the folder's committed index is not the one served (another embedder, damage), or None
        self.unservable: str | None = None

    @property
    def snapshot(self) -> Inspector:
        """The inspector to use for one request; never changes under it."""
        return self._current

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Score a batch of requests against the current snapshot (the same path as `simsearch score`): every
        image's map where one of them draws a heatmap, else only the rejects' (for their boxes)."""
        self.refresh()
        maps = "all" if any(request.heatmap for request in requests) else "needed"
        return self._current.score([request.pixels for request in requests], maps=maps)

    def get(self, exemplar_id: int) -> Exemplar | None:
        self.refresh()
        return self._current.index_.exemplars.get(exemplar_id)

    def add(self, pixels: np.ndarray, label: str, defect_type: str | None, source: str, sha256: str) -> Exemplar:
        """Embed one image, add it to the committed index under the folder's lock, save, publish."""
        return self.add_unless_held(pixels, label, defect_type, source, sha256, allow_duplicates=True)[0]

    def add_unless_held(self, pixels: np.ndarray, label: str, defect_type: str | None, source: str, sha256: str,
                        allow_duplicates: bool = False) -> tuple[Exemplar, bool]:
        """Like `add`, but a file (sha256) the committed index already holds is skipped, as `simsearch add`
        skips it: (the new exemplar, True), or (the exemplar holding the same file, False)."""
        held = _holding(self._current.index_, sha256)
        if allow_duplicates and held is not None and held.label != label:
            raise ConflictError(f"this image is held as exemplar #{held.id} ({held.label}); it cannot also be "
                                f"{label}: nothing was added", hint=f"relabel it: PATCH /exemplars/{held.id}")
        if not allow_duplicates and held is not None:
            return held, False  # no embedding for a file already held (checked again under the lock)
        embeddings = self._current.embedder.embed([pixels])  # outside the locks: adds embed in parallel
        item = NewExemplar(source, label, defect_type if label == "defect" else None, sha256)

        def change(index: ExemplarIndex) -> tuple[Exemplar, bool]:
            new_ids = index.add([item], embeddings.image, embeddings.patches, allow_duplicates=allow_duplicates)
            return (index.exemplars[new_ids[0]], True) if new_ids else (_holding(index, sha256), False)

        return self._commit(change)[1]

    def relabel(self, exemplar_id: int, label: str, defect_type: str | None) -> tuple[Exemplar, Exemplar]:
        """Relabel one exemplar (Inspector.relabel_change: its file embedded again outside the locks, then removed
        and added back with a new id under the folder's lock), save, publish. Returns (old, new)."""
        self.refresh()
        return self._commit(self._current.relabel_change(exemplar_id, label, defect_type))[1]

    def remove(self, exemplar_id: int) -> Exemplar:
        """Remove one exemplar, save, publish; ExemplarIndex.remove refuses unknown ids and the last good one."""
        def change(index: ExemplarIndex) -> Exemplar | None:
            exemplar = index.exemplars.get(exemplar_id)
            index.remove([exemplar_id])
            return exemplar

        return self._commit(change)[1]

    def set_threshold(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store a threshold record (under the folder's lock, on what is committed), with the generation it is
        set on; save, publish. Returns the record as stored."""
        def change(index: ExemplarIndex) -> dict[str, Any]:
            # the generation this save commits: the page warns once exemplars change after it
            index.threshold = {**record, "generation": index.generation + 1}
            return index.threshold

        return self._commit(change)[1]

    def _commit(self, change: Callable[[ExemplarIndex], T]) -> tuple[ExemplarIndex, T]:
        with self._write_lock:
            # Re-read under the folder's lock: what `simsearch add` or another server committed is kept.
            def carried_change(index: ExemplarIndex) -> T:
                # the served snapshot's search cells, carried over: no k-means at the first search after it
                carry_search_cells(index, self._current.index_)
                return change(index)

            # the served snapshot stands in for reading the folder again where nobody committed since
            index, result = update_index(self.folder, carried_change, self._current.embedder.fingerprint,
                                         self.wait, current=self._current.index_)
            self._publish(index)
            return index, result

    def _publish(self, index: ExemplarIndex) -> None:
        self.unservable = None
        published = copy.copy(self._current)
        published.index_ = index
        self._current = published  # one reference swap: readers see the old or the new snapshot, whole
        self._seen = self._manifest_signature()

    def _manifest_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.folder / MANIFEST)
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def refresh(self) -> bool:
        """Reload the index when another process committed to the folder; True when it did. One stat when
        nothing changed; a damaged outside commit keeps the current snapshot (and is logged)."""
        signature = self._manifest_signature()
        if signature == self._seen or not self._write_lock.acquire(blocking=False):
            return False  # unchanged, or our own write is running and will publish
        try:
            if signature == self._seen:
                return False
            try:
                index = ExemplarIndex.load(self.folder, fingerprint=self._current.embedder.fingerprint, fast=True)
            except SimsearchError as error:
                log.warning("not reloading %s: %s", self.folder, error)
                self._seen = signature
                # still scoring the snapshot read before, which is no longer what the folder holds: not ready
                self.unservable = (f"the index committed in {self.folder} cannot be served ({error}); this server "
                                   f"still holds generation {self._current.index_.generation}: restart it with the "
                                   "embedder the index was built with")
                return False
            self.unservable = None
            if index.generation == self._current.index_.generation:
                self._seen = signature
                return False
            carry_search_cells(index, self._current.index_)
            self._publish(index)
            self._seen = signature  # the signature read before loading: a later commit is seen next time
            log.info("reloaded %s at generation %s (changed by another writer)", self.folder, index.generation)
            return True
        finally:
            self._write_lock.release()

    def wait_for_writes(self, timeout: float | None = None) -> bool:
        """Block until no write is running (used at shutdown); False on timeout."""
        acquired = self._write_lock.acquire(timeout=-1 if timeout is None else timeout)
        if acquired:
            self._write_lock.release()
        return acquired

    def describe(self) -> dict[str, Any]:
        """The current snapshot's description (`describe_index`), with the folder it is saved to."""
        self.refresh()
        return {"index": str(self.folder), **describe_index(self._current.index_), "unservable": self.unservable}


__all__ = ["ConflictError", "IndexMismatchError", "IndexState"]


def _holding(index: ExemplarIndex, sha256: str) -> Exemplar | None:
    """The exemplar whose file has this sha256 (the lowest id), or None."""
    return next((e for _, e in sorted(index.exemplars.items()) if sha256 and e.sha256 == sha256), None)
