"""The exemplar index: good and defect exemplars in FAISS, their catalogue, and the manifest that ties
them to the embedder that made their vectors."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from simsearch.data.datasets import check_defect_type
from simsearch.errors import ConflictError, IndexProblem, InputError, NotFoundError
from simsearch.index.catalogue import Exemplar, read_catalogue, write_catalogue
from simsearch.index.coreset import greedy_coreset, random_projection
from simsearch.index.kinds import EXACT, ROLES, KindRecord, describe_record, parse_kinds
from simsearch.index.lock import DEFAULT_WAIT, IndexLock
from simsearch.index.storage import (MANIFEST, StorageError, Unchanged, check_index_folder, committed_generation,
                                     generation_file, read_manifest, save_generation)
from simsearch.index.vectors import VectorStore

T = TypeVar("T")

FORMAT_VERSION = 2  # 2: a bank of defect patches beside the good one, stores of other index kinds than exact
# (IVF, HNSW, PQ) with their records; version 1 indexes read as having no defect patches and exact stores
EXACT_FORMAT_VERSION = 1  # what an index with all stores exact and no defect patches is written as: older readers read it
COMPILED_ROLE = "embedder"  # the file role of the compiled embedder copy
PATCH_ID_BITS = 24  # a patch's FAISS id is (exemplar id << 24) | its position in the exemplar's grid
CORESET_PROJECTION_DIM = 128
COHERENCE_SAMPLE = 512  # defect exemplars enough to measure how they cluster
# Without a mask, the share of a defect image's patches that carry the defect: those least like the good bank.
# A defect usually covers a small part of the image; the rest of its patches look good and must not be banked.
DEFECT_PATCH_FRACTION = 0.05
# The share of an image's patches that stand for its most unusual region: those least like the good bank (20
# of a 28x28 grid). A defect is local: averaged over the whole image it drowns in the good rest, and the
# contrast mode compares the regions of a new image, the known goods and the known defects instead.
REGION_FRACTION = 0.025
OWN_NEIGHBOURS = 4  # neighbours searched to find one of another exemplar (a patch's own are often the nearest)


class IndexMismatchError(IndexProblem, ValueError):
    """An index that cannot be used as asked: another embedder, a newer format, an unknown id."""


@dataclass(frozen=True)
class NewExemplar:
    """What `ExemplarIndex.add` needs to know of an exemplar besides its vectors."""

    path: str
    label: str = "good"
    defect_type: str | None = None
    sha256: str = ""


def region_descriptors(grids: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """The mean of each grid's REGION_FRACTION patches farthest from the good bank: patch grids (N, h, w, D)
    and their distances to the good patches (N, h, w) -> (N, D)."""
    count, per_image = grids.shape[0], grids.shape[1] * grids.shape[2]
    keep = max(1, int(round(per_image * REGION_FRACTION)))
    farthest = np.argsort(-distances.reshape(count, per_image), axis=1, kind="stable")[:, :keep]
    flat = np.asarray(grids).reshape(count, per_image, -1)
    return np.take_along_axis(flat, farthest[:, :, None], axis=1).mean(axis=1, dtype=np.float64).astype(np.float32)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ExemplarIndex:
    """Good exemplars (image vectors, and in patch mode a coreset of their patch vectors) and defect
    exemplars (image vectors with their type, and in patch mode the patches that carry the defect), each with
    a stable id and a catalogue entry."""

    def __init__(self, dim: int, embedder_config: dict[str, Any], fingerprint: str, mode: str = "patch",
                 k: int = 1, coreset_ratio: float = 0.1, patch_bank: bool | None = None,
                 index_kind: str | Mapping[str, str] | Iterable[str] | None = None, region_bank: bool = False):
        # `mode` names the ScoringMode that reads this index; the index only needs to know whether that
        # mode keeps a bank of good patches (None: the built-in rule, the image mode does not, every other does).
        if not 0.0 < coreset_ratio <= 1.0:
            raise InputError(f"coreset ratio must be in (0, 1], not {coreset_ratio}")
        if k < 1:
            raise InputError(f"k must be at least 1, not {k}")
        self.dim = int(dim)
        self.embedder_config = dict(embedder_config)
        self.fingerprint = fingerprint
        self.mode = mode
        self.k = int(k)
        self.coreset_ratio = float(coreset_ratio)
        # role -> requested kind ("auto" or a FAISS factory string); applied at fit's end and at every save
        self.index_kinds = parse_kinds(index_kind, self.dim)
        self.good = VectorStore(self.dim)
        self.defect = VectorStore(self.dim)
        self.patches = VectorStore(self.dim) if (mode != "image" if patch_bank is None else patch_bank) else None
        self.defect_patches = VectorStore(self.dim) if self.patches is not None else None
        # region descriptors (`region_descriptors`) by exemplar id, for modes that ask for them (the contrast mode)
        self.good_regions = VectorStore(self.dim) if region_bank and self.patches is not None else None
        self.defect_regions = VectorStore(self.dim) if self.good_regions is not None else None
        self.exemplars: dict[int, Exemplar] = {}
        self.next_id = 0
        self.patch_grid: tuple[int, int] | None = None
        self.threshold: dict[str, Any] | None = None  # set by calibration
        # {"low", "high", "images"}: the good exemplars' own leave-one-out scores, set when built; the one
        # heatmap scale of the index until it is calibrated (None: an older index, or no files to re-score)
        self.map_scale: dict[str, Any] | None = None
        self.created = _now()
        self.updated: str | None = None  # when it was last saved
        self.generation = 0
        self.size_bytes: int | None = None  # on disk, when saved or loaded
        self.origin: str | None = None  # the folder (real path) this index was read from or saved to
        self._coherence: tuple[tuple, float] | None = None  # (stores' identity and versions, defect coherence)
        # (model bytes, record): a compiled copy of the embedder (simsearch.embed.compiled), kept while its
        # record's fingerprint is this index's; the index only stores it
        self.compiled_embedder: tuple[bytes, dict[str, Any]] | None = None
        self._compiled_file: Path | None = None  # the file the copy was read from or saved to

    # -- contents ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.exemplars)

    def counts(self) -> dict[str, int]:
        """Exemplars by label, and patches in the banks (the defect patch bank only where there is a patch bank)."""
        good = sum(e.label == "good" for e in self.exemplars.values())
        counts = {"good": good, "defect": len(self.exemplars) - good,
                  "patches": len(self.patches) if self.patches is not None else 0}
        if self.defect_patches is not None:
            counts["defect_patches"] = len(self.defect_patches)
        return counts

    def defect_types(self) -> dict[str, int]:
        types: dict[str, int] = {}
        for exemplar in self.exemplars.values():
            if exemplar.label == "defect":
                key = exemplar.defect_type or "(untyped)"
                types[key] = types.get(key, 0) + 1
        return types

    def duplicates(self, items: Sequence[NewExemplar]) -> list[NewExemplar]:
        """The items whose file (sha256) the index already holds, or that repeat an earlier item."""
        seen = {e.sha256 for e in self.exemplars.values() if e.sha256}
        repeated = []
        for item in items:
            if item.sha256 and item.sha256 in seen:
                repeated.append(item)
            seen.add(item.sha256)
        return repeated

    def add(self, items: Sequence[NewExemplar], image_vectors: np.ndarray,
            patch_vectors: np.ndarray | None = None, allow_duplicates: bool = True,
            masks: Sequence[np.ndarray | None] | None = None) -> list[int]:
        """Add exemplars with their image vectors (N, D) and, in patch mode, patch grids (N, h, w, D). Good
        patches are reduced by greedy k-centre, continuing from the current bank. A defect's patches that
        carry the defect join the defect patch bank: those its mask marks (`masks`: one (h, w) boolean grid or
        None per item), else the DEFECT_PATCH_FRACTION least like the good bank. Without `allow_duplicates`,
        items in `duplicates(items)` are skipped. Returns the new ids. Nothing changes if the input is
        inconsistent."""
        image_vectors = np.asarray(image_vectors, dtype=np.float32).reshape(len(items), -1)
        if masks is not None and len(masks) != len(items):
            raise InputError(f"{len(masks)} masks for {len(items)} exemplars")
        if not allow_duplicates:
            repeated = {id(item) for item in self.duplicates(items)}
            keep = [n for n, item in enumerate(items) if id(item) not in repeated]
            items, image_vectors = [items[n] for n in keep], image_vectors[keep]
            patch_vectors = None if patch_vectors is None else np.asarray(patch_vectors)[keep]
            masks = None if masks is None else [masks[n] for n in keep]
        if not items:
            return []
        if image_vectors.shape[1] != self.dim:
            raise IndexMismatchError(f"vectors have {image_vectors.shape[1]} dimensions, the index {self.dim}")
        labels = [item.label for item in items]
        if any(label not in ("good", "defect") for label in labels):
            raise InputError(f"labels must be good or defect, got {sorted(set(labels))}")
        types = [check_defect_type(item.defect_type) if item.label == "defect" else None for item in items]
        is_good = np.array([label == "good" for label in labels], dtype=bool)
        if self.patches is not None and is_good.any():
            if patch_vectors is None:
                raise InputError("patch mode needs patch vectors for good exemplars")
            grid = tuple(patch_vectors.shape[1:3])
            if self.patch_grid is not None and grid != self.patch_grid:
                raise IndexMismatchError(f"patch grid {grid} differs from the index's {self.patch_grid}")
        ids = np.arange(self.next_id, self.next_id + len(items), dtype=np.int64)
        defect_rows = None
        if self.patches is not None and patch_vectors is not None and (~is_good).any():
            grid = tuple(patch_vectors.shape[1:3])
            if self.patch_grid is not None and grid != self.patch_grid:
                raise IndexMismatchError(f"patch grid {grid} differs from the index's {self.patch_grid}")
            defect_masks = None if masks is None else [m for m, good in zip(masks, is_good) if not good]
            defect_rows = (np.asarray(patch_vectors)[~is_good], defect_masks)
        if self.patches is not None and is_good.any():
            patch_rows, patch_ids = self._select_patches(np.asarray(patch_vectors)[is_good], ids[is_good])
            self.patches.add(patch_rows, patch_ids)
            self.patch_grid = tuple(int(v) for v in patch_vectors.shape[1:3])
        if defect_rows is not None and len(self.patches):  # after the goods: "least like good" needs the bank
            defect_grids, defect_masks = defect_rows
            # one search of the good bank picks both the defect patches (without a mask) and the region
            defect_distances = self.nearest_patches(defect_grids)[0]
            patch_rows, patch_ids = self._select_defect_patches(defect_grids, defect_masks, defect_distances,
                                                                ids[~is_good])
            self.defect_patches.add(patch_rows, patch_ids)
            if self.defect_regions is not None:
                self.defect_regions.add(region_descriptors(defect_grids, defect_distances), ids[~is_good])
        if self.good_regions is not None and is_good.any():
            # each good one against the other goods' patches: its own would hide its region
            good_grids = np.asarray(patch_vectors, dtype=np.float32)[is_good]
            distances = self._distances_to_other_goods(good_grids, ids[is_good])
            self.good_regions.add(region_descriptors(good_grids, distances), ids[is_good])
        self.good.add(image_vectors[is_good], ids[is_good])
        self.defect.add(image_vectors[~is_good], ids[~is_good])
        added = _now()
        for position, (exemplar_id, item) in enumerate(zip(ids.tolist(), items)):
            self.exemplars[exemplar_id] = Exemplar(exemplar_id, str(item.path), item.label, types[position],
                                                   item.sha256, added)
        self.next_id += len(items)
        return ids.tolist()

    def _select_patches(self, grids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_image = grids.shape[1] * grids.shape[2]
        flat = np.ascontiguousarray(grids.reshape(-1, self.dim), dtype=np.float32)
        owner = np.repeat(ids, per_image)
        local = np.tile(np.arange(per_image, dtype=np.int64), len(ids))
        if self.coreset_ratio < 1.0:
            existing = random_projection(self.patches.vectors(), CORESET_PROJECTION_DIM) if len(self.patches) else None
            n_select = max(1, int(round(len(flat) * self.coreset_ratio)))
            keep = greedy_coreset(random_projection(flat, CORESET_PROJECTION_DIM), n_select, existing=existing)
            flat, owner, local = flat[keep], owner[keep], local[keep]
        return flat, (owner << PATCH_ID_BITS) | local

    def _distances_to_other_goods(self, grids: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Each patch's distance (N, h, w) to the nearest good patch of another exemplar than its own."""
        flat = grids.reshape(-1, self.dim)
        owners = np.repeat(ids, grids.shape[1] * grids.shape[2])
        # one batched search with a few neighbours (fast), a leave-one-out search where all were its own
        distances, patch_ids = self.patches.search(flat, OWN_NEIGHBOURS)
        other = (patch_ids >> PATCH_ID_BITS) != owners[:, None]
        nearest = distances[np.arange(len(distances)), other.argmax(axis=1)]
        missing = ~other.any(axis=1)
        for owner in np.unique(owners[missing]).tolist():
            rows = np.flatnonzero(missing & (owners == owner))
            excluded = (owner << PATCH_ID_BITS, (owner + 1) << PATCH_ID_BITS)
            nearest[rows] = self.patches.search(flat[rows], 1, excluded)[0][:, 0]
        return nearest.reshape(grids.shape[:3])

    def _select_defect_patches(self, grids: np.ndarray, masks: Sequence[np.ndarray | None] | None,
                               distances: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The patches of defect grids (N, h, w, D) that carry the defect, with their ids: the mask's patches
        where there is a mask, else the DEFECT_PATCH_FRACTION farthest from the good patch bank (`distances`,
        (N, h, w))."""
        per_image = grids.shape[1] * grids.shape[2]
        n_select = max(1, int(round(per_image * DEFECT_PATCH_FRACTION)))
        rows, row_ids = [], []
        for position, (grid, exemplar_id) in enumerate(zip(grids, ids.tolist())):
            flat = np.ascontiguousarray(grid.reshape(-1, self.dim), dtype=np.float32)
            mask = None if masks is None else masks[position]
            if mask is not None and np.asarray(mask).any():
                mask = np.asarray(mask, dtype=bool)
                if mask.shape != grid.shape[:2]:
                    raise InputError(f"mask grid {mask.shape} differs from the patch grid {grid.shape[:2]}")
                keep = np.flatnonzero(mask.ravel())
            else:
                keep = np.sort(np.argsort(-distances[position].ravel(), kind="stable")[:n_select])
            rows.append(flat[keep])
            row_ids.append((exemplar_id << PATCH_ID_BITS) | keep.astype(np.int64))
        return np.concatenate(rows), np.concatenate(row_ids)

    def remove(self, ids: Sequence[int]) -> list[int]:
        """Remove exemplars (and their patches) by id; returns the ids removed, each once. Unknown ids
        (NotFoundError) or removing every good exemplar (ConflictError) change nothing."""
        ids = list(dict.fromkeys(int(i) for i in ids))  # a repeated id is removed once
        unknown = [i for i in ids if i not in self.exemplars]
        if unknown:
            raise NotFoundError(f"no exemplar with id {', '.join(map(str, unknown))} in this index",
                             hint="see the ids with `simsearch info --exemplars`")
        good = self.counts()["good"]
        if good and sum(self.exemplars[i].label == "good" for i in ids) >= good:
            # Scoring measures distance to good exemplars: an index without one cannot score anything.
            raise ConflictError("the index's last good exemplar cannot be removed: scoring needs at least one",
                                hint="add another good exemplar first")
        array = np.asarray(ids, dtype=np.int64)
        for store in (self.good, self.defect, self.good_regions, self.defect_regions):
            if store is not None:
                store.remove_ids(array)
        for bank in (self.patches, self.defect_patches):
            if bank is not None and len(bank):
                # one removal for all their patches: a graph kind (HNSW) rebuilds once, not once per exemplar
                patch_ids = bank.ids()
                bank.remove_ids(patch_ids[np.isin(patch_ids >> PATCH_ID_BITS, array)])
        for exemplar_id in ids:
            del self.exemplars[exemplar_id]
        return ids

    def stores(self) -> dict[str, VectorStore]:
        """The FAISS stores by role: good, defect and (in patch mode) patches and defect_patches."""
        return {"good": self.good, "defect": self.defect,
                **({"patches": self.patches, "defect_patches": self.defect_patches} if self.patches is not None else {}),
                **({"good_regions": self.good_regions, "defect_regions": self.defect_regions}
                   if self.good_regions is not None else {})}

    def apply_index_kinds(self) -> list[str]:
        """Hold each store in its requested index kind (auto: by its size), trained on its own vectors, where
        the kind or the size changed enough; returns the roles rebuilt."""
        # the defect patch bank stays exact: a few patches per labelled defect
        return [role for role, store in self.stores().items()
                if role in self.index_kinds and store.apply_kind(self.index_kinds[role])]

    # -- search -----------------------------------------------------------------------------------
    def nearest_good(self, vectors: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Distances and ids of the k nearest good exemplars by image vector (leaving out id `exclude`)."""
        return self.good.search(vectors, k, None if exclude is None else (exclude, exclude + 1))

    def nearest_defect(self, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Distances and ids of the k nearest defect exemplars by image vector."""
        return self.defect.search(vectors, k)

    def defect_coherence(self) -> float:
        """Share of the defect exemplars whose nearest other defect lies nearer than their nearest good exemplar
        (image vectors; 0 with fewer than two): how far the known defects describe the defects to come.
        Computed once per state of the good and defect stores, not once per scored batch."""
        state = (id(self.good), self.good.version, id(self.defect), self.defect.version)
        if self._coherence is None or self._coherence[0] != state:
            self._coherence = (state, self._measure_coherence())
        return self._coherence[1]

    def _measure_coherence(self) -> float:
        if len(self.defect) < 2 or not len(self.good):
            return 0.0
        vectors = self.defect.vectors()
        if len(vectors) > COHERENCE_SAMPLE:  # evenly spaced: the same answer every time for the same index
            vectors = vectors[np.linspace(0, len(vectors) - 1, COHERENCE_SAMPLE).astype(int)]
        to_defect = self.nearest_defect(vectors, 2)[0][:, 1]  # [:, 0] is the exemplar itself
        to_good = self.nearest_good(vectors, 1)[0][:, 0]
        return float(np.mean(to_defect < to_good))

    def nearest_regions(self, patch_vectors: np.ndarray, distances: np.ndarray, k: int,
                        exclude: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """For patch grids (N, h, w, D) with their distances to the good patches (N, h, w): distances (N, k) of
        their regions (`region_descriptors`) to the k nearest good and the k nearest defect exemplars' regions
        (leaving out id `exclude`); None, with nothing computed, where the index keeps no regions for every
        exemplar."""
        if self.good_regions is None or len(self.good_regions) != len(self.good) or \
                len(self.defect_regions) != len(self.defect):
            return None  # defects added while there was no good bank to find their regions against
        descriptors = region_descriptors(patch_vectors, distances)
        excluded = None if exclude is None else (exclude, exclude + 1)
        return self.good_regions.search(descriptors, k, excluded)[0], self.defect_regions.search(descriptors, k)[0]

    def nearest_patches(self, patch_vectors: np.ndarray, k: int = 1,
                        exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For patch grids (N, h, w, D): each patch's mean distance to its k nearest good patches, and the
        id of the exemplar its nearest patch came from, both (N, h, w). Patches of exemplar `exclude` are
        left out (leave-one-out)."""
        if self.patches is None:
            raise IndexMismatchError("this index was built in image mode and has no patch bank")
        shape = patch_vectors.shape[:3]
        excluded = None if exclude is None else (exclude << PATCH_ID_BITS, (exclude + 1) << PATCH_ID_BITS)
        distances, patch_ids = self.patches.search(patch_vectors.reshape(-1, self.dim), k, excluded)
        owners = np.where(patch_ids[:, 0] >= 0, patch_ids[:, 0] >> PATCH_ID_BITS, -1)
        return distances.mean(axis=1).reshape(shape), owners.reshape(shape)

    def largest_patch_distances(self, patch_vectors: np.ndarray) -> np.ndarray:
        """For patch grids (N, h, w, D): each grid's largest distance from a patch to its nearest good patch
        (N,), what the max of `nearest_patches(..., k=1)` gives, from a search that skips most patches."""
        if self.patches is None:
            raise IndexMismatchError("this index was built in image mode and has no patch bank")
        return self.patches.largest_nearest(patch_vectors.reshape(len(patch_vectors), -1, self.dim))

    def nearest_defect_patches(self, patch_vectors: np.ndarray,
                               exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For patch grids (N, h, w, D): each patch's distance to the nearest defect patch (inf where the bank
        is empty) and the defect exemplar it came from (-1 where none), both (N, h, w)."""
        if self.defect_patches is None:
            raise IndexMismatchError("this index was built in image mode and has no patch bank")
        shape = patch_vectors.shape[:3]
        excluded = None if exclude is None else (exclude << PATCH_ID_BITS, (exclude + 1) << PATCH_ID_BITS)
        distances, patch_ids = self.defect_patches.search(patch_vectors.reshape(-1, self.dim), 1, excluded)
        owners = np.where(patch_ids[:, 0] >= 0, patch_ids[:, 0] >> PATCH_ID_BITS, -1)
        return distances[:, 0].reshape(shape), owners.reshape(shape)

    # -- persistence ------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return {
            "format": "simsearch-index",
            "format_version": FORMAT_VERSION if any(s.kind != EXACT for s in self.stores().values())
            or (self.defect_patches is not None and len(self.defect_patches)) else EXACT_FORMAT_VERSION,
            "index_kinds": dict(self.index_kinds),
            "stores": {role: store.record.to_dict() for role, store in self.stores().items() if store.record},
            "embedder": {"config": self.embedder_config, "fingerprint": self.fingerprint},
            "dim": self.dim, "mode": self.mode, "patch_bank": self.patches is not None,
            "region_bank": self.good_regions is not None, "k": self.k, "coreset_ratio": self.coreset_ratio,
            "patch_grid": list(self.patch_grid) if self.patch_grid else None,
            "next_id": self.next_id, "counts": self.counts(), "threshold": self.threshold,
            "map_scale": self.map_scale, "created": self.created, "updated": self.updated, "generation": self.generation,
            "compiled_embedder": self._compiled()[1] if self._compiled() else None,
        }

    def _compiled(self) -> tuple[bytes, dict[str, Any]] | None:
        """The compiled embedder copy, when it is one of this index's embedder."""
        copy = self.compiled_embedder
        return copy if copy is not None and copy[1].get("fingerprint") == self.fingerprint else None

    def save(self, folder: str | Path, force: bool = False, wait: float = DEFAULT_WAIT) -> None:
        """Write the index to a folder atomically, under the folder's writer lock (waiting up to `wait` s).

        Refuses (ConflictError) to save over an index this one was not read from, unless `force`: then the
        ids continue after the replaced index's, never reused; and over a folder another writer changed since
        this index was read (use `update_index` to read, change and save under one lock)."""
        folder = Path(folder)
        check_index_folder(folder)
        with IndexLock(folder, wait):
            committed = self._committed_for_save(folder, force)
            if committed is not None:
                same = self.origin == os.path.realpath(folder) and committed[0] == self.generation
                if not same:
                    self._shift_ids(committed[1])
            self.apply_index_kinds()
            writers: dict[str, Any] = {role: store.to_bytes() for role, store in self.stores().items()}
            exemplars = sorted(self.exemplars.values(), key=lambda e: e.id)
            writers["catalogue"] = lambda path: write_catalogue(path, exemplars)
            if self._compiled():
                writers[COMPILED_ROLE] = self._compiled_writer(folder)
            manifest = self.manifest()
            manifest["updated"] = _now()
            saved = save_generation(folder, manifest, writers, wait=wait)
        self.generation = saved["generation"]
        self.updated = saved["updated"]
        self.origin = os.path.realpath(folder)
        if COMPILED_ROLE in saved["files"]:
            self._compiled_file = folder / saved["files"][COMPILED_ROLE]
        self.size_bytes = _size_on_disk(folder, saved)

    def _compiled_writer(self, folder: Path) -> Any:
        """The compiled copy for a save into `folder`: the file it came from there, kept (it never changes, and a
        big network's copy is hundreds of MB), else its bytes."""
        model = self._compiled()[0]
        source = self._compiled_file
        if source is None or os.path.realpath(source.parent) != os.path.realpath(folder):
            return model
        return Unchanged(source, model)

    def _committed_for_save(self, folder: Path, force: bool) -> tuple[int, int] | None:
        """(generation, next_id) of the index committed in `folder`, checked against this one; None if none."""
        try:
            generation = committed_generation(folder)
            next_id = read_manifest(folder).get("next_id", 0) if generation is not None else 0
        except StorageError:
            if not force:
                raise
            return 0, 0  # replacing a damaged index: nothing of it can be kept
        if generation is None:
            return None
        next_id = next_id if isinstance(next_id, int) and next_id >= 0 else 0
        if force:
            return generation, next_id
        if self.origin != os.path.realpath(folder):
            refuse_to_replace(folder, force)
        if generation != self.generation:
            raise ConflictError(f"{folder} was changed by another writer since this index was read (generation "
                                f"{generation}, read at {self.generation}); nothing was saved",
                                hint="read it again and repeat the change (update_index does both under the lock)")
        return generation, next_id

    def _shift_ids(self, first_id: int) -> None:
        """Renumber the exemplars to start at `first_id` or later, so that replacing an index never reuses ids."""
        offset = first_id - min(self.exemplars, default=first_id)
        if offset <= 0:
            return
        # the stores come back exact; save applies their kinds again
        for role in ("good", "defect", "good_regions", "defect_regions"):
            if getattr(self, role) is None:
                continue
            vectors, ids = getattr(self, role).contents()
            store = VectorStore(self.dim)
            store.add(vectors, ids + offset)
            setattr(self, role, store)
        for role in ("patches", "defect_patches"):
            old = getattr(self, role)
            if old is None:
                continue
            vectors, ids = old.contents()
            owners, local = ids >> PATCH_ID_BITS, ids & ((1 << PATCH_ID_BITS) - 1)
            store = VectorStore(self.dim)
            store.add(vectors, ((owners + offset) << PATCH_ID_BITS) | local)
            setattr(self, role, store)
        self.exemplars = {i + offset: dataclasses.replace(e, id=i + offset) for i, e in self.exemplars.items()}
        self.next_id += offset

    @classmethod
    def load(cls, folder: str | Path, fingerprint: str | None = None, fast: bool = False) -> "ExemplarIndex":
        """Read an index and check it against its manifest (file sizes and sha256, dims, counts, ids); refuse
        a newer format, or (when given) another embedder's fingerprint. `fast` skips hashing big files."""
        folder = Path(folder)
        for attempt in range(3):
            manifest = read_manifest(folder)
            try:
                return cls._from_manifest(folder, manifest, fingerprint, fast)
            except StorageError:
                # A writer may have committed and cleaned up between our reading the manifest and its files:
                # read again when the manifest moved on, else the folder really is damaged.
                if attempt == 2 or committed_generation(folder) == manifest.get("generation"):
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _from_manifest(cls, folder: Path, manifest: dict, fingerprint: str | None, fast: bool) -> "ExemplarIndex":
        if manifest.get("format") != "simsearch-index":
            raise IndexMismatchError(f"{folder} is not a simsearch index")
        version = manifest.get("format_version", 0)
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise IndexMismatchError(f"{folder} has index format {version}, newer than this simsearch reads "
                                     f"({FORMAT_VERSION}); upgrade simsearch")
        _check_manifest(folder / MANIFEST, manifest)
        stored = manifest["embedder"]["fingerprint"]
        if fingerprint is not None:
            check_fingerprint(folder, stored, fingerprint)
        try:
            index = cls(manifest["dim"], manifest["embedder"]["config"], stored, manifest["mode"],
                        manifest["k"], manifest["coreset_ratio"], manifest.get("patch_bank"),
                        manifest.get("index_kinds"), bool(manifest.get("region_bank", False)))
            records = {role: KindRecord.from_dict(record) for role, record in manifest.get("stores", {}).items()}
        except (InputError, ValueError, TypeError, AttributeError) as error:
            raise StorageError(f"{folder / MANIFEST} is damaged: {error}") from None
        roles = ("good", "defect") + (("patches",) if index.patches is not None else ())
        if index.patches is not None and "defect_patches" in manifest["files"]:
            roles += ("defect_patches",)  # format 1 indexes have none: their defect patch bank stays empty
        if index.good_regions is not None:
            roles += ("good_regions", "defect_regions")
        for role in roles:
            path = generation_file(folder, manifest, role, fast)
            try:
                store = VectorStore.from_bytes(path.read_bytes(), records.get(role))
                store.ids()  # an id-mapped FAISS index, or not ours
            except (AttributeError, OSError, RuntimeError, ValueError, TypeError) as error:
                raise StorageError(f"{path} is damaged: not a FAISS index of this format "
                                   f"({error.__class__.__name__}); rebuild the index with `simsearch build-index`") from None
            setattr(index, role, store)
        path = generation_file(folder, manifest, "catalogue", fast)
        try:
            index.exemplars = read_catalogue(path)
        except (sqlite3.Error, OSError, TypeError, ValueError) as error:
            raise StorageError(f"{path} is damaged: not a readable catalogue ({error}); rebuild the index "
                               "with `simsearch build-index`") from None
        index.next_id = manifest["next_id"]
        index.patch_grid = tuple(manifest["patch_grid"]) if manifest.get("patch_grid") else None
        index.threshold = manifest.get("threshold")
        index.map_scale = manifest.get("map_scale")
        index.created = manifest.get("created", index.created)
        index.updated = manifest.get("updated")
        index.generation = manifest.get("generation", 0)
        record = manifest.get("compiled_embedder")
        if record is not None and record.get("fingerprint") == stored and COMPILED_ROLE in manifest["files"]:
            index._compiled_file = generation_file(folder, manifest, COMPILED_ROLE, fast)
            index.compiled_embedder = index._compiled_file.read_bytes(), record
        index._check_contents(folder, manifest)
        index.origin = os.path.realpath(folder)
        index.size_bytes = _size_on_disk(folder, manifest)
        return index

    def _check_contents(self, folder: Path, manifest: dict) -> None:
        """Vectors, catalogue and manifest agree: dims, counts, labels, and every id below next_id."""
        def damaged(what: str, role: str) -> StorageError:
            name = manifest["files"].get(role, MANIFEST)
            return StorageError(f"{folder / name} is damaged: {what}; rebuild the index with `simsearch build-index`")

        stores = self.stores()
        for role, store in stores.items():
            if store.dim != self.dim:
                raise damaged(f"{store.dim}-d vectors in a {self.dim}-d index", role)
        counts = manifest.get("counts")
        for role, store in stores.items():
            if isinstance(counts, dict) and counts.get(role, len(store)) != len(store):
                raise damaged(f"{len(store)} {role} vectors, the manifest records {counts.get(role)}", role)
        ids = {"good": set(self.good.ids().tolist()), "defect": set(self.defect.ids().tolist())}
        for label in ("good", "defect"):
            listed = {i for i, e in self.exemplars.items() if e.label == label}
            if listed != ids[label]:
                raise damaged(f"its {label} exemplars ({len(listed)}) do not match the {label} vectors "
                              f"({len(ids[label])})", "catalogue")
        if self.exemplars and (min(self.exemplars) < 0 or max(self.exemplars) >= self.next_id):
            raise damaged(f"next_id {self.next_id} is not above every exemplar id (up to {max(self.exemplars)}), "
                          "so new exemplars would reuse ids", "manifest")
        if self.patches is not None and len(self.patches):
            owners = set(np.unique(self.patches.ids() >> PATCH_ID_BITS).tolist())
            if not owners <= ids["good"]:
                raise damaged("patches of exemplars that are not good exemplars of the index", "patches")
        for label in ("good", "defect") if self.good_regions is not None else ():
            if not set(getattr(self, f"{label}_regions").ids().tolist()) <= ids[label]:
                raise damaged(f"regions of exemplars that are not {label} exemplars of the index", f"{label}_regions")
        if self.defect_patches is not None and len(self.defect_patches):
            owners = set(np.unique(self.defect_patches.ids() >> PATCH_ID_BITS).tolist())
            if not owners <= ids["defect"]:
                raise damaged("defect patches of exemplars that are not defect exemplars of the index",
                              "defect_patches")

    def describe(self) -> dict[str, Any]:
        """What an index holds and how it scores: the one description behind `simsearch info`, the
        service's /info and the report's set-up."""
        patch_mode = self.patches is not None
        return {
            "embedder": self.embedder_config, "fingerprint": self.fingerprint,
            "dim": self.dim, "mode": self.mode, "k": self.k,
            # The coreset ratio and the patch grid only mean something where there is a patch bank.
            "coreset_ratio": self.coreset_ratio if patch_mode else None,
            "patch_grid": list(self.patch_grid) if patch_mode and self.patch_grid else None,
            "counts": self.counts(), "defect_types": self.defect_types(), "threshold": self.threshold,
            "format_version": FORMAT_VERSION, "generation": self.generation,
            "compiled_embedder": ({key: self._compiled()[1].get(key) for key in ("format", "max_difference")}
                                  if self._compiled() else None),
            "created": self.created, "updated": self.updated, "bytes": self.size_bytes,
            # per store: the kind asked for and built, its search depth and recall against exact search
            "index_kinds": {role: {**(store.record.to_dict() if store.record else
                                      {"requested": self.index_kinds.get(role, EXACT), "kind": store.kind}),
                                   "vectors": len(store), "summary": describe_record(store.record)}
                            for role, store in self.stores().items()},
        }


def _size_on_disk(folder: Path, manifest: dict[str, Any]) -> int | None:
    """Bytes of the manifest and the files of its generation (not the stale ones of a crashed save)."""
    try:
        names = ["manifest.json", *manifest.get("files", {}).values()]
        return sum((folder / name).stat().st_size for name in names)
    except OSError:
        return None


def check_fingerprint(folder: str | Path, stored: str, fingerprint: str) -> None:
    """IndexMismatchError unless the embedder's fingerprint is the one the index was built with."""
    if fingerprint != stored:
        raise IndexMismatchError(f"{folder} was built with another embedder (fingerprint {stored}, this one "
                                 f"is {fingerprint}); rebuild the index or use the embedder it was built with")


def _check_manifest(path: Path, manifest: dict) -> None:
    """Types and ranges of what the manifest holds, before anything is built from it."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise StorageError(f"{path} is damaged: {what}; rebuild the index with `simsearch build-index`")

    def whole(value: Any, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    embedder = manifest.get("embedder")
    need(isinstance(embedder, dict) and isinstance(embedder.get("fingerprint"), str)
         and isinstance(embedder.get("config"), dict), "no embedder record")
    need(whole(manifest.get("format_version", 0), 0), "format_version is not a whole number")
    need(whole(manifest.get("dim"), 1) and manifest["dim"] <= 1 << 16, f"dim {manifest.get('dim')!r} is not a vector size")
    need(isinstance(manifest.get("mode"), str), "mode is not a name")
    need(whole(manifest.get("k"), 1), f"k {manifest.get('k')!r} is not a positive whole number")
    need(isinstance(manifest.get("coreset_ratio"), (int, float)) and not isinstance(manifest["coreset_ratio"], bool),
         "coreset_ratio is not a number")
    need(whole(manifest.get("next_id"), 0) and manifest["next_id"] < 1 << (63 - PATCH_ID_BITS),
         f"next_id {manifest.get('next_id')!r} is not a valid id")
    need(whole(manifest.get("generation", 0), 0), "generation is not a whole number")
    need(isinstance(manifest.get("files"), dict), "no file list")
    grid = manifest.get("patch_grid")
    need(grid is None or (isinstance(grid, list) and len(grid) == 2 and all(whole(v, 1) for v in grid)),
         "patch_grid is not two sizes")
    need(manifest.get("threshold") is None or isinstance(manifest["threshold"], dict), "threshold is not a record")
    need(manifest.get("compiled_embedder") is None or isinstance(manifest["compiled_embedder"], dict),
         "compiled_embedder is not a record")
    scale = manifest.get("map_scale")
    need(scale is None or (isinstance(scale, dict) and all(
        isinstance(scale.get(key), (int, float)) and not isinstance(scale.get(key), bool) and math.isfinite(scale[key])
        for key in ("low", "high"))), "map_scale is not a record of two numbers")
    need(manifest.get("patch_bank") in (None, True, False), "patch_bank is not true or false")
    need(manifest.get("region_bank") in (None, True, False), "region_bank is not true or false")
    kinds = manifest.get("index_kinds")
    need(kinds is None or (isinstance(kinds, dict) and set(kinds) <= set(ROLES)
                           and all(isinstance(v, str) for v in kinds.values())), "index_kinds is not role -> kind")
    records = manifest.get("stores", {})
    need(isinstance(records, dict) and set(records) <= set(ROLES), "stores is not role -> record")


def refuse_to_replace(folder: str | Path, force: bool = False) -> None:
    """ConflictError when `folder` already holds an index and `force` is not given."""
    if not force and (Path(folder) / MANIFEST).is_file():
        raise ConflictError(f"{folder} already holds an index; it is not replaced without asking",
                            hint="pass {param} to replace it (its ids are not reused)", parameter="force")


def update_index(folder: str | Path, change: Callable[["ExemplarIndex"], T], fingerprint: str | None = None,
                 wait: float = DEFAULT_WAIT) -> tuple["ExemplarIndex", T]:
    """Read the committed index, apply `change` to it and save it, all under the folder's writer lock, so
    concurrent writers (processes, the service) never lose each other's changes. Returns the saved index and
    what `change` returned; nothing is saved when `change` raises."""
    with IndexLock(folder, wait):
        index = ExemplarIndex.load(folder, fingerprint=fingerprint)
        result = change(index)
        index.save(folder, wait=wait)
    return index, result
