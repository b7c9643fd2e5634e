"""A FAISS store of id-tagged vectors: L2 search (exact or of an index kind), add/remove by id, bytes for saving."""

from __future__ import annotations

import copy
import logging

import faiss
import numpy as np

from simsearch.errors import InputError
from simsearch.index.kinds import (
    EXACT,
    RECALL_TARGET,
    KindRecord,
    build,
    build_store_index,
    needs_rebuild,
    resolve,
    search_parameters,
    set_search_depth,
    stored_ids,
    stored_vectors,
    with_flat_quantizer,
)
from simsearch.index.pruned_search import (
    CellPartition,
    CellSeed,
    build_partition,
    carry_partition,
    extend_partition,
    pruned_largest_nearest,
    pruned_search,
)


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 for CPU-only builds or machines)."""
    try:
        return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    except Exception:  # a GPU build on a machine without a driver
        return 0


_GPU_RESOURCES = None
log = logging.getLogger("simsearch.index")


def _to_gpu(index: faiss.Index) -> faiss.Index:
    """The index searched on GPU 0, or the index itself (on the CPU) where FAISS has no GPU version of it."""
    global _GPU_RESOURCES
    try:
        if _GPU_RESOURCES is None:
            _GPU_RESOURCES = faiss.StandardGpuResources()
        # FAISS's GPU IVF takes only a flat coarse quantizer; on a GPU an exact pass over the centroids is
        # cheap, so the GPU copy gets one (the CPU index keeps its graph)
        return faiss.index_cpu_to_gpu(_GPU_RESOURCES, 0, with_flat_quantizer(index))
    except Exception as error:  # e.g. HNSW: no GPU version in FAISS without cuVS; the CPU search is right
        log.info("FAISS cannot search this %s index on the GPU (%s); it searches on the CPU",
                 type(faiss.downcast_index(index)).__name__, " ".join(str(error).split())[:200])
        return index


PRUNED_MIN_SIZE = 4096  # below this a flat search is already fast
# a changed store keeps its k-means cells (new vectors go to the nearest one) until its size moves by this
# factor either way from what they were trained on; then the cells no longer fit and k-means runs again
CELLS_REFIT = 1.5


class VectorStore:
    """Vectors with int64 ids in a FAISS index of some kind (see `kinds`): exact (flat L2) until a kind is
    applied; searched on a GPU when there is one, and, when exact, on a CPU through cell pruning (same
    answers, a fraction of the distances) once it is large."""

    def __init__(self, dim: int, index: faiss.Index | None = None, record: KindRecord | None = None):
        self.dim = int(dim)
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        self.record = record  # what kind was asked for and built; None: exact, no kind applied yet
        if record is not None:
            set_search_depth(self.index, record)
        self._search_index: faiss.Index | None = None
        self._partition: CellPartition | None = None
        self._seed: CellSeed | None = None  # the cells of an earlier content, carried over by the next search
        self.version = 0  # bumped by every change: what is derived from the contents can tell it is stale

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> str:
        """The FAISS factory string of the index holding the vectors (`Flat`: exact)."""
        return self.record.kind if self.record is not None else EXACT

    def _changed(self) -> None:
        self._search_index = None
        if self._partition is not None:  # keep its cells, not its vectors: carried over at the next search
            self._seed = CellSeed.of(self._partition)
        self._partition = None
        self.version += 1

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add (N, D) vectors under the given ids."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(vectors) != len(ids):
            raise InputError(f"{len(vectors)} vectors but {len(ids)} ids")
        if len(vectors):
            grown = self._partition
            self.index.add_with_ids(vectors, ids)
            self._changed()
            if grown is not None and len(self) <= grown.trained_on * CELLS_REFIT:
                # only appended: the cells grow with them now (cheaper than carrying them at the next search)
                self._partition, self._seed = extend_partition(grown, vectors, ids), None

    def remove_ids(self, ids: np.ndarray) -> int:
        """Remove the vectors with these ids; returns how many went."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return self._remove(faiss.IDSelectorBatch(ids), lambda stored: np.isin(stored, ids))

    def remove_id_range(self, low: int, high: int) -> int:
        """Remove every vector whose id lies in [low, high)."""
        return self._remove(faiss.IDSelectorRange(int(low), int(high)),
                            lambda stored: (stored >= low) & (stored < high))

    def _remove(self, selector: faiss.IDSelector, is_member) -> int:
        try:
            removed = int(self.index.remove_ids(selector))
        except RuntimeError:  # graph kinds (HNSW) cannot remove: rebuild them from what stays
            vectors, ids = self.contents()
            keep = ~is_member(ids)
            removed = int((~keep).sum())
            if removed:
                self.index = build(self.kind, self.dim, vectors[keep], [(vectors[keep], ids[keep])])
                set_search_depth(self.index, self.record)
        self._changed()
        return removed

    def ids(self) -> np.ndarray:
        return stored_ids(self.index)

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, ids) in the same order; a compressed kind (PQ) gives its decoded approximations."""
        return stored_vectors(self.index)

    def vectors(self) -> np.ndarray:
        return self.contents()[0]

    def apply_kind(self, requested: str, target: float = RECALL_TARGET) -> bool:
        """Hold the vectors in the index `requested` names (or auto's choice for their number), trained on
        them, with its search depth tuned to reach recall@1 `target` on a sample of them. Rebuilds only when
        the kind changes or the size moved 4x since the last training; returns whether it rebuilt."""
        if not needs_rebuild(self.record, requested, len(self), self.dim):
            if self.record is None or self.record.requested != requested:
                kind, note = resolve(requested, len(self), self.dim)
                self.record = KindRecord(requested, EXACT, len(self), recall_at_1=1.0, recall_at_10=1.0, note=note)
            return False
        vectors, ids = self.contents()
        old, self.index = self.index, None  # freed while the new one is built: a large store is not held twice
        self._changed()
        del old
        try:
            self.index, self.record = build_store_index(requested, vectors, ids, target)
        except BaseException:
            self.index, self.record = build(EXACT, self.dim, vectors, [(vectors, ids)]), None
            raise
        return True

    def search(self, queries: np.ndarray, k: int,
               exclude_range: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances and ids of the k nearest vectors (N, k); id -1 where there are fewer.
        Ids in exclude_range [low, high) are left out (leave-one-out scoring; CPU search)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if len(self) == 0 or k <= 0:
            return (np.full((len(queries), max(k, 0)), np.inf, np.float32),
                    np.full((len(queries), max(k, 0)), -1, np.int64))
        if exclude_range is not None:
            selector = faiss.IDSelectorNot(faiss.IDSelectorRange(int(exclude_range[0]), int(exclude_range[1])))
            squared, ids = self.index.search(queries, min(k, len(self)),
                                             params=search_parameters(self.index, selector))
        elif self.kind == EXACT and len(self) >= PRUNED_MIN_SIZE and len(queries) >= 64 and not gpu_count() and \
                (found := self._pruned(queries, min(k, len(self)))) is not None:
            squared, ids = found
        else:
            if self._search_index is None:
                self._search_index = _to_gpu(self.index) if gpu_count() else self.index
            squared, ids = self._search_index.search(queries, min(k, len(self)))
        # approximate kinds may find fewer than k: those slots are padding, never a distance
        squared = np.where(ids >= 0, squared, np.inf)
        distances = np.sqrt(np.maximum(squared, 0.0))
        if k > len(self):
            pad = k - len(self)
            distances = np.pad(distances, ((0, 0), (0, pad)), constant_values=np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return distances.astype(np.float32), ids.astype(np.int64)

    def largest_nearest(self, query_groups: np.ndarray) -> np.ndarray:
        """For query groups (N, P, D) (an image's patches): each group's largest distance from a query to its
        nearest vector (N,), as `search(..., 1)` and a max per group give; an exact CPU store searches in
        full only the queries that can hold the maximum."""
        groups = np.ascontiguousarray(query_groups, dtype=np.float32).reshape(len(query_groups), -1, self.dim)
        if self.kind == EXACT and len(self) >= PRUNED_MIN_SIZE and not gpu_count() and groups.shape[1]:
            return np.sqrt(pruned_largest_nearest(self._cells(), groups)).astype(np.float32)
        distances, _ = self.search(groups.reshape(-1, self.dim), 1)
        return distances[:, 0].reshape(len(groups), -1).max(axis=1, initial=-np.inf)

    def _cells(self) -> CellPartition:
        if self._partition is None:
            vectors, ids = self.contents()
            seed = self._seed
            if seed is not None and seed.trained_on / CELLS_REFIT <= len(ids) <= seed.trained_on * CELLS_REFIT:
                self._partition = carry_partition(seed, vectors, ids)
            else:
                self._partition = build_partition(vectors, ids)
            self._seed = None
        return self._partition

    def carry_cells_from(self, other: "VectorStore") -> None:
        """Take `other`'s search cells (an earlier state of the same bank, e.g. the index this one was loaded
        in place of) to carry over at the next search instead of training new ones; nothing when this store
        has its own or `other` has none. Searches stay exact whatever the two hold (see `carry_partition`)."""
        if self._partition is not None or self._seed is not None or other.dim != self.dim:
            return
        self._seed = CellSeed.of(other._partition) if other._partition is not None else other._seed

    def copy(self) -> "VectorStore":
        """An independent copy that keeps this store's search cells: its partition itself where it has one (the
        contents are the same, and a partition is replaced on change, never changed in place)."""
        try:
            clone = VectorStore(self.dim, faiss.clone_index(self.index), copy.deepcopy(self.record))
        except RuntimeError:  # a kind FAISS cannot clone: through its bytes
            clone = VectorStore.from_bytes(self.to_bytes(), copy.deepcopy(self.record))
        if self._partition is not None:
            clone._partition = self._partition
        else:
            clone.carry_cells_from(self)
        return clone

    def _pruned(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        return pruned_search(self._cells(), queries, k)

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, record: KindRecord | None = None) -> "VectorStore":
        """A store from `to_bytes`, trained structures and all (nothing is rebuilt at load)."""
        # deserialize_index already gives the concrete class (and owns it: downcasting again would not)
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(index.d, index, record)
