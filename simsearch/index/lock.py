"""One writer at a time per index folder, across processes: an advisory lock on `<folder>/.lock`, held from
reading the committed index to committing the next generation. The CLI, the Python API and the service all
take it, so no writer saves over a change it has not read."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from simsearch.errors import ConflictError, IndexProblem, InputError

LOCK_FILE = ".lock"
DEFAULT_WAIT = 60.0  # seconds a writer waits for another one: long enough for a normal `add`, short of a hang
_POLL = 0.05

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: msvcrt locks one byte instead
    fcntl = None
    import msvcrt

# Locks this process holds, by folder: a thread that already holds a folder's lock takes it again for free
# (update_index holds it and save() asks for it), another thread of the process waits like another process.
_held: dict[str, tuple[int, int, int]] = {}  # folder -> (thread id, fd, depth)
_held_guard = threading.Lock()


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:  # pragma: no cover
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)


def check_wait(wait: float) -> float:
    """A writer's wait in seconds: a finite number >= 0, else InputError (nan would wait for ever)."""
    try:
        seconds = float(wait)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"a wait of {wait!r} seconds is not a finite number of seconds >= 0",
                         hint="give {param} in seconds, e.g. 60 (0: do not wait)", parameter="wait")
    return seconds


class IndexLock:
    """Exclusive writer lock of an index folder; waits up to `wait` seconds, then ConflictError (exit 5)."""

    def __init__(self, folder: str | Path, wait: float = DEFAULT_WAIT):
        self.folder = Path(folder)
        self.wait = check_wait(wait)
        self._key = os.path.realpath(self.folder)

    def __enter__(self) -> "IndexLock":
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock (creating the folder and its lock file if need be)."""
        me = threading.get_ident()
        with _held_guard:
            held = _held.get(self._key)
            if held is not None and held[0] == me:
                _held[self._key] = (me, held[1], held[2] + 1)
                return
        fd = self._open()
        deadline = time.monotonic() + max(self.wait, 0.0)
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise ConflictError(f"{self.folder} is being changed by another writer (waited {self.wait:g} s)",
                                    hint="try again, or wait longer with {param}", parameter="wait")
            time.sleep(_POLL)
        with _held_guard:
            _held[self._key] = (me, fd, 1)

    def release(self) -> None:
        """Give the lock back (the outermost release of this thread unlocks)."""
        with _held_guard:
            me, fd, depth = _held[self._key]
            if depth > 1:
                _held[self._key] = (me, fd, depth - 1)
                return
            del _held[self._key]
        _unlock(fd)

    def _open(self) -> int:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Never through a symlink: a planted link must not make us create or lock a file elsewhere.
            return os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as error:
            raise IndexProblem(f"cannot lock {self.folder / LOCK_FILE}: {error.strerror or error}",
                               hint="check that the index folder is writable") from None


def holds_lock(folder: str | Path) -> bool:
    """True when this thread holds the folder's writer lock."""
    held = _held.get(os.path.realpath(Path(folder)))
    return held is not None and held[0] == threading.get_ident()


__all__ = ["DEFAULT_WAIT", "LOCK_FILE", "IndexLock", "holds_lock"]
