"""The exemplar catalogue: id -> source path, label, defect type and file hash, kept in SQLite."""

from __future__ import annotations

import sqlite3
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path


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
