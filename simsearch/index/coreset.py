"""Greedy k-centre coreset selection (PatchCore's memory-bank reduction), exact but pruned.

Plain greedy k-centre touches all N points for each of the K centres it picks (O(N*K*D)), which is
where anomalib's PatchCore spends most of its build. Here the points are first grouped into cells
(k-means); a cell whose points cannot come closer to the new centre than their current distances (by
the triangle inequality, |c - q| - radius >= the cell's largest distance) is skipped. The result is the
same selection as the plain algorithm; only the work is smaller.
"""

from __future__ import annotations

import faiss
import numpy as np
from threadpoolctl import threadpool_limits


def random_projection(points: np.ndarray, dim: int | None, seed: int = 0) -> np.ndarray:
    """Johnson-Lindenstrauss Gaussian projection to `dim` columns (unchanged when dim is None or >= D)."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    if dim is None or points.shape[1] <= dim:
        return points
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((points.shape[1], dim)).astype(np.float32) / np.sqrt(dim)
    return np.ascontiguousarray(points @ matrix)


def _initial_distances(points: np.ndarray, existing: np.ndarray | None,
                       given: np.ndarray | None = None) -> np.ndarray:
    if given is not None:  # measured by the caller (e.g. the bank's own search): one per point
        given = np.asarray(given, dtype=np.float32).reshape(-1)
        if len(given) != len(points):
            raise ValueError(f"{len(given)} initial distances for {len(points)} points")
        return given.copy()
    if existing is None or len(existing) == 0:
        return np.full(len(points), np.inf, dtype=np.float32)
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(np.ascontiguousarray(existing, dtype=np.float32))
    squared, _ = index.search(points, 1)
    return np.sqrt(np.maximum(squared[:, 0], 0.0)).astype(np.float32)


def _distances_to(points: np.ndarray, squared_norms: np.ndarray, centre: np.ndarray) -> np.ndarray:
    # |p - c|^2 = |p|^2 + |c|^2 - 2 p.c: one matrix-vector product instead of an N x D temporary
    squared = squared_norms + np.float32(centre @ centre) - 2.0 * (points @ centre)
    return np.sqrt(np.maximum(squared, 0.0))


def greedy_coreset_reference(points: np.ndarray, n_select: int, existing: np.ndarray | None = None,
                             seed: int = 0, initial: np.ndarray | None = None) -> np.ndarray:
    """Plain greedy k-centre, O(N*K*D): the textbook algorithm, kept for tests and benchmarks."""
    with threadpool_limits(1, user_api="blas"):  # the same arithmetic as greedy_coreset, bit for bit
        return _greedy_reference(points, n_select, existing, seed, initial)


def _continues(existing: np.ndarray | None, initial: np.ndarray | None) -> bool:
    return initial is not None or (existing is not None and len(existing) > 0)


def _greedy_reference(points: np.ndarray, n_select: int, existing: np.ndarray | None, seed: int,
                      initial: np.ndarray | None = None) -> np.ndarray:
    points = np.ascontiguousarray(points, dtype=np.float32)
    squared_norms = (points ** 2).sum(axis=1)
    n_select = min(int(n_select), len(points))
    min_dist = _initial_distances(points, existing, initial)
    current = int(np.argmax(min_dist)) if _continues(existing, initial) \
        else int(np.random.default_rng(seed).integers(len(points)))
    selected = []
    for _ in range(n_select):
        if min_dist[current] <= 0.0:
            break
        selected.append(current)
        np.minimum(min_dist, _distances_to(points, squared_norms, points[current]), out=min_dist)
        current = int(np.argmax(min_dist))
    return np.asarray(selected, dtype=np.int64)


def greedy_coreset(points: np.ndarray, n_select: int, existing: np.ndarray | None = None,
                   seed: int = 0, points_per_cell: int = 128, initial: np.ndarray | None = None) -> np.ndarray:
    """Indices of up to n_select points picked by greedy k-centre, continuing from `existing` centres, or
    from centres the caller measured the points against: `initial`, each point's distance to its nearest
    one (then `existing` is not read).

    Same selection as greedy_coreset_reference; stops early once every point is itself selected.
    """
    # thousands of small matrix-vector products: BLAS threads cost more to wake than they save
    with threadpool_limits(1, user_api="blas"):
        return _greedy_coreset(points, n_select, existing, seed, points_per_cell, initial)


def _greedy_coreset(points: np.ndarray, n_select: int, existing: np.ndarray | None, seed: int,
                    points_per_cell: int, initial: np.ndarray | None = None) -> np.ndarray:
    points = np.ascontiguousarray(points, dtype=np.float32)
    count = len(points)
    n_select = min(int(n_select), count)
    if n_select <= 0:
        return np.zeros(0, dtype=np.int64)
    min_dist_orig = _initial_distances(points, existing, initial)
    if _continues(existing, initial):
        first = int(np.argmax(min_dist_orig))
    else:
        first = int(np.random.default_rng(seed).integers(count))

    # Cells: a quick k-means, then points sorted so each cell is one contiguous slice.
    n_cells = max(1, min(count // points_per_cell, 4096))
    if n_cells > 1:
        kmeans = faiss.Kmeans(points.shape[1], n_cells, niter=6, seed=seed, max_points_per_centroid=64,
                              verbose=False)
        kmeans.train(points)
        _, assign = kmeans.index.search(points, 1)
        assign = assign[:, 0]
    else:
        assign = np.zeros(count, dtype=np.int64)
    order = np.argsort(assign, kind="stable")
    sorted_points = points[order]
    sorted_norms = (sorted_points ** 2).sum(axis=1)
    min_dist = min_dist_orig[order]
    sizes = np.bincount(assign, minlength=n_cells)
    sizes = sizes[sizes > 0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    ends = starts + sizes
    cell_of = np.repeat(np.arange(len(sizes)), sizes)
    centroids = np.add.reduceat(sorted_points, starts, axis=0) / sizes[:, None].astype(np.float32)
    radius = np.maximum.reduceat(_distances_to_cells(sorted_points, centroids, cell_of), starts)
    cell_max = np.maximum.reduceat(min_dist, starts)

    position_of = np.empty(count, dtype=np.int64)
    position_of[order] = np.arange(count)
    current = int(position_of[first])
    selected: list[int] = []
    for _ in range(n_select):
        if min_dist[current] <= 0.0:
            break
        selected.append(current)
        centre = sorted_points[current]
        reach = np.sqrt(((centroids - centre) ** 2).sum(axis=1)) - radius
        need = reach < cell_max
        if sizes[need].sum() > count // 2:
            # most cells: one pass over everything beats gathering (updating more cells is still exact)
            np.minimum(min_dist, _distances_to(sorted_points, sorted_norms, centre), out=min_dist)
            cell_max = np.maximum.reduceat(min_dist, starts)
        else:
            cells = np.flatnonzero(need)
            rows = np.flatnonzero(need[cell_of]) if len(cells) > 64 else \
                np.concatenate([np.arange(starts[c], ends[c]) for c in cells])
            min_dist[rows] = np.minimum(min_dist[rows],
                                        _distances_to(sorted_points[rows], sorted_norms[rows], centre))
            offsets = np.concatenate([[0], np.cumsum(sizes[cells])[:-1]]).astype(np.int64)
            cell_max[cells] = np.maximum.reduceat(min_dist[rows], offsets)
        best_cell = int(np.argmax(cell_max))
        current = int(starts[best_cell] + np.argmax(min_dist[starts[best_cell]:ends[best_cell]]))
    return order[np.asarray(selected, dtype=np.int64)]


def _distances_to_cells(points: np.ndarray, centroids: np.ndarray, cell_of: np.ndarray) -> np.ndarray:
    out = np.empty(len(points), dtype=np.float32)
    for start in range(0, len(points), 65536):
        block = slice(start, start + 65536)
        out[block] = np.sqrt(((points[block] - centroids[cell_of[block]]) ** 2).sum(axis=1))
    return out
