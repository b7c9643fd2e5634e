"""Atomic saving of an index folder: each save writes a new generation of files, then switches the
manifest to it with one rename, so a crash at any point leaves the previous index readable. The manifest
records each file's size and sha256, and loading checks them."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

from simsearch.errors import IndexProblem
from simsearch.files import file_sha256, fsync_dir, open_temporary, write_bytes_atomic
from simsearch.index.lock import DEFAULT_WAIT, LOCK_FILE, IndexLock
from simsearch.index.signing import check_signature, signed, signing_key

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_GENERATION_FILE = re.compile(r"^[a-z_]+-(\d{6,})\.(faiss|sqlite|onnx|bin)$")
# by role, unless a save names another (an artifact: `bin`); every other role is a FAISS index. `embedder` is the
# compiled embedder copy's name since format 1
EXTENSIONS = {"catalogue": "sqlite", "embedder": "onnx"}
# Temporary files of a save that did not finish: ours (`.NAME.RANDOM.tmp`) and older simsearch's (`NAME.tmp`), and
# the SQLite journal of a catalogue whose writer was killed while writing it (`...sqlite...-journal`).
_TEMPORARY = re.compile(r"^\.([a-z_]+-\d{6,}\.(faiss|sqlite|onnx|bin)|manifest\.json)\.[0-9a-f]+\.tmp$|"
                        r"^[a-z_]+-\d{6,}\.(faiss|sqlite)\.tmp$|"
                        r"^\.?[a-z_]+-\d{6,}\.sqlite(\.[0-9a-f]+)?(\.tmp)?-(journal|wal|shm)$")
FAST_HASH_LIMIT = 64 << 20  # fast loads hash files up to this size and only check the size of bigger ones


@dataclass(frozen=True)
class Unchanged:
    """A file of the generation an index was read from, kept as it is: hard-linked into the new generation
    (nothing rewritten); `content` is written instead where the file system has no hard links or the file is no
    longer what was read."""

    path: Path
    content: bytes


# a file's bytes, a function that fills the (empty) file at a path, or an earlier generation's file to keep
Writer = Union[bytes, Callable[[Path], None], Unchanged]


class StorageError(IndexProblem, OSError):
    """An index folder that cannot be read or written, or whose files are not what its manifest records."""


def read_manifest(folder: str | Path, verify_signature: bool = True) -> dict:
    """The manifest of an index folder; StorageError when there is none or it is unreadable, SignatureError when
    a signing key is configured and does not sign it (`verify_signature`: writers reading only the generation and
    next id, and `simsearch verify`, look without)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        what = "does not exist" if not folder.exists() else "is not a simsearch index (no manifest.json)"
        raise StorageError(f"{folder} {what}; build one with `simsearch build-index`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StorageError(f"{path} is unreadable ({error})") from None
    except RecursionError:  # JSON nested deeper than Python's parser goes: no manifest of ours
        raise StorageError(f"{path} is damaged: nested too deeply; rebuild the index with `simsearch build-index`") \
            from None
    if not isinstance(manifest, dict):
        raise StorageError(f"{path} is damaged: not a JSON object; rebuild the index with `simsearch build-index`")
    # the embedder record is read before the index is loaded (to open the embedder it was built with)
    embedder = manifest.get("embedder", {})
    if not isinstance(embedder, dict) or not isinstance(embedder.get("config", {}), dict):
        raise StorageError(f"{path} is damaged: its embedder is not a record; rebuild the index with "
                           "`simsearch build-index`")
    if verify_signature:
        check_signature(path, manifest, signing_key(folder))
    return manifest


def committed_generation(folder: str | Path) -> int | None:
    """The generation the folder's manifest names (None: no index there yet)."""
    if not (Path(folder) / MANIFEST).is_file():
        return None
    generation = read_manifest(folder, verify_signature=False).get("generation", 0)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise StorageError(f"{Path(folder) / MANIFEST} is damaged: generation {generation!r} is not a whole number")
    return generation


def generation_file(folder: str | Path, manifest: dict, role: str, fast: bool = False) -> Path:
    """The path of one of the manifest's files, checked against its record (size, and sha256 unless `fast`
    and the file is big); StorageError naming the file otherwise."""
    folder = Path(folder)
    files = manifest.get("files")
    name = files.get(role) if isinstance(files, dict) else None
    if name is None:
        raise StorageError(f"{folder / MANIFEST} is damaged: it names no {role} file")
    # Only a plain generation file name of this folder: never a path that leads elsewhere (../../etc/passwd).
    if not isinstance(name, str) or not _GENERATION_FILE.match(name):
        raise StorageError(f"{folder / MANIFEST} is damaged: {role} file {name!r} is not a file name of the index")
    path = folder / name
    if not path.is_file() or path.is_symlink():
        raise StorageError(f"{path} is missing or not a plain file; the index is damaged")
    checksums = manifest.get("checksums", {})
    if not isinstance(checksums, dict):
        raise StorageError(f"{folder / MANIFEST} is damaged: its checksums are not a record")
    record = checksums.get(role)
    if record is None and "checksums" in manifest:
        raise StorageError(f"{folder / MANIFEST} is damaged: it records no checksum for {name}")
    if record is None:
        return path  # an index written before checksums: loading still checks its shapes and ids
    if not isinstance(record, dict):
        raise StorageError(f"{folder / MANIFEST} is damaged: the checksum record of {name} is not an object")
    size = path.stat().st_size
    if size != record.get("bytes"):
        raise StorageError(f"{path} is damaged: {size} bytes, the manifest records {record.get('bytes')}")
    if (not fast or size <= FAST_HASH_LIMIT) and file_sha256(path) != record.get("sha256"):
        raise StorageError(f"{path} is damaged: its sha256 differs from the one the manifest records")
    return path


def check_index_folder(folder: str | Path) -> None:
    """Refuse to save into a file or into a folder that holds something other than an index."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StorageError(f"{folder} is a file, not an index folder", hint="save the index to another folder")
    if folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise StorageError(f"{folder} exists and is not a simsearch index",
                           hint="save the index to an empty or new folder")


def _write_file(path: Path, content: Writer) -> None:
    """Fill a new file at `path` (already created empty) with bytes or through a writer function."""
    if isinstance(content, (bytes, bytearray)):
        with open(path, "r+b") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    else:
        content(path)


def _link_unchanged(unchanged: Unchanged, sha256: str, target: Path) -> bool:
    """Make `target` a hard link to the unchanged file, if the file system allows and the file still holds
    what was read (`sha256`, its content's); False otherwise (then it is written)."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.link(unchanged.path, temporary, follow_symlinks=False)  # never over an existing name
    except (OSError, NotImplementedError):
        return False
    if file_sha256(temporary) != sha256:
        temporary.unlink(missing_ok=True)
        return False
    os.replace(temporary, target)
    return True


def save_generation(folder: str | Path, manifest: dict, writers: dict[str, Writer],
                    wait: float = DEFAULT_WAIT, extensions: dict[str, str] | None = None) -> dict:
    """Write one generation of files (role -> bytes or writer(path)) and commit it by replacing the manifest,
    under the folder's writer lock. `extensions`: a file's extension by role where it is not EXTENSIONS' (faiss).

    The manifest gets `generation`, `files` (role -> file name) and `checksums` (role -> bytes, sha256), and a
    `signature` where a signing key is configured (`signing`).
    Files of older generations are deleted only after the new manifest is in place.
    """
    folder = Path(folder)
    check_index_folder(folder)
    key = signing_key(folder)  # before anything is written: a key that cannot be read stops the save
    with IndexLock(folder, wait):
        try:
            previous = committed_generation(folder) or 0
            generation = max(previous, int(manifest.get("generation", 0))) + 1
            files, checksums = {}, {}
            for role, content in writers.items():
                extension = (extensions or {}).get(role) or EXTENSIONS.get(role, "faiss")
                name = f"{role}-{generation:06d}.{extension}"
                if isinstance(content, Unchanged):
                    digest = hashlib.sha256(content.content).hexdigest()
                    if _link_unchanged(content, digest, folder / name):
                        files[role] = name
                        checksums[role] = {"bytes": (folder / name).stat().st_size, "sha256": digest}
                        continue
                    content = content.content
                fd, temporary = open_temporary(folder / name)  # exclusive, never through a symlink
                os.close(fd)
                try:
                    _write_file(temporary, content)
                    os.replace(temporary, folder / name)
                except BaseException:
                    temporary.unlink(missing_ok=True)
                    raise
                digest = hashlib.sha256(content).hexdigest() if isinstance(content, (bytes, bytearray)) \
                    else file_sha256(folder / name)
                files[role] = name
                checksums[role] = {"bytes": (folder / name).stat().st_size, "sha256": digest}
            manifest = signed({**manifest, "generation": generation, "files": files, "checksums": checksums}, key)
            fsync_dir(folder)  # the generation's files are in place before the manifest names them
            # the commit point
            write_bytes_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
        except PermissionError as error:
            raise StorageError(f"cannot write the index to {folder}: permission denied ({error.filename})") from None
        except OSError as error:
            if isinstance(error, StorageError):
                raise
            raise StorageError(f"cannot write the index to {folder}: {error.strerror or error}") from None
        _remove_stale(folder, generation)
    return manifest


def _remove_stale(folder: Path, committed: int) -> None:
    """Under the lock: delete generations older than the committed one and unfinished temporary files.

    Newer generation files are left alone (only a writer that does not lock could have made them)."""
    for stale in folder.iterdir():
        match = _GENERATION_FILE.match(stale.name)
        if (match and int(match.group(1)) < committed) or _TEMPORARY.match(stale.name):
            if stale.is_dir() and not stale.is_symlink():
                continue  # not a file a save leaves: not ours to delete
            try:
                stale.unlink(missing_ok=True)
            except OSError as error:  # after the commit: the save succeeded, a later one cleans up
                log.warning("could not delete the stale file %s (%s)", stale, error.strerror or error)


__all__ = ["EXTENSIONS", "FAST_HASH_LIMIT", "MANIFEST", "StorageError", "Unchanged", "check_index_folder",
           "committed_generation", "generation_file", "read_manifest", "save_generation", "write_bytes_atomic"]
