"""The exemplar catalogue: id -> source path, label, defect type and file hash, kept in SQLite; and the data root
its paths are resolved against when the data moved."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence


@dataclass(frozen=True)
class NewExemplar:
    """What `ExemplarIndex.add` needs to know of an exemplar besides its vectors."""

    path: str
    label: str = "good"
    defect_type: str | None = None
    sha256: str = ""


@dataclass(frozen=True)
class Exemplar:
    """One stored exemplar; `id` is stable for the life of the index."""

    id: int
    path: str
    label: str  # "good" or "defect"
    defect_type: str | None
    sha256: str
    added: str  # ISO time

    def to_dict(self) -> dict:
        return asdict(self)


SCHEMA = """CREATE TABLE exemplars (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, label TEXT NOT NULL CHECK (label IN ('good', 'defect')),
    defect_type TEXT, sha256 TEXT NOT NULL, added TEXT NOT NULL)"""


def write_catalogue(path: str | Path, exemplars: list[Exemplar]) -> None:
    """Write a new SQLite catalogue file (the file must not exist yet)."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(SCHEMA)
            connection.executemany(
                "INSERT INTO exemplars (id, path, label, defect_type, sha256, added) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.id, e.path, e.label, e.defect_type, e.sha256, e.added) for e in exemplars])
    finally:
        connection.close()


def read_catalogue(path: str | Path) -> dict[int, Exemplar]:
    """Read every exemplar of a catalogue file, by id."""
    # read-only needs a URI: the path quoted, so that `#`, `?` or `%41` in a folder name stay part of it
    uri = f"file:{urllib.parse.quote(Path(path).absolute().as_posix())}?mode=ro"
    connection = sqlite3.connect(uri, uri=True)
    try:
        rows = connection.execute("SELECT id, path, label, defect_type, sha256, added FROM exemplars").fetchall()
    finally:
        connection.close()
    return {row[0]: Exemplar(*row) for row in rows}


# -- the data root: where the exemplars' files are, so that an index follows its data when both move ----------
# The catalogue keeps each file's path as it was added (absolute: every simsearch that reads formats 1 to 3 reads
# them), and the manifest records the folder they were under (`data_root`) and that folder as seen from the index
# folder (`data_root_from_index`). On reading, the paths under the recorded root are resolved against the root
# where the files are now: the recorded one, the one the index folder's position gives (the data and the index
# moved together), or one the caller names. Paths outside the root (or of in-memory images) stay as they are.
ROOT_SAMPLE = 8  # exemplar files looked for under a candidate root before it is taken


def common_folder(paths: Iterable[str]) -> str | None:
    """The deepest folder holding every absolute path of `paths` (None where none is absolute)."""
    folders = [os.path.dirname(path) for path in paths if os.path.isabs(path)]
    if not folders:
        return None
    try:
        return os.path.commonpath(folders)
    except ValueError:  # paths on different drives (Windows): no common folder
        return None


def _is_filesystem_root(folder: str) -> bool:
    return os.path.dirname(folder) == folder


def root_to_record(paths: Iterable[str], recorded: str | None) -> str | None:
    """The data root a save records: the recorded one, widened to hold files added from elsewhere, unless that would
    take the whole file system (then the new paths simply stay outside it); the files' common folder for an index
    that records none yet."""
    paths = list(paths)
    widened = common_folder(paths + ([os.path.join(recorded, "-")] if recorded else []))
    if widened is None or _is_filesystem_root(widened):
        return recorded if recorded and not _is_filesystem_root(recorded) else None
    return widened


def relative_to(path: str, root: str) -> str | None:
    """`path` relative to the folder `root` (POSIX or native separators as given), or None when outside it."""
    prefix = root if root.endswith(os.sep) else root + os.sep
    return path[len(prefix):] if path.startswith(prefix) else None


def moved_exemplars(exemplars: dict[int, Exemplar], old_root: str, new_root: str) -> dict[int, Exemplar]:
    """The exemplars with each path under `old_root` moved under `new_root` (the others as they are)."""
    moved = {}
    for key, exemplar in exemplars.items():
        relative = relative_to(exemplar.path, old_root)
        moved[key] = exemplar if relative is None else replace(exemplar, path=os.path.join(new_root, relative))
    return moved


def find_data_root(exemplars: dict[int, Exemplar], recorded: str | None, candidates: Sequence[str]) -> str | None:
    """The first of `candidates` (folders) under which exemplar files recorded under `recorded` are found (a few
    are looked for), or None: no candidate holds any, or no file was recorded under it."""
    sample = []
    for exemplar in exemplars.values():
        relative = relative_to(exemplar.path, recorded) if recorded else None
        if relative is not None:
            sample.append(relative)
            if len(sample) == ROOT_SAMPLE:
                break
    for candidate in dict.fromkeys(candidates):  # each once, in order
        if any(os.path.isfile(os.path.join(candidate, relative)) for relative in sample):
            return candidate
    return None
