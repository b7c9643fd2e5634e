"""File helpers shared by the pipeline steps: hashing, and the one atomic write every artifact goes through."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(folder: str | Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_temporary(path: str | Path) -> tuple[int, Path]:
    """A new empty file beside `path` (`.NAME.RANDOM.tmp`), open for writing: (fd, its path)."""
    path = Path(path)
    # A fresh name created exclusively and never through a symlink: nobody can plant a file for us to write into,
    # and two writers never share a temporary file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    return os.open(temporary, flags, 0o644), temporary


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write a file so that readers see the old bytes or the new ones, whole, even after a crash."""
    path = Path(path)
    fd, temporary = open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """write_bytes_atomic for text."""
    write_bytes_atomic(path, text.encode(encoding))
