"""Exact k-nearest-neighbour search that skips most of the bank: vectors are grouped into k-means cells, and
a cell is searched for a query only if the triangle inequality allows it to hold something closer than
the k-th neighbour already found (|q - centroid| - radius < bound). Same answers as a flat search; on
PatchCore patch banks it computes a small fraction of the distances. `pruned_largest_nearest` answers only
what an image score needs, the largest nearest distance among each image's patches, with fewer still. A
changed bank keeps its cells (`carry_partition`): k-means runs again only once the bank's size moved far."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

SLACK = 1e-4  # relative margin on the bound, so float rounding can never prune a true neighbour
MAX_WORK = 0.3  # past this share of all distances, one flat search is cheaper than many small ones


@dataclass
class CellPartition:
    """Vectors sorted by k-means cell, with each cell's centroid, radius and slice."""

    vectors: np.ndarray  # (N, D) sorted by cell
    squared_norms: np.ndarray  # (N,)
    ids: np.ndarray  # (N,) the external ids, in the same order
    centroids: np.ndarray  # (C, D)
    radius: np.ndarray  # (C,)
    starts: np.ndarray  # (C,)
    ends: np.ndarray  # (C,)
    trained_on: int = 0  # how many vectors the k-means centroids were trained on (carried partitions keep it)


@dataclass(frozen=True)
class CellSeed:
    """What a changed bank keeps of its partition to carry it over: the centroids and each id's cell, not the
    vectors (a few bytes per vector)."""

    centroids: np.ndarray  # (C, D)
    ids: np.ndarray  # (N,) sorted
    cells: np.ndarray  # (N,) the cell of each id
    trained_on: int

    @classmethod
    def of(cls, part: CellPartition) -> "CellSeed":
        cells = np.repeat(np.arange(len(part.starts)), part.ends - part.starts)
        order = np.argsort(part.ids, kind="stable")
        return cls(part.centroids, part.ids[order], cells[order], part.trained_on)


def build_partition(vectors: np.ndarray, ids: np.ndarray, points_per_cell: int = 64, seed: int = 0) -> CellPartition:
    """Group vectors into about N / points_per_cell k-means cells."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n_cells = int(np.clip(len(vectors) // points_per_cell, 1, 1024))
    kmeans = faiss.Kmeans(vectors.shape[1], n_cells, niter=10, seed=seed, max_points_per_centroid=128)
    kmeans.train(vectors)
    _, assign = kmeans.index.search(vectors, 1)
    return _partition(vectors, np.asarray(ids), kmeans.centroids, assign[:, 0], len(vectors))


def carry_partition(seed: CellSeed, vectors: np.ndarray, ids: np.ndarray) -> CellPartition:
    """The partition of a changed bank (vectors, ids) on an earlier partition's centroids, without k-means:
    a vector whose id the seed holds goes back to that id's cell, any other to its nearest centroid. Every
    radius is measured again on the vectors as they are, so the search stays exact whatever changed (added,
    removed or even replaced vectors); only how much it prunes depends on how well the cells still fit."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.asarray(ids)
    assign = np.empty(len(ids), dtype=np.int64)
    if len(seed.ids):
        at = np.minimum(np.searchsorted(seed.ids, ids), len(seed.ids) - 1)
        known = seed.ids[at] == ids
    else:
        at, known = np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    assign[known] = seed.cells[at[known]]
    if not known.all():
        assign[~known] = faiss.knn(vectors[~known], np.ascontiguousarray(seed.centroids), 1)[1][:, 0]
    return _partition(vectors, ids, seed.centroids, assign, seed.trained_on)


def extend_partition(part: CellPartition, vectors: np.ndarray, ids: np.ndarray) -> CellPartition:
    """The partition of a bank that only grew by `vectors` (ids): each goes to its nearest centroid, the old
    vectors stay in their cells with their measured norms, and a cell's radius grows where a new vector lies
    farther out (still exact). What `carry_partition` gives, without measuring every vector again."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    cells = np.repeat(np.arange(len(part.starts)), part.ends - part.starts)
    assign = faiss.knn(vectors, np.ascontiguousarray(part.centroids), 1)[1][:, 0]
    order = np.argsort(np.concatenate([cells, assign]), kind="stable")
    spread = np.sqrt(((vectors - part.centroids[assign]) ** 2).sum(axis=1)).astype(np.float32)
    radius = part.radius.copy()
    np.maximum.at(radius, assign, spread)
    sizes = np.bincount(np.concatenate([cells, assign]), minlength=len(part.centroids))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(part.starts.dtype)
    return CellPartition(np.concatenate([part.vectors, vectors])[order],
                         np.concatenate([part.squared_norms, (vectors ** 2).sum(axis=1)])[order],
                         np.concatenate([part.ids, np.asarray(ids, dtype=part.ids.dtype)])[order],
                         part.centroids, radius, starts, starts + sizes, part.trained_on)


def _partition(vectors: np.ndarray, ids: np.ndarray, centroids: np.ndarray, assign: np.ndarray,
               trained_on: int) -> CellPartition:
    """Vectors sorted by their assigned cell; cells left empty are dropped; each radius measured."""
    order = np.argsort(assign, kind="stable")
    sizes = np.bincount(assign, minlength=len(centroids))
    keep = sizes > 0
    sorted_vectors = vectors[order]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[keep]
    ends = starts + sizes[keep]
    centroids = np.ascontiguousarray(centroids[keep])
    cell_of = np.repeat(np.arange(len(starts)), sizes[keep])
    spread = np.sqrt(((sorted_vectors - centroids[cell_of]) ** 2).sum(axis=1))
    radius = np.maximum.reduceat(spread, starts)
    return CellPartition(sorted_vectors, (sorted_vectors ** 2).sum(axis=1), ids[order],
                         centroids, radius.astype(np.float32), starts, ends, int(trained_on))


def _squared_distances(queries: np.ndarray, query_norms: np.ndarray, part: CellPartition, start: int,
                       end: int) -> np.ndarray:
    block = part.vectors[start:end]
    squared = query_norms[:, None] + part.squared_norms[None, start:end] - 2.0 * (queries @ block.T)
    return np.maximum(squared, 0.0)


def _search_cell(heap: faiss.ResultHeap, part: CellPartition, queries: np.ndarray, query_norms: np.ndarray,
                 cell: int, rows: np.ndarray) -> None:
    """Cell `cell` searched for the query rows `rows`, merged into their heaps (FAISS's, as its contrib merges
    partial results; a cell answers only some rows: `add_result_subset`). Ids are positions in the sorted bank."""
    start, end = int(part.starts[cell]), int(part.ends[cell])
    distances = _squared_distances(queries[rows], query_norms[rows], part, start, end)
    heap.add_result_subset(rows, distances, np.arange(start, end))


def pruned_search(part: CellPartition, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact squared L2 distances and ids of the k nearest vectors, nearest first; None when the bank has
    too little cell structure for pruning to pay (then search it flat)."""
    # many small matrix products: BLAS threads cost more to wake than they save here
    with threadpool_limits(1, user_api="blas"):
        return _pruned_search(part, queries, k)


def _centroid_distances(part: CellPartition, queries: np.ndarray, query_norms: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(query_norms[:, None] + (part.centroids ** 2).sum(axis=1)[None]
                              - 2.0 * queries @ part.centroids.T, 0.0))


def _rows_by_cell(cells: np.ndarray, count: int) -> Iterator[tuple[int, np.ndarray]]:
    """(cell, the rows assigned to it, ascending) for each cell that has rows: one sort, not a scan per cell."""
    order = np.argsort(cells, kind="stable")
    bounds = np.searchsorted(cells[order], np.arange(count + 1))
    for cell in np.flatnonzero(np.diff(bounds)):
        yield int(cell), order[bounds[cell]:bounds[cell + 1]]


def _pruned_search(part: CellPartition, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    count = len(queries)
    k = min(k, len(part.vectors))
    query_norms = (queries ** 2).sum(axis=1)
    to_centroid = _centroid_distances(part, queries, query_norms)
    heap = faiss.ResultHeap(count, k)  # each row's k nearest so far (the largest first, until `finalize`)
    # first the nearest cell of each query: a tight bound from the start
    first = np.argmin(to_centroid, axis=1)
    for cell, rows in _rows_by_cell(first, len(part.starts)):
        _search_cell(heap, part, queries, query_norms, cell, rows)
    # then every other cell that the bound cannot rule out (a row with fewer than k found so far: FLT_MAX, no bound)
    bound = np.sqrt(heap.D.max(axis=1)) * (1 + SLACK) + 1e-6
    needed = (to_centroid - part.radius[None]) < bound[:, None]
    needed[np.arange(count), first] = False
    sizes = part.ends - part.starts
    if (needed * sizes[None]).sum() > MAX_WORK * count * len(part.vectors):
        return None
    for cell in np.flatnonzero(needed.any(axis=0)):
        _search_cell(heap, part, queries, query_norms, cell, np.flatnonzero(needed[:, cell]))
    heap.finalize()  # nearest first
    return heap.D, np.where(heap.I >= 0, part.ids[np.maximum(heap.I, 0)], -1)


def pruned_largest_nearest(part: CellPartition, queries: np.ndarray) -> np.ndarray:
    """For query groups (N, P, D) (an image's patches), each group's largest exact squared distance from a
    query to its nearest vector (N,): what `pruned_search` then a max gives, searching fully only the few
    queries that can hold the maximum."""
    with threadpool_limits(1, user_api="blas"):
        groups, per_group = queries.shape[:2]
        flat = np.ascontiguousarray(queries, dtype=np.float32).reshape(groups * per_group, -1)
        # an upper bound on each query's nearest distance: the nearest vector in its nearest cell (often the
        # true one); one search of the cell per cell, over the queries it is nearest to
        norms = (flat ** 2).sum(axis=1)
        first = np.argmin(_centroid_distances(part, flat, norms), axis=1)
        upper = np.empty(len(flat), dtype=np.float32)
        for cell, rows in _rows_by_cell(first, len(part.starts)):
            upper[rows] = _squared_distances(flat[rows], norms[rows], part, part.starts[cell],
                                             part.ends[cell]).min(axis=1)
        upper = upper.reshape(groups, per_group)
        # the query with the largest bound, searched exactly, gives each group a lower bound on its maximum;
        # only queries whose upper bound lies above it can still raise it
        top = upper.argmax(axis=1) + np.arange(groups) * per_group
        largest = _exact_nearest(part, flat[top])
        open_rows = np.flatnonzero((upper * (1 + SLACK) >= largest[:, None]).ravel())
        if len(open_rows):
            np.maximum.at(largest, open_rows // per_group, _exact_nearest(part, flat[open_rows]))
        return largest


def _exact_nearest(part: CellPartition, queries: np.ndarray) -> np.ndarray:
    """Exact squared distances to the nearest vector (pruned where that pays, else over the whole bank)."""
    found = _pruned_search(part, queries, 1) if len(queries) >= 64 else None
    if found is None:
        found = faiss.knn(queries, part.vectors, 1)  # blocked over the bank: bounded memory for any count
    return np.maximum(found[0][:, 0], 0.0)
