"""Atomic saving of an index folder: each save writes a new generation of files, then switches the
manifest to it with one rename, so a crash at any point leaves the previous index readable."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

from simsearch.errors import IndexProblem
from simsearch.files import fsync_dir, write_bytes_atomic

MANIFEST = "manifest.json"
_GENERATION_FILE = re.compile(r"^[a-z]+-\d{6}\.(faiss|sqlite)(\.tmp)?$")


class StorageError(IndexProblem, OSError):
    """An index folder that cannot be read or written."""


def read_manifest(folder: str | Path) -> dict:
    """The manifest of an index folder; StorageError when there is none or it is unreadable."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        what = "does not exist" if not folder.exists() else "is not a simsearch index (no manifest.json)"
        raise StorageError(f"{folder} {what}; build one with `simsearch build-index`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StorageError(f"{path} is unreadable ({error})") from None


def save_generation(folder: str | Path, manifest: dict,
                    writers: dict[str, Callable[[Path], None]]) -> dict:
    """Write one generation of files (role -> writer(path)) and commit it by replacing the manifest.

    The manifest gets `generation` and `files` (role -> file name). Files of older generations are
    deleted only after the new manifest is in place.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StorageError(f"{folder} is a file, not an index folder", hint="save the index to another folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise StorageError(f"{folder} exists and is not a simsearch index", hint="save the index to an empty or new folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        previous = read_manifest(folder).get("generation", 0) if (folder / MANIFEST).is_file() else 0
        generation = max(int(previous), int(manifest.get("generation", 0))) + 1
        files = {}
        for role, write in writers.items():
            name = f"{role}-{generation:06d}.{'sqlite' if role == 'catalogue' else 'faiss'}"
            temporary = folder / f"{name}.tmp"
            temporary.unlink(missing_ok=True)
            write(temporary)
            os.replace(temporary, folder / name)
            files[role] = name
        manifest = {**manifest, "generation": generation, "files": files}
        fsync_dir(folder)  # the generation's files are in place before the manifest names them
        write_bytes_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))  # the commit point
    except PermissionError as error:
        raise StorageError(f"cannot write the index to {folder}: permission denied ({error.filename})") from None
    except OSError as error:
        if isinstance(error, StorageError):
            raise
        raise StorageError(f"cannot write the index to {folder}: {error.strerror or error}") from None
    keep = set(files.values())
    for stale in folder.iterdir():
        if _GENERATION_FILE.match(stale.name) and stale.name not in keep:
            stale.unlink(missing_ok=True)
    return manifest


__all__ = ["MANIFEST", "StorageError", "read_manifest", "save_generation", "write_bytes_atomic"]
