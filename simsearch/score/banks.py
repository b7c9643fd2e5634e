"""What the patch modes keep of their exemplars, and how they search it: a greedy coreset of the good patches
(`patches`), the patches that carry each defect (`defect_patches`) and, for the contrast mode, each exemplar's
region descriptor (`good_regions`, `defect_regions`); the defect exemplars' coherence. Patch ids in these
stores are (exemplar id << PATCH_ID_BITS) | position in its grid (`Role(per_patch=True)`)."""

from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

from simsearch.embed.base import Embeddings
from simsearch.errors import IndexProblem
from simsearch.index.coreset import greedy_coreset, random_projection
from simsearch.index.exemplar_index import ExemplarIndex
from simsearch.index.kinds import EXACT
from simsearch.index.roles import PATCH_ID_BITS, Role
from simsearch.index.vectors import VectorStore

PATCH_ROLES = {"patches": Role("good", per_patch=True), "defect_patches": Role("defect", per_patch=True)}
REGION_ROLES = {"good_regions": Role("good"), "defect_regions": Role("defect")}
CORESET_PROJECTION_DIM = 128
# A small add next to a large bank (a click at the inspection station, `simsearch add` of a few images): at most
# this many new patches, and at most 1/SMALL_ADD_SHARE of the bank. Its patches are measured against the bank by
# the bank's own exact search and reduced by greedy k-centre in full dimension, instead of projecting the
# whole bank and searching the projection flat at every add (most of an add's time before).
SMALL_ADD_PATCHES = 8192
SMALL_ADD_SHARE = 8
COHERENCE_SAMPLE = 512  # defect exemplars enough to measure how they cluster
# Without a mask, the share of a defect image's patches that carry the defect: those least like the good bank.
# A defect usually covers a small part of the image; the rest of its patches look good and must not be banked.
DEFECT_PATCH_FRACTION = 0.05
# The share of an image's patches that stand for its most unusual region: those least like the good bank (20
# of a 28x28 grid). A defect is local: averaged over the whole image it drowns in the good rest, and the
# contrast mode compares the regions of a new image, the known goods and the known defects instead.
REGION_FRACTION = 0.025
OWN_NEIGHBOURS = 4  # neighbours searched to find one of another exemplar (a patch's own are often the nearest)


def region_descriptors(grids: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """The mean of each grid's REGION_FRACTION patches farthest from the good bank: patch grids (N, h, w, D)
    and their distances to the good patches (N, h, w) -> (N, D)."""
    count, per_image = grids.shape[0], grids.shape[1] * grids.shape[2]
    keep = max(1, int(round(per_image * REGION_FRACTION)))
    farthest = np.argsort(-distances.reshape(count, per_image), axis=1, kind="stable")[:, :keep]
    flat = np.asarray(grids).reshape(count, per_image, -1)
    return np.take_along_axis(flat, farthest[:, :, None], axis=1).mean(axis=1, dtype=np.float64).astype(np.float32)


# -- banking -----------------------------------------------------------------------------------------------
def bank_patches(index: ExemplarIndex, ids: np.ndarray, labels: Sequence[str], embeddings: Embeddings,
                 masks: Sequence[np.ndarray | None] | None) -> np.ndarray | None:
    """Good patches reduced by greedy k-centre, continuing from the current bank. A defect's patches that carry
    the defect join the defect patch bank (where the mode keeps one): those its mask marks, else the
    DEFECT_PATCH_FRACTION least like the good bank. Where the index keeps region stores, each exemplar's region
    descriptor joins them. Returns what was measured on the way: each new exemplar's patch distances (N, h, w)
    to the good bank (a good one's to the other goods' patches), NaN where not measured; None without a bank."""
    if embeddings.patches is None or "patches" not in index.vectors:
        return None  # defects without patch grids (the index refuses goods without them), or an index without a bank
    grids = embeddings.patches
    is_good = np.array([label == "good" for label in labels], dtype=bool)
    patches = index.vectors["patches"]
    measured = np.full(grids.shape[:3], np.nan, dtype=np.float32)
    if is_good.any():
        patches.add(*select_patches(index, grids[is_good], ids[is_good]))
    if (~is_good).any() and len(patches):  # after the goods: "least like good" needs the bank
        defect_grids = grids[~is_good]
        defect_masks = None if masks is None else [m for m, good in zip(masks, is_good) if not good]
        # one search of the good bank picks both the defect patches (without a mask) and the region
        defect_distances = measured[~is_good] = nearest_patches(index, defect_grids)[0]
        if "defect_patches" in index.vectors:
            index.vectors["defect_patches"].add(*select_defect_patches(defect_grids, defect_masks, defect_distances,
                                                                       ids[~is_good]))
        if "defect_regions" in index.vectors:
            index.vectors["defect_regions"].add(region_descriptors(defect_grids, defect_distances), ids[~is_good])
    if "good_regions" in index.vectors and is_good.any():
        # each good one against the other goods' patches: its own would hide its region
        good_grids = grids[is_good]
        distances = measured[is_good] = _distances_to_other_goods(index, good_grids, ids[is_good])
        index.vectors["good_regions"].add(region_descriptors(good_grids, distances), ids[is_good])
    return measured


def select_patches(index: ExemplarIndex, grids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The good patches of grids (N, h, w, D) kept in the bank, with their ids: a greedy coreset of
    `index.coreset_ratio` of them, continuing from the patches already banked."""
    per_image = grids.shape[1] * grids.shape[2]
    flat = np.ascontiguousarray(grids.reshape(-1, index.dim), dtype=np.float32)
    owner = np.repeat(ids, per_image)
    local = np.tile(np.arange(per_image, dtype=np.int64), len(ids))
    if index.coreset_ratio < 1.0:
        bank = index.vectors["patches"]
        n_select = max(1, int(round(len(flat) * index.coreset_ratio)))
        if small_add(bank, len(flat)):
            # the same greedy k-centre and count, on exact distances to the bank rather than a random
            # projection's, without projecting or copying the bank
            keep = greedy_coreset(flat, n_select, initial=bank.search(flat, 1)[0][:, 0])
        else:
            existing = random_projection(bank.vectors(), CORESET_PROJECTION_DIM) if len(bank) else None
            keep = greedy_coreset(random_projection(flat, CORESET_PROJECTION_DIM), n_select, existing=existing)
        flat, owner, local = flat[keep], owner[keep], local[keep]
    return flat, (owner << PATCH_ID_BITS) | local


def small_add(bank: VectorStore, new_patches: int) -> bool:
    """Whether new patches are few next to an exact bank: reduced against the bank's own search (above)."""
    return bank.kind == EXACT and 0 < new_patches <= SMALL_ADD_PATCHES and \
        new_patches * SMALL_ADD_SHARE <= len(bank)


def _distances_to_other_goods(index: ExemplarIndex, grids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each patch's distance (N, h, w) to the nearest good patch of another exemplar than its own."""
    flat = grids.reshape(-1, index.dim)
    owners = np.repeat(ids, grids.shape[1] * grids.shape[2])
    # one batched search with a few neighbours (fast), a leave-one-out search where all were its own
    distances, patch_ids = index.search("patches", flat, OWN_NEIGHBOURS)
    other = (patch_ids >> PATCH_ID_BITS) != owners[:, None]
    nearest = distances[np.arange(len(distances)), other.argmax(axis=1)]
    missing = ~other.any(axis=1)
    for owner in np.unique(owners[missing]).tolist():
        rows = np.flatnonzero(missing & (owners == owner))
        nearest[rows] = index.search("patches", flat[rows], 1, exclude=owner)[0][:, 0]
    return nearest.reshape(grids.shape[:3])


def select_defect_patches(grids: np.ndarray, masks: Sequence[np.ndarray | None] | None, distances: np.ndarray,
                          ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The patches of defect grids (N, h, w, D) that carry the defect, with their ids: the mask's patches
    where there is a mask, else the DEFECT_PATCH_FRACTION farthest from the good patch bank (`distances`,
    (N, h, w))."""
    per_image = grids.shape[1] * grids.shape[2]
    n_select = max(1, int(round(per_image * DEFECT_PATCH_FRACTION)))
    rows, row_ids = [], []
    for position, (grid, exemplar_id) in enumerate(zip(grids, ids.tolist())):
        flat = np.ascontiguousarray(grid.reshape(per_image, -1), dtype=np.float32)
        mask = None if masks is None else masks[position]
        if mask is not None and np.asarray(mask).any():  # its grid was checked as the exemplar was added
            keep = np.flatnonzero(np.asarray(mask, dtype=bool).ravel())
        else:
            keep = np.sort(np.argsort(-distances[position].ravel(), kind="stable")[:n_select])
        rows.append(flat[keep])
        row_ids.append((exemplar_id << PATCH_ID_BITS) | keep.astype(np.int64))
    return np.concatenate(rows), np.concatenate(row_ids)


# -- searching ---------------------------------------------------------------------------------------------
def _patch_store(index: ExemplarIndex, role: str) -> None:
    if role not in index.vectors:
        raise IndexProblem(f"this index (scoring mode {index.mode!r}) keeps no {role} store",
                           hint="build the index with a patch mode")


def nearest_patches(index: ExemplarIndex, patch_vectors: np.ndarray, k: int = 1,
                    exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For patch grids (N, h, w, D): each patch's mean distance to its k nearest good patches, and the
    id of the exemplar its nearest patch came from, both (N, h, w). Patches of exemplar `exclude` are
    left out (leave-one-out)."""
    _patch_store(index, "patches")
    shape = patch_vectors.shape[:3]
    distances, patch_ids = index.search("patches", patch_vectors.reshape(-1, index.dim), k, exclude)
    return distances.mean(axis=1).reshape(shape), index.owners("patches", patch_ids[:, 0]).reshape(shape)


def largest_patch_distances(index: ExemplarIndex, patch_vectors: np.ndarray) -> np.ndarray:
    """For patch grids (N, h, w, D): each grid's largest distance from a patch to its nearest good patch
    (N,), what the max of `nearest_patches(..., k=1)` gives, from a search that skips most patches."""
    _patch_store(index, "patches")
    return index.vectors["patches"].largest_nearest(patch_vectors.reshape(len(patch_vectors), -1, index.dim))


def nearest_defect_patches(index: ExemplarIndex, patch_vectors: np.ndarray,
                           exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For patch grids (N, h, w, D): each patch's distance to the nearest defect patch (inf where the bank
    is empty) and the defect exemplar it came from (-1 where none), both (N, h, w)."""
    _patch_store(index, "defect_patches")
    shape = patch_vectors.shape[:3]
    distances, patch_ids = index.search("defect_patches", patch_vectors.reshape(-1, index.dim), 1, exclude)
    return distances[:, 0].reshape(shape), index.owners("defect_patches", patch_ids[:, 0]).reshape(shape)


def has_defect_patches(index: ExemplarIndex) -> bool:
    store = index.vectors.get("defect_patches")
    return store is not None and len(store) > 0


def nearest_regions(index: ExemplarIndex, patch_vectors: np.ndarray, distances: np.ndarray, k: int,
                    exclude: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """For patch grids (N, h, w, D) with their distances to the good patches (N, h, w): distances (N, k) of
    their regions (`region_descriptors`) to the k nearest good and the k nearest defect exemplars' regions
    (leaving out id `exclude`); None, with nothing computed, where the index keeps no regions for every
    exemplar."""
    good, defect = index.vectors.get("good_regions"), index.vectors.get("defect_regions")
    if good is None or defect is None or len(good) != len(index.good) or len(defect) != len(index.defect):
        return None  # defects added while there was no good bank to find their regions against
    descriptors = region_descriptors(patch_vectors, distances)
    return (index.search("good_regions", descriptors, k, exclude)[0],
            index.search("defect_regions", descriptors, k)[0])


# (stores' identity and versions, defect coherence) by index: computed once per state of the good and
# defect stores, not once per scored batch
_COHERENCE: "weakref.WeakKeyDictionary[ExemplarIndex, tuple[tuple, float]]" = weakref.WeakKeyDictionary()


def defect_coherence(index: ExemplarIndex) -> float:
    """Share of the defect exemplars whose nearest other defect lies nearer than their nearest good exemplar
    (image vectors; 0 with fewer than two): how far the known defects describe the defects to come."""
    state = (id(index.good), index.good.version, id(index.defect), index.defect.version)
    cached = _COHERENCE.get(index)
    if cached is None or cached[0] != state:
        cached = _COHERENCE[index] = (state, _measure_coherence(index))
    return cached[1]


def _measure_coherence(index: ExemplarIndex) -> float:
    if len(index.defect) < 2 or not len(index.good):
        return 0.0
    vectors = index.defect.vectors()
    if len(vectors) > COHERENCE_SAMPLE:  # evenly spaced: the same answer every time for the same index
        vectors = vectors[np.linspace(0, len(vectors) - 1, COHERENCE_SAMPLE).astype(int)]
    to_defect = index.nearest_defect(vectors, 2)[0][:, 1]  # [:, 0] is the exemplar itself
    to_good = index.nearest_good(vectors, 1)[0][:, 0]
    return float(np.mean(to_defect < to_good))
