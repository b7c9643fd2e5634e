"""The exemplar index: good and defect exemplars in FAISS, their catalogue, and the manifest that ties
them to the embedder that made their vectors."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from simsearch.data.datasets import check_defect_type
from simsearch.errors import ConflictError, IndexProblem, InputError, NotFoundError
from simsearch.files import write_bytes_atomic
from simsearch.index.catalogue import Exemplar, read_catalogue, write_catalogue
from simsearch.index.coreset import greedy_coreset, random_projection
from simsearch.index.storage import StorageError, read_manifest, save_generation
from simsearch.index.vectors import VectorStore

FORMAT_VERSION = 1
PATCH_ID_BITS = 24  # a patch's FAISS id is (exemplar id << 24) | its position in the exemplar's grid
CORESET_PROJECTION_DIM = 128


class IndexMismatchError(IndexProblem, ValueError):
    """An index that cannot be used as asked: another embedder, a newer format, an unknown id."""


@dataclass(frozen=True)
class NewExemplar:
    """What `ExemplarIndex.add` needs to know of an exemplar besides its vectors."""

    path: str
    label: str = "good"
    defect_type: str | None = None
    sha256: str = ""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ExemplarIndex:
    """Good exemplars (image vectors, and in patch mode a coreset of their patch vectors) and defect
    exemplars (image vectors, with their type), each with a stable id and a catalogue entry."""

    def __init__(self, dim: int, embedder_config: dict[str, Any], fingerprint: str, mode: str = "patch",
                 k: int = 1, coreset_ratio: float = 0.1, patch_bank: bool | None = None):
        # `mode` names the ScoringMode that reads this index; the index only needs to know whether that
        # mode keeps a bank of good patches (None: the built-in rule, only the patch mode does).
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
        self.good = VectorStore(self.dim)
        self.defect = VectorStore(self.dim)
        self.patches = VectorStore(self.dim) if (mode == "patch" if patch_bank is None else patch_bank) else None
        self.exemplars: dict[int, Exemplar] = {}
        self.next_id = 0
        self.patch_grid: tuple[int, int] | None = None
        self.threshold: dict[str, Any] | None = None  # set by calibration
        self.created = _now()
        self.updated: str | None = None  # when it was last saved
        self.generation = 0
        self.size_bytes: int | None = None  # on disk, when saved or loaded

    # -- contents ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.exemplars)

    def counts(self) -> dict[str, int]:
        """Exemplars by label, and patches in the bank."""
        good = sum(e.label == "good" for e in self.exemplars.values())
        return {"good": good, "defect": len(self.exemplars) - good,
                "patches": len(self.patches) if self.patches is not None else 0}

    def defect_types(self) -> dict[str, int]:
        types: dict[str, int] = {}
        for exemplar in self.exemplars.values():
            if exemplar.label == "defect":
                key = exemplar.defect_type or "(untyped)"
                types[key] = types.get(key, 0) + 1
        return types

    def add(self, items: Sequence[NewExemplar], image_vectors: np.ndarray,
            patch_vectors: np.ndarray | None = None) -> list[int]:
        """Add exemplars with their image vectors (N, D) and, for good ones in patch mode, patch grids
        (N, h, w, D). Good patches are reduced by greedy k-centre, continuing from the current bank.
        Returns the new ids. Nothing changes if the input is inconsistent."""
        image_vectors = np.asarray(image_vectors, dtype=np.float32).reshape(len(items), -1)
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
        if self.patches is not None and is_good.any():
            patch_rows, patch_ids = self._select_patches(np.asarray(patch_vectors)[is_good], ids[is_good])
            self.patches.add(patch_rows, patch_ids)
            self.patch_grid = tuple(int(v) for v in patch_vectors.shape[1:3])
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
        self.good.remove_ids(array)
        self.defect.remove_ids(array)
        if self.patches is not None:
            for exemplar_id in ids:
                self.patches.remove_id_range(exemplar_id << PATCH_ID_BITS, (exemplar_id + 1) << PATCH_ID_BITS)
        for exemplar_id in ids:
            del self.exemplars[exemplar_id]
        return ids

    # -- search -----------------------------------------------------------------------------------
    def nearest_good(self, vectors: np.ndarray, k: int, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Distances and ids of the k nearest good exemplars by image vector (leaving out id `exclude`)."""
        return self.good.search(vectors, k, None if exclude is None else (exclude, exclude + 1))

    def nearest_defect(self, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Distances and ids of the k nearest defect exemplars by image vector."""
        return self.defect.search(vectors, k)

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

    # -- persistence ------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return {
            "format": "simsearch-index", "format_version": FORMAT_VERSION,
            "embedder": {"config": self.embedder_config, "fingerprint": self.fingerprint},
            "dim": self.dim, "mode": self.mode, "patch_bank": self.patches is not None, "k": self.k, "coreset_ratio": self.coreset_ratio,
            "patch_grid": list(self.patch_grid) if self.patch_grid else None,
            "next_id": self.next_id, "counts": self.counts(), "threshold": self.threshold,
            "created": self.created, "updated": self.updated, "generation": self.generation,
        }

    def save(self, folder: str | Path) -> None:
        """Write the index to a folder atomically: either the new index or the old one is there, whole."""
        stores = {"good": self.good, "defect": self.defect}
        if self.patches is not None:
            stores["patches"] = self.patches
        writers = {role: (lambda path, s=store: write_bytes_atomic(path, s.to_bytes())) for role, store in stores.items()}
        exemplars = sorted(self.exemplars.values(), key=lambda e: e.id)
        writers["catalogue"] = lambda path: write_catalogue(path, exemplars)
        manifest = self.manifest()
        manifest["updated"] = _now()
        saved = save_generation(folder, manifest, writers)
        self.generation = saved["generation"]
        self.updated = saved["updated"]
        self.size_bytes = _size_on_disk(Path(folder), saved)

    @classmethod
    def load(cls, folder: str | Path, fingerprint: str | None = None) -> "ExemplarIndex":
        """Read an index; refuse a newer format, or (when given) another embedder's fingerprint."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest.get("format") != "simsearch-index":
            raise IndexMismatchError(f"{folder} is not a simsearch index")
        version = int(manifest.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise IndexMismatchError(f"{folder} has index format {version}, newer than this simsearch reads "
                                     f"({FORMAT_VERSION}); upgrade simsearch")
        stored = manifest["embedder"]["fingerprint"]
        if fingerprint is not None and fingerprint != stored:
            raise IndexMismatchError(f"{folder} was built with another embedder (fingerprint {stored}, this one "
                                     f"is {fingerprint}); rebuild the index or use the embedder it was built with")
        index = cls(manifest["dim"], manifest["embedder"]["config"], stored, manifest["mode"],
                    manifest["k"], manifest["coreset_ratio"], manifest.get("patch_bank"))
        files = manifest.get("files", {})
        try:
            for role in ("good", "defect") + (("patches",) if index.patches is not None else ()):
                store = VectorStore.from_bytes((folder / files[role]).read_bytes())
                setattr(index, role, store)
            index.exemplars = read_catalogue(folder / files["catalogue"])
        except (KeyError, OSError, RuntimeError, ValueError) as error:
            raise StorageError(f"{folder} is damaged: {error}; rebuild it with `simsearch build-index`") from None
        index.next_id = int(manifest["next_id"])
        index.patch_grid = tuple(manifest["patch_grid"]) if manifest.get("patch_grid") else None
        index.threshold = manifest.get("threshold")
        index.created = manifest.get("created", index.created)
        index.updated = manifest.get("updated")
        index.generation = int(manifest.get("generation", 0))
        index.size_bytes = _size_on_disk(folder, manifest)
        return index

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
            "created": self.created, "updated": self.updated, "bytes": self.size_bytes,
        }


def _size_on_disk(folder: Path, manifest: dict[str, Any]) -> int | None:
    """Bytes of the manifest and the files of its generation (not the stale ones of a crashed save)."""
    try:
        names = ["manifest.json", *manifest.get("files", {}).values()]
        return sum((folder / name).stat().st_size for name in names)
    except OSError:
        return None
