"""A FAISS store of id-tagged vectors: exact L2 search, add/remove by id, bytes for saving."""

from __future__ import annotations

import faiss
import numpy as np

from simsearch.errors import InputError
from simsearch.index.pruned_search import CellPartition, build_partition, pruned_search


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 for CPU-only builds or machines)."""
    try:
        return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
    except Exception:  # a GPU build on a machine without a driver
        return 0


_GPU_RESOURCES = None


def _to_gpu(index: faiss.Index) -> faiss.Index:
    global _GPU_RESOURCES
    try:
        if _GPU_RESOURCES is None:
            _GPU_RESOURCES = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(_GPU_RESOURCES, 0, index)
    except Exception:  # unsupported on this build: exact CPU search is still right
        return index


PRUNED_MIN_SIZE = 4096  # below this a flat search is already fast


class VectorStore:
    """Vectors with int64 ids in an exact (flat L2) FAISS index; searched on a GPU when there is one, and
    on a CPU through cell pruning (same answers, a fraction of the distances) once it is large."""

    def __init__(self, dim: int, index: faiss.Index | None = None):
        self.dim = int(dim)
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        self._search_index: faiss.Index | None = None
        self._partition: CellPartition | None = None

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def _changed(self) -> None:
        self._search_index = None
        self._partition = None

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add (N, D) vectors under the given ids."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(vectors) != len(ids):
            raise InputError(f"{len(vectors)} vectors but {len(ids)} ids")
        if len(vectors):
            self.index.add_with_ids(vectors, ids)
            self._changed()

    def remove_ids(self, ids: np.ndarray) -> int:
        """Remove the vectors with these ids; returns how many went."""
        removed = self.index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64)))
        self._changed()
        return int(removed)

    def remove_id_range(self, low: int, high: int) -> int:
        """Remove every vector whose id lies in [low, high)."""
        removed = self.index.remove_ids(faiss.IDSelectorRange(int(low), int(high)))
        self._changed()
        return int(removed)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def vectors(self) -> np.ndarray:
        return self.index.index.reconstruct_n(0, len(self)) if len(self) else np.zeros((0, self.dim), np.float32)

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
            squared, ids = self.index.search(queries, min(k, len(self)), params=faiss.SearchParameters(sel=selector))
            squared = np.where(ids >= 0, squared, np.inf)
        elif len(self) >= PRUNED_MIN_SIZE and len(queries) >= 64 and not gpu_count() and \
                (found := self._pruned(queries, min(k, len(self)))) is not None:
            squared, ids = found
        else:
            if self._search_index is None:
                self._search_index = _to_gpu(self.index) if gpu_count() else self.index
            squared, ids = self._search_index.search(queries, min(k, len(self)))
        distances = np.sqrt(np.maximum(squared, 0.0))
        if k > len(self):
            pad = k - len(self)
            distances = np.pad(distances, ((0, 0), (0, pad)), constant_values=np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return distances.astype(np.float32), ids.astype(np.int64)

    def _pruned(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        if self._partition is None:
            self._partition = build_partition(self.vectors(), self.ids())
        return pruned_search(self._partition, queries, k)

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "VectorStore":
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if not isinstance(index, faiss.IndexIDMap2):
            index = faiss.downcast_index(index)
        return cls(index.d, index)
