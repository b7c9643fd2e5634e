"""An index folder: the manifest (what it records, its checks, the formats it reads), loading with retry when a
writer commits meanwhile, saving a new generation under the folder's lock, and read-change-save under one lock
(`update_index`). The low-level atomic generation writer is `storage`."""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from simsearch.errors import ConflictError, IndexProblem, InputError, NotFoundError
from simsearch.index.catalogue import (
    common_folder,
    find_data_root,
    moved_exemplars,
    read_catalogue,
    relative_to,
    root_to_record,
    write_catalogue,
)
from simsearch.index.exemplar_index import LABELS, MAX_K, ExemplarIndex, IndexMismatchError, now
from simsearch.index.kinds import EXACT, ROLES, KindRecord
from simsearch.index.lock import DEFAULT_WAIT, IndexLock
from simsearch.index.roles import CATALOGUE_ROLES, ID_LIMIT, KEEPERS, PATCH_ID_BITS, Role, check_name
from simsearch.index.storage import (
    EXTENSIONS,
    MANIFEST,
    StorageError,
    Unchanged,
    check_index_folder,
    committed_generation,
    generation_file,
    read_manifest,
    save_generation,
)
from simsearch.index.vectors import VectorStore

T = TypeVar("T")

# 3: the stores' roles and the artifacts are recorded (a scoring mode's own stores, any artifact). Indexes whose
# stores and artifacts formats 1 and 2 knew are still written as those, so that older simsearch reads them:
# 2: a bank of defect patches beside the good one, stores of other index kinds than exact (IVF, HNSW, PQ) with
# their records; 1: all stores exact, no defect patches (read as having an empty defect patch bank).
FORMAT_VERSION = 3
# formats 1 and 2 knew these stores, recorded as "patch_bank" and "region_bank", and one artifact: the compiled
# embedder copy, recorded as "compiled_embedder" with its file under the role "embedder"
_PATCH_BANK = {"patches": Role("good", per_patch=True), "defect_patches": Role("defect", per_patch=True)}
_REGION_BANK = {"good_regions": Role("good"), "defect_regions": Role("defect")}
_LEGACY_ROLE_SETS = ({}, _PATCH_BANK, {**_PATCH_BANK, **_REGION_BANK})
_LEGACY_ARTIFACT = "embedder"
# manifest keys that only simsearch versions writing checksums wrote (older ones lack them)
_WRITTEN_WITH_CHECKSUMS = ("index_kinds", "stores", "compiled_embedder", "map_scale", "roles", "artifacts")


def format_version(index: ExemplarIndex) -> int:
    """The format an index is written as: the oldest that holds all it keeps."""
    mode_roles = {role: spec for role, spec in index.roles.items() if role not in CATALOGUE_ROLES}
    if mode_roles not in _LEGACY_ROLE_SETS or set(index.artifacts) - {_LEGACY_ARTIFACT}:
        return FORMAT_VERSION
    defect_patches = index.vectors.get("defect_patches")
    return 2 if any(s.kind != EXACT for s in index.vectors.values()) or (defect_patches and len(defect_patches)) else 1


def manifest_of(index: ExemplarIndex) -> dict[str, Any]:
    legacy_copy = index.artifact_records.get(_LEGACY_ARTIFACT) if _LEGACY_ARTIFACT in index.artifacts else None
    return {
        "format": "simsearch-index", "format_version": format_version(index),
        "index_kinds": dict(index.index_kinds),
        "stores": {role: store.record.to_dict() for role, store in index.vectors.items() if store.record},
        "embedder": {"config": index.embedder_config, "fingerprint": index.fingerprint},
        "dim": index.dim, "mode": index.mode, "k": index.k, "coreset_ratio": index.coreset_ratio,
        "roles": {role: spec.to_dict() for role, spec in index.roles.items() if role not in CATALOGUE_ROLES},
        # what formats 1 and 2 read instead of `roles` and `artifacts`
        "patch_bank": "patches" in index.roles, "region_bank": "good_regions" in index.roles,
        "compiled_embedder": legacy_copy,
        "patch_grid": list(index.patch_grid) if index.patch_grid else None,
        "next_id": index.next_id, "counts": index.counts(), "threshold": index.threshold,
        "map_scale": index.map_scale, "created": index.created, "updated": index.updated,
        "generation": index.generation,
        "artifacts": {name: index.artifact_records.get(name, {}) for name in index.artifacts},
        # where the exemplars' files were (the catalogue's paths stay as added, read by every format); the
        # index folder's position relative to it is added when saved (`data_root_from_index`)
        "data_root": index.data_root,
    }


LOAD_ATTEMPTS = 5  # reads of a folder whose manifest keeps moving on (writers committing) before giving up


# -- loading ---------------------------------------------------------------------------------------------
def load_index(folder: str | Path, fingerprint: str | None = None, fast: bool = False,
               data_root: str | Path | None = None, verify_signature: bool = True) -> ExemplarIndex:
    """Read an index and check it against its manifest (file sizes and sha256, dims, counts, ids); refuse
    a newer format, or (when given) another embedder's fingerprint, and where a signing key is configured a
    manifest it does not sign (unless not `verify_signature`). `fast` skips hashing big files.

    The exemplars' paths are resolved where their files are now (`resolve_data_root`): under the recorded data
    root, else under the folder that holds it as seen from the index folder (the two moved together), or under
    `data_root` when given (the data moved elsewhere)."""
    folder = Path(folder)
    for attempt in range(LOAD_ATTEMPTS):
        manifest = read_manifest(folder, verify_signature)
        try:
            index = _from_manifest(folder, manifest, fingerprint, fast)
            resolve_data_root(index, folder, manifest, data_root)
            return index
        except OSError as error:  # StorageError, or a file deleted between its check and its reading
            # A writer may have committed and cleaned up between our reading the manifest and its files:
            # read again when the manifest moved on, else the folder really is damaged.
            if attempt + 1 < LOAD_ATTEMPTS and committed_generation(folder) != manifest.get("generation"):
                continue
            if isinstance(error, StorageError):
                raise
            raise StorageError(f"{folder} could not be read: {error.strerror or error} ({error.filename}); the index "
                               "is damaged, or was changed faster than it could be read: try again") from None
    raise AssertionError("unreachable")


def resolve_data_root(index: ExemplarIndex, folder: Path, manifest: dict, given: str | Path | None = None) -> None:
    """Point the exemplars' paths under the recorded data root (an older index: their common folder) at the
    root where their files are now, and make it the index's (recorded at its next save)."""
    recorded = manifest.get("data_root") or common_folder(e.path for e in index.exemplars.values())
    index.data_root = recorded
    if not recorded:
        return
    if given is not None:
        chosen = os.path.abspath(given)
        if not os.path.isdir(chosen):
            raise InputError(f"the data root {given} is not a folder", hint="give {param} the folder that now holds "
                             f"the index's exemplar files (they were under {recorded})", parameter="data_root")
        if chosen != recorded and find_data_root(index.exemplars, recorded, [chosen]) is None:
            example = next((e.path for e in index.exemplars.values() if relative_to(e.path, recorded)), None)
            if example is not None:
                raise InputError(f"none of the index's exemplar files are under {given} (e.g. "
                                 f"{relative_to(example, recorded)}, recorded under {recorded})",
                                 hint=f"give {{param}} the folder that now holds what {recorded} held",
                                 parameter="data_root")
    else:
        relative = manifest.get("data_root_from_index")
        candidates = [recorded] + ([os.path.normpath(os.path.join(os.path.abspath(folder), relative))]
                                   if relative else [])
        chosen = find_data_root(index.exemplars, recorded, candidates) or recorded
    if chosen != recorded:
        index.exemplars = moved_exemplars(index.exemplars, recorded, chosen)
        index.data_root = chosen


def _roles(manifest: dict) -> tuple[dict[str, Role], set[str]]:
    """The mode's stores an index keeps, and those that may lack a file (format 1: no defect patch bank)."""
    if "roles" in manifest:
        return {role: Role(spec["label"], spec["per_patch"], spec.get("dim"))
                for role, spec in manifest["roles"].items()}, set()
    patch_bank = manifest.get("patch_bank")
    if patch_bank is None:  # written before it was recorded: every mode but the image mode kept patches
        patch_bank = manifest["mode"] != "image"
    if not patch_bank:
        return {}, set()
    return ({**_PATCH_BANK, **(_REGION_BANK if manifest.get("region_bank") else {})}), {"defect_patches"}


def _from_manifest(folder: Path, manifest: dict, fingerprint: str | None, fast: bool) -> ExemplarIndex:
    if manifest.get("format") != "simsearch-index":
        raise IndexMismatchError(f"{folder} is not a simsearch index")
    version = manifest.get("format_version", 0)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise IndexMismatchError(f"{folder} has index format {version}, newer than this simsearch reads "
                                 f"({FORMAT_VERSION}); upgrade simsearch")
    check_manifest(folder / MANIFEST, manifest)
    if KEEPERS and manifest["mode"] not in KEEPERS:  # where scoring modes are registered: one that scores it
        raise IndexMismatchError(f"{folder} is scored with the mode {manifest['mode']!r}, which this simsearch "
                                 f"does not know (known: {', '.join(sorted(KEEPERS))})",
                                 hint="upgrade simsearch, import the module that registers that mode, or rebuild the "
                                      "index with `simsearch build-index --mode`")
    stored = manifest["embedder"]["fingerprint"]
    if fingerprint is not None:
        check_fingerprint(folder, stored, fingerprint)
    try:
        roles, optional = _roles(manifest)
        index = ExemplarIndex(manifest["dim"], manifest["embedder"]["config"], stored, manifest["mode"],
                              manifest["k"], manifest["coreset_ratio"], manifest.get("index_kinds"), roles=roles)
        records = {role: KindRecord.from_dict(record) for role, record in manifest.get("stores", {}).items()}
    except (InputError, ValueError, TypeError, AttributeError) as error:
        raise StorageError(f"{folder / MANIFEST} is damaged: {error}") from None
    for role in index.roles:
        if role in optional and role not in manifest["files"]:
            continue  # its store stays empty
        path = generation_file(folder, manifest, role, fast)
        try:
            store = VectorStore.from_bytes(path.read_bytes(), records.get(role))
            store.ids()  # an id-mapped FAISS index, or not ours
        except (AttributeError, OSError, RuntimeError, ValueError, TypeError) as error:
            raise StorageError(f"{path} is damaged: not a FAISS index of this format ({error.__class__.__name__}); "
                               "rebuild the index with `simsearch build-index`") from None
        index.vectors[role] = store
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
    artifacts = manifest.get("artifacts")
    if artifacts is None:  # formats 1 and 2: the compiled embedder copy alone
        record = manifest.get("compiled_embedder")
        artifacts = {_LEGACY_ARTIFACT: record} if record is not None and _LEGACY_ARTIFACT in manifest["files"] else {}
    for name, record in artifacts.items():
        path = generation_file(folder, manifest, name, fast)
        index.artifacts[name], index.artifact_records[name] = path.read_bytes(), record
        index.artifact_files[name] = path
    _check_contents(index, folder, manifest)
    index.origin = os.path.realpath(folder)
    index.size_bytes = size_on_disk(folder, manifest)
    return index


def _check_contents(index: ExemplarIndex, folder: Path, manifest: dict) -> None:
    """Vectors, catalogue and manifest agree: dims, counts, labels, every id below next_id, and each store's
    vectors belong to exemplars of its role's label."""
    def damaged(what: str, role: str) -> StorageError:
        name = manifest["files"].get(role, MANIFEST)
        return StorageError(f"{folder / name} is damaged: {what}; rebuild the index with `simsearch build-index`")

    for role, store in index.vectors.items():
        expected = index.roles[role].dim or index.dim
        if store.dim != expected:
            raise damaged(f"{store.dim}-d vectors in a {expected}-d " + ("index" if expected == index.dim else "store"),
                          role)
    counts = manifest.get("counts")
    for role, store in index.vectors.items():
        if isinstance(counts, dict) and counts.get(role, len(store)) != len(store):
            raise damaged(f"{len(store)} {role} vectors, the manifest records {counts.get(role)}", role)
    ids = {label: set(index.vectors[label].ids().tolist()) for label in LABELS}
    for label in LABELS:
        listed = {i for i, e in index.exemplars.items() if e.label == label}
        if listed != ids[label]:
            raise damaged(f"its {label} exemplars ({len(listed)}) do not match the {label} vectors "
                          f"({len(ids[label])})", "catalogue")
    if index.exemplars and (min(index.exemplars) < 0 or max(index.exemplars) >= index.next_id):
        raise damaged(f"next_id {index.next_id} is not above every exemplar id (up to {max(index.exemplars)}), "
                      "so new exemplars would reuse ids", "manifest")
    if (problem := index.k_problem()) is not None:
        raise damaged(problem, "manifest")
    for role, spec in index.roles.items():
        store = index.vectors[role]
        if role not in CATALOGUE_ROLES and len(store):
            owners = set(spec.owners(store.ids()).tolist())
            if not owners <= ids[spec.label]:
                raise damaged(f"{role} vectors of exemplars that are not {spec.label} exemplars of the index", role)


def size_on_disk(folder: Path, manifest: dict[str, Any]) -> int | None:
    """Bytes of the manifest and the files of its generation (not the stale ones of a crashed save)."""
    try:
        names = [MANIFEST, *manifest.get("files", {}).values()]
        return sum((folder / name).stat().st_size for name in names)
    except OSError:
        return None


def check_fingerprint(folder: str | Path, stored: str, fingerprint: str) -> None:
    """IndexMismatchError unless the embedder's fingerprint is the one the index was built with."""
    if fingerprint != stored:
        raise IndexMismatchError(f"{folder} was built with another embedder (fingerprint {stored}, this one "
                                 f"is {fingerprint}); rebuild the index or use the embedder it was built with")


def check_manifest(path: Path, manifest: dict) -> None:
    """Types and ranges of what the manifest holds, before anything is built from it."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise StorageError(f"{path} is damaged: {what}; rebuild the index with `simsearch build-index`")

    def whole(value: Any, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    def named(mapping: Any) -> bool:
        try:
            return isinstance(mapping, dict) and all(check_name(name, "role") for name in mapping)
        except InputError:
            return False

    embedder = manifest.get("embedder")
    need(isinstance(embedder, dict) and isinstance(embedder.get("fingerprint"), str)
         and isinstance(embedder.get("config"), dict), "no embedder record")
    need(whole(manifest.get("format_version", 0), 0), "format_version is not a whole number")
    need(whole(manifest.get("dim"), 1) and manifest["dim"] <= 1 << 16,
         f"dim {manifest.get('dim')!r} is not a vector size")
    need(isinstance(manifest.get("mode"), str), "mode is not a name")
    need(whole(manifest.get("k"), 1) and manifest["k"] <= MAX_K, f"k {manifest.get('k')!r} is not a whole number "
         f"from 1 to {MAX_K}")
    need(isinstance(manifest.get("coreset_ratio"), (int, float)) and not isinstance(manifest["coreset_ratio"], bool),
         "coreset_ratio is not a number")
    need(whole(manifest.get("next_id"), 0) and manifest["next_id"] < ID_LIMIT,
         f"next_id {manifest.get('next_id')!r} is not a valid id")
    need(whole(manifest.get("generation", 0), 0), "generation is not a whole number")
    need(isinstance(manifest.get("files"), dict), "no file list")
    # every save since before format 2 (and its index_kinds, stores, ... keys) records the files' checksums: one
    # that lacks them was edited, and would turn every file check off
    need("checksums" in manifest or (manifest.get("format_version", 0) < 2
                                     and not set(manifest) & set(_WRITTEN_WITH_CHECKSUMS)),
         "it records no checksums for its files")
    grid = manifest.get("patch_grid")
    need(grid is None or (isinstance(grid, list) and len(grid) == 2 and all(whole(v, 1) for v in grid)),
         "patch_grid is not two sizes")
    need(manifest.get("threshold") is None or isinstance(manifest["threshold"], dict), "threshold is not a record")
    root = manifest.get("data_root")
    need(root is None or (isinstance(root, str) and os.path.isabs(root)), "data_root is not an absolute folder")
    need(manifest.get("data_root_from_index") is None or isinstance(manifest["data_root_from_index"], str),
         "data_root_from_index is not a folder")
    problem = threshold_problem(manifest.get("threshold"))
    need(problem is None, str(problem))
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
    roles = manifest.get("roles", {})
    need(named(roles) and not set(roles) & set(CATALOGUE_ROLES) and all(
        isinstance(spec, dict) and spec.get("label") in LABELS and spec.get("per_patch") in (True, False)
        and (spec.get("dim") is None or (whole(spec["dim"], 1) and spec["dim"] <= 1 << 16))
        for spec in roles.values()), "roles is not role -> {label, per_patch, dim}")
    artifacts = manifest.get("artifacts", {})
    need(named(artifacts) and not set(artifacts) & (set(roles) | set(CATALOGUE_ROLES))
         and all(isinstance(record, dict) for record in artifacts.values()), "artifacts is not name -> record")


def threshold_problem(threshold: dict | None) -> str | None:
    """Why a threshold record cannot decide anything (a number of it that is infinite or not a number), or None."""
    for key in ("value", "low", "high", "pixel_value", "target"):
        value = (threshold or {}).get(key)
        if isinstance(value, float) and not math.isfinite(value):
            return f"the threshold's {key} is {value} (with it nothing, or everything, would be rejected)"
    return None


# -- saving ----------------------------------------------------------------------------------------------
def refuse_to_replace(folder: str | Path, force: bool = False) -> None:
    """ConflictError when `folder` already holds an index and `force` is not given."""
    if not force and (Path(folder) / MANIFEST).is_file():
        raise ConflictError(f"{folder} already holds an index; it is not replaced without asking",
                            hint="pass {param} to replace it (its ids are not reused)", parameter="force")


def save_index(index: ExemplarIndex, folder: str | Path, force: bool = False, wait: float = DEFAULT_WAIT) -> None:
    """Write the index to a folder atomically, under the folder's writer lock (waiting up to `wait` s).

    Refuses (ConflictError) to save over an index this one was not read from, unless `force`: then the
    ids continue after the replaced index's, never reused; and over a folder another writer changed since
    this index was read (use `update_index` to read, change and save under one lock)."""
    folder = Path(folder)
    check_index_folder(folder)
    if (problem := threshold_problem(index.threshold)) is not None:
        raise InputError(problem, hint="calibrate on scores that are all finite numbers")
    if (problem := index.k_problem()) is not None:
        raise InputError(problem, hint=f"choose a k of {index.counts()['good']} or less for {{param}}, or add good "
                                       "exemplars", parameter="k")
    for name in index.artifacts:
        check_name(name, "artifact")
        if name in index.roles:
            raise InputError(f"artifact {name!r} has the name of one of the index's stores")
    with IndexLock(folder, wait):
        committed = _committed_for_save(index, folder, force)
        if committed is not None:
            same = index.origin == os.path.realpath(folder) and committed[0] == index.generation
            if not same:
                _shift_ids(index, committed[1])
        if index.next_id >= ID_LIMIT:  # ids continued after a replaced index's: refused before the commit
            raise IndexProblem(f"the index's ids reach {index.next_id}, not below {ID_LIMIT}; nothing was saved",
                               hint="build a new index in a new folder")
        index.apply_index_kinds()
        writers: dict[str, Any] = {role: store.to_bytes() for role, store in index.vectors.items()}
        exemplars = sorted(index.exemplars.values(), key=lambda e: e.id)
        writers["catalogue"] = lambda path: write_catalogue(path, exemplars)
        for name, data in index.artifacts.items():
            # the file it came from in this folder is kept (an artifact never changes in place, and the compiled
            # copy of a big network is hundreds of MB), else its bytes are written
            source = index.artifact_files.get(name)
            same_folder = source is not None and os.path.realpath(source.parent) == os.path.realpath(folder)
            writers[name] = Unchanged(source, data) if same_folder else data
        index.data_root = root_to_record((e.path for e in index.exemplars.values()), index.data_root)
        manifest = manifest_of(index)
        manifest["data_root_from_index"] = _relative_folder(index.data_root, folder)
        manifest["updated"] = now()
        extensions = {name: EXTENSIONS.get(name, "bin") for name in index.artifacts}
        saved = save_generation(folder, manifest, writers, wait=wait, extensions=extensions)
    index.generation = saved["generation"]
    index.updated = saved["updated"]
    index.origin = os.path.realpath(folder)
    index.artifact_files = {name: folder / saved["files"][name] for name in index.artifacts}
    index.size_bytes = size_on_disk(folder, saved)


def _relative_folder(root: str | None, folder: Path) -> str | None:
    """The data root as seen from the index folder ('../data'), or None where there is no such path."""
    if root is None:
        return None
    try:
        return os.path.relpath(root, os.path.abspath(folder))
    except ValueError:  # another drive (Windows)
        return None


def _committed_for_save(index: ExemplarIndex, folder: Path, force: bool) -> tuple[int, int] | None:
    """(generation, next_id) of the index committed in `folder`, checked against this one; None if none."""
    try:
        generation = committed_generation(folder)
        next_id = read_manifest(folder, verify_signature=False).get("next_id", 0) if generation is not None else 0
    except StorageError:
        if not force:
            raise
        return 0, 0  # replacing a damaged index: nothing of it can be kept
    if generation is None:
        return None
    next_id = next_id if isinstance(next_id, int) and next_id >= 0 else 0
    if force:
        return generation, next_id
    if index.origin != os.path.realpath(folder):
        refuse_to_replace(folder, force)
    if generation != index.generation:
        raise ConflictError(f"{folder} was changed by another writer since this index was read (generation "
                            f"{generation}, read at {index.generation}); nothing was saved",
                            hint="read it again and repeat the change (update_index does both under the lock)")
    return generation, next_id


def update_index(folder: str | Path, change: Callable[[ExemplarIndex], T], fingerprint: str | None = None,
                 wait: float = DEFAULT_WAIT, data_root: str | Path | None = None,
                 current: ExemplarIndex | None = None) -> tuple[ExemplarIndex, T]:
    """Read the committed index, apply `change` to it and save it, all under the folder's writer lock, so
    concurrent writers (processes, the service) never lose each other's changes. Returns the saved index and
    what `change` returned; nothing is saved when `change` raises.

    `current`: the caller's own copy of the committed index (a server's snapshot, read from or saved to this
    folder). Where the folder still holds that generation (nobody committed since), a copy of it is changed
    instead of reading and checking every file again; else the folder is read."""
    with IndexLock(folder, wait):
        index = _still_committed(folder, current, fingerprint)
        if index is None:
            index = load_index(folder, fingerprint=fingerprint, data_root=data_root)
        result = change(index)
        index.save(folder, wait=wait)
    return index, result


def remove_saved(folder: str | Path, ids: Sequence[int] = (), paths: Sequence[str] = (),
                 data_root: str | Path | None = None, wait: float = DEFAULT_WAIT) -> list[int]:
    """Remove exemplars from the index saved in `folder`, under its writer lock: by id, and every one added from
    one of `paths` (as given, or made absolute); a path no exemplar came from is refused, and so are unknown ids
    and the last good exemplar (`ExemplarIndex.remove`): then nothing is saved. Returns the ids removed."""

    def change(index: ExemplarIndex) -> list[int]:
        chosen = list(ids)
        for wanted in paths:
            matches = [e.id for e in index.exemplars.values()
                       if e.path == wanted or Path(e.path) == Path(wanted) or e.path == os.path.abspath(wanted)]
            if not matches:
                moved = index.data_root is not None and not os.path.isdir(index.data_root)
                raise NotFoundError(f"no exemplar in {folder} was added from {wanted}"
                                    + (f" (its files were under {index.data_root}, which is gone: if they moved, "
                                       "say where with {param:data_root})" if moved else ""))
            chosen.extend(matches)
        return index.remove(chosen)  # each id once

    return update_index(folder, change, data_root=data_root, wait=wait)[1]


def _still_committed(folder: str | Path, current: ExemplarIndex | None, fingerprint: str | None,
                     ) -> ExemplarIndex | None:
    """A copy of `current` where it is what `folder` holds committed (same folder, generation and save
    time, same embedder), else None. Under the folder's lock."""
    if current is None or current.origin != os.path.realpath(folder):
        return None
    try:
        manifest = read_manifest(Path(folder))
    except StorageError:
        return None  # load_index says what is wrong
    if (manifest.get("generation", 0) != current.generation or manifest.get("updated") != current.updated
            or (fingerprint is not None and current.fingerprint != fingerprint)):
        return None
    return current.copy()


def _shift_ids(index: ExemplarIndex, first_id: int) -> None:
    """Renumber the exemplars to start at `first_id` or later, so that replacing an index never reuses ids."""
    offset = first_id - min(index.exemplars, default=first_id)
    if offset <= 0:
        return
    for role, old in index.vectors.items():  # the stores come back exact; save applies their kinds again
        vectors, ids = old.contents()
        if index.roles[role].per_patch:
            ids = ((ids >> PATCH_ID_BITS) + offset) << PATCH_ID_BITS | (ids & ((1 << PATCH_ID_BITS) - 1))
        else:
            ids = ids + offset
        index.vectors[role] = VectorStore(old.dim)
        index.vectors[role].add(vectors, ids)
    index.exemplars = {i + offset: dataclasses.replace(e, id=i + offset) for i, e in index.exemplars.items()}
    index.next_id += offset


__all__ = ["FORMAT_VERSION", "check_fingerprint", "check_manifest", "format_version", "load_index", "manifest_of",
           "refuse_to_replace", "remove_saved", "resolve_data_root", "save_index", "size_on_disk", "update_index"]
