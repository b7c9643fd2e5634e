"""The exemplar index, a store: the catalogue (ids, paths, labels, defect types, sha256), vector stores by role
(the catalogue's `good` and `defect` image vectors, and those its scoring mode declares), the threshold record,
the heatmap scale and opaque artifacts, tied by the manifest to the embedder that made the vectors. What a mode
keeps of new exemplars is its own (`StoreKeeper.bank`); the index names none. Saving and loading: `persist`."""

from __future__ import annotations

import copy as _copy
import datetime as _dt
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from simsearch.data.datasets import check_defect_type
from simsearch.embed.base import Embeddings
from simsearch.errors import ConflictError, IndexProblem, InputError, NotFoundError
from simsearch.index.catalogue import Exemplar, NewExemplar
from simsearch.index.kinds import EXACT, describe_record, parse_kinds
from simsearch.index.lock import DEFAULT_WAIT
from simsearch.index.roles import CATALOGUE_ROLES, ID_LIMIT, PATCH_ID_BITS, Role, check_name, keeper_of
from simsearch.index.vectors import VectorStore

LABELS = ("good", "defect")
# the most neighbours a score may average: far above any useful k, and within what FAISS searches on a GPU (2048)
MAX_K = 1024


class IndexMismatchError(IndexProblem, ValueError):
    """An index that cannot be used as asked: another embedder, a newer format, an unknown id."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ExemplarIndex:
    """Good and defect exemplars, each with a stable id, a catalogue entry and an image vector, and what the
    scoring mode `mode` keeps of them in its declared stores (`vectors` by role) and `artifacts`."""

    def __init__(self, dim: int, embedder_config: dict[str, Any], fingerprint: str, mode: str,
                 k: int = 1, coreset_ratio: float = 0.1,
                 index_kind: str | Mapping[str, str] | Iterable[str] | None = None,
                 roles: Mapping[str, Role] | None = None):
        # `roles`: the mode's stores (None: those the registered mode `mode` declares)
        if not 0.0 < coreset_ratio <= 1.0:
            raise InputError(f"coreset ratio must be in (0, 1], not {coreset_ratio}")
        if not 1 <= k <= MAX_K:
            raise InputError(f"k must be a whole number from 1 to {MAX_K}, not {k}")
        self.dim, self.embedder_config, self.fingerprint, self.mode = int(dim), dict(embedder_config), fingerprint, mode
        self.k, self.coreset_ratio = int(k), float(coreset_ratio)  # the modes' parameters, kept in the manifest
        # role -> requested kind ("auto" or a FAISS factory string); applied at fit's end and at every save
        self.index_kinds = parse_kinds(index_kind, self.dim)
        declared = keeper_of(mode).roles if roles is None else roles
        self.roles: dict[str, Role] = {**CATALOGUE_ROLES, **{check_name(r, "role"): v for r, v in declared.items()}}
        self.vectors = {role: VectorStore(spec.dim or self.dim) for role, spec in self.roles.items()}
        self.exemplars: dict[int, Exemplar] = {}
        self.next_id = 0
        self.patch_grid: tuple[int, int] | None = None
        self.threshold: dict[str, Any] | None = None  # the Threshold record (simsearch.decide), set by calibration
        # {"low", "high", "images"}: the good exemplars' own leave-one-out scores, set when built; the one
        # heatmap scale of the index until it is calibrated (None: an older index, or no files to re-score)
        self.map_scale: dict[str, Any] | None = None
        # name -> bytes kept with the index and its JSON record (in the manifest): never unpickled, only stored
        self.artifacts: dict[str, bytes] = {}
        self.artifact_records: dict[str, dict[str, Any]] = {}
        self.artifact_files: dict[str, Path] = {}  # the files they were read from or saved to (kept, not rewritten)
        self.created = now()
        self.updated: str | None = None  # when it was last saved
        self.generation = 0
        self.size_bytes: int | None = None  # on disk, when saved or loaded
        self.origin: str | None = None  # the folder (real path) this index was read from or saved to
        # the folder the exemplars' files are under (recorded when saved; see catalogue.find_data_root)
        self.data_root: str | None = None

    # -- contents ---------------------------------------------------------------------------------
    good = property(lambda self: self.vectors["good"], doc="the good exemplars' image vectors")
    defect = property(lambda self: self.vectors["defect"], doc="the defect exemplars' image vectors")

    def keeps_patches(self) -> bool:
        """Whether any store holds patch vectors (then patch grids must agree, and the coreset ratio applies)."""
        return any(role.per_patch for role in self.roles.values())

    def __len__(self) -> int:
        return len(self.exemplars)

    def counts(self) -> dict[str, int]:
        """Exemplars by label, and the vectors in each of the mode's stores."""
        good = sum(e.label == "good" for e in self.exemplars.values())
        return {"good": good, "defect": len(self.exemplars) - good,
                **{role: len(store) for role, store in self.vectors.items() if role not in CATALOGUE_ROLES}}

    def k_problem(self) -> str | None:
        """Why k cannot be used with these exemplars (more neighbours than good exemplars), or None."""
        good = self.counts()["good"]
        if good and self.k > good:
            return f"k {self.k} is above the index's {good} good exemplar(s): a score averages k good neighbours"
        return None

    def defect_types(self) -> dict[str, int]:
        types: dict[str, int] = {}
        for key in (e.defect_type or "(untyped)" for e in self.exemplars.values() if e.label == "defect"):
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
        """Add exemplars to the catalogue with their image vectors (N, D), then hand them, with their patch grids
        (N, h, w, D) and masks (one (h, w) boolean grid or None each), to the scoring mode's `bank`. Without
        `allow_duplicates`, items in `duplicates(items)` are skipped. Returns the new ids. Nothing changes if
        the input is inconsistent or the bank refuses it."""
        keeper = keeper_of(self.mode)
        image_vectors = np.asarray(image_vectors, dtype=np.float32).reshape(len(items), -1)
        patch_vectors = None if patch_vectors is None else np.asarray(patch_vectors, dtype=np.float32)
        if masks is not None and len(masks) != len(items):
            raise InputError(f"{len(masks)} masks for {len(items)} exemplars")
        if not allow_duplicates:
            repeated = {id(item) for item in self.duplicates(items)}
            keep = [n for n, item in enumerate(items) if id(item) not in repeated]
            items, image_vectors = [items[n] for n in keep], image_vectors[keep]
            patch_vectors = None if patch_vectors is None else patch_vectors[keep]
            masks = None if masks is None else [masks[n] for n in keep]
        if not items:
            return []
        if image_vectors.shape[1] != self.dim:
            raise IndexMismatchError(f"vectors have {image_vectors.shape[1]} dimensions, the index {self.dim}")
        labels = [item.label for item in items]
        if any(label not in LABELS for label in labels):
            raise InputError(f"labels must be good or defect, got {sorted(set(labels))}")
        types = [check_defect_type(item.defect_type) if item.label == "defect" else None for item in items]
        if self.next_id + len(items) >= ID_LIMIT:  # refused now, never saved and then unreadable
            raise IndexProblem(f"the index has no ids left for {len(items)} more exemplar(s) (the next is "
                               f"{self.next_id}, ids stay below {ID_LIMIT}); nothing was added",
                               hint="build a new index from its exemplars")
        is_good = np.array([label == "good" for label in labels], dtype=bool)
        grid = self._check_patches(patch_vectors, masks, bool(is_good.any()))
        ids = np.arange(self.next_id, self.next_id + len(items), dtype=np.int64)
        before = self.next_id, self.patch_grid
        self.good.add(image_vectors[is_good], ids[is_good])
        self.defect.add(image_vectors[~is_good], ids[~is_good])
        added = now()
        for position, (exemplar_id, item) in enumerate(zip(ids.tolist(), items)):
            self.exemplars[exemplar_id] = Exemplar(exemplar_id, str(item.path), item.label, types[position],
                                                   item.sha256, added)
        self.next_id += len(items)
        if grid is not None and is_good.any():
            self.patch_grid = grid
        try:
            keeper.bank(self, ids, labels, Embeddings(image_vectors, patch_vectors), masks)
        except BaseException:
            self._discard(ids)  # all or nothing
            self.next_id, self.patch_grid = before
            raise
        return ids.tolist()

    def _check_patches(self, patch_vectors: np.ndarray | None, masks: Sequence[np.ndarray | None] | None,
                       any_good: bool) -> tuple[int, int] | None:
        """The patch grid of new exemplars where a store keeps patches, checked against the index's and the masks."""
        if not self.keeps_patches():
            return None
        if patch_vectors is None:
            if any_good:
                raise InputError("this index's scoring mode keeps patch vectors: it needs them for good exemplars")
            return None
        if patch_vectors.ndim != 4 or patch_vectors.shape[-1] != self.dim:
            raise IndexMismatchError(f"patch vectors of shape {patch_vectors.shape} are not (N, h, w, {self.dim})")
        grid = tuple(int(v) for v in patch_vectors.shape[1:3])
        if self.patch_grid is not None and grid != tuple(self.patch_grid):
            raise IndexMismatchError(f"patch grid {grid} differs from the index's {tuple(self.patch_grid)}")
        for mask in masks or ():
            if mask is not None and np.asarray(mask).any() and np.asarray(mask).shape != grid:
                raise InputError(f"mask grid {np.asarray(mask).shape} differs from the patch grid {grid}")
        return grid

    def remove(self, ids: Sequence[int]) -> list[int]:
        """Remove exemplars from the catalogue and every store by id; returns the ids removed, each once. Unknown
        ids (NotFoundError) or removing every good exemplar (ConflictError) change nothing."""
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
        left = good - sum(self.exemplars[i].label == "good" for i in ids)
        if good and left < self.k:
            raise ConflictError(f"removing them would leave {left} good exemplar(s), fewer than the index's k "
                                f"({self.k} neighbours averaged into a score); nothing was removed",
                                hint="add good exemplars first, or rebuild the index with a smaller k")
        self._discard(np.asarray(ids, dtype=np.int64))
        return ids

    def _discard(self, ids: np.ndarray) -> None:
        for role, store in self.vectors.items():
            if self.roles[role].per_patch:
                if len(store):  # one removal for all their patches: a graph kind (HNSW) rebuilds once
                    stored = store.ids()
                    store.remove_ids(stored[np.isin(stored >> PATCH_ID_BITS, ids)])
            else:
                store.remove_ids(ids)
        for exemplar_id in ids.tolist():
            self.exemplars.pop(exemplar_id, None)

    def apply_index_kinds(self) -> list[str]:
        """Hold each store in its requested index kind (auto: by its size), trained on its own vectors, where
        the kind or the size changed enough; returns the roles rebuilt (stores without a kind stay exact)."""
        return [role for role, store in self.vectors.items()
                if role in self.index_kinds and store.apply_kind(self.index_kinds[role])]

    def copy(self) -> "ExemplarIndex":
        """An independent copy (every store, the catalogue, records and artifacts) to change without touching
        this one."""
        clone = _copy.copy(self)
        clone.vectors = {role: store.copy() for role, store in self.vectors.items()}
        clone.roles, clone.exemplars, clone.index_kinds = dict(self.roles), dict(self.exemplars), dict(self.index_kinds)
        clone.artifacts, clone.artifact_files = dict(self.artifacts), dict(self.artifact_files)
        for name in ("embedder_config", "threshold", "map_scale", "artifact_records"):
            setattr(clone, name, _copy.deepcopy(getattr(self, name)))
        return clone

    # -- search -----------------------------------------------------------------------------------
    def search(self, role: str, vectors: np.ndarray, k: int,
               exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Distances and ids of the k nearest vectors (N, k) in the store `role`, leaving out what exemplar
        `exclude` owns there (leave-one-out); ids are the store's own (`owners` maps them to exemplars)."""
        store, spec = self.vectors[role], self.roles[role]
        excluded = None if exclude is None else spec.id_range(int(exclude))
        if excluded is not None and len(store) < k + (self.patch_grid[0] * self.patch_grid[1]
                                                      if spec.per_patch and self.patch_grid else 1):
            # leaving one out may leave fewer than k: average the neighbours there are, never pad with inf
            stored = store.ids()
            others = len(stored) - int(((stored >= excluded[0]) & (stored < excluded[1])).sum())
            k = max(1, min(k, others))
        return store.search(vectors, k, excluded)

    def owners(self, role: str, ids: np.ndarray) -> np.ndarray:
        """The exemplar ids that own a store's ids (-1 where none was found)."""
        return self.roles[role].owners(ids)

    def nearest_good(self, vectors: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Distances and ids of the k nearest good exemplars by image vector (leaving out id `exclude`)."""
        return self.search("good", vectors, k, exclude)

    def nearest_defect(self, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Distances and ids of the k nearest defect exemplars by image vector."""
        return self.search("defect", vectors, k)

    # -- persistence (simsearch.index.persist) ---------------------------------------------------------
    def save(self, folder: str | Path, force: bool = False, wait: float = DEFAULT_WAIT) -> None:
        """Write the index to a folder atomically (see `persist.save_index`)."""
        from simsearch.index.persist import save_index
        save_index(self, folder, force, wait)

    @classmethod
    def load(cls, folder: str | Path, fingerprint: str | None = None, fast: bool = False,
             data_root: str | Path | None = None) -> "ExemplarIndex":
        """Read an index and check it (see `persist.load_index`; `data_root`: where the exemplars' files are now)."""
        from simsearch.index.persist import load_index
        return load_index(folder, fingerprint, fast, data_root)

    def describe(self) -> dict[str, Any]:
        """What the store holds (the scoring mode adds its own fields: simsearch.score.modes.describe_index)."""
        from simsearch.index.persist import format_version
        per_patch = self.keeps_patches()
        return {
            "embedder": self.embedder_config, "fingerprint": self.fingerprint, "dim": self.dim, "mode": self.mode,
            "k": self.k,
            # The coreset ratio and the patch grid only mean something where a store keeps patches.
            "coreset_ratio": self.coreset_ratio if per_patch else None,
            "patch_grid": list(self.patch_grid) if per_patch and self.patch_grid else None,
            "counts": self.counts(), "defect_types": self.defect_types(), "threshold": self.threshold,
            "data_root": self.data_root,
            "format_version": format_version(self), "generation": self.generation,
            "created": self.created, "updated": self.updated, "bytes": self.size_bytes,
            "artifacts": {name: len(data) for name, data in self.artifacts.items()},
            # per store: the kind asked for and built, its search depth and recall against exact search
            "index_kinds": {role: {**(store.record.to_dict() if store.record else
                                      {"requested": self.index_kinds.get(role, EXACT), "kind": store.kind}),
                                   "vectors": len(store), "summary": describe_record(store.record)}
                            for role, store in self.vectors.items()},
        }
