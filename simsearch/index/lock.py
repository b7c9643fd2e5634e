"""One writer at a time per index folder, across processes: filelock's lock on `<folder>/.lock`, held from
reading the committed index to committing the next generation. The CLI, the Python API and the service all
take it, so no writer saves over a change it has not read."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from simsearch.errors import ConflictError, IndexProblem, InputError

LOCK_FILE = ".lock"
DEFAULT_WAIT = 60.0  # seconds a writer waits for another one: long enough for a normal `add`, short of a hang
_POLL = 0.05


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
    """Exclusive writer lock of an index folder; waits up to `wait` seconds, then ConflictError (exit 5).

    Re-entrant per thread: a thread that holds a folder's lock takes it again for free (update_index holds it
    and save() asks for it); another thread of the process waits like another process. filelock gives both:
    one shared (singleton) lock object per lock file, with its holds counted per thread.
    """

    def __init__(self, folder: str | Path, wait: float = DEFAULT_WAIT):
        self.folder = Path(folder)
        self.wait = check_wait(wait)
        self._path = Path(os.path.realpath(self.folder)) / LOCK_FILE
        self._lock: FileLock | None = None

    def __enter__(self) -> "IndexLock":
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock (creating the folder and its lock file if need be)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._refuse_a_link()
            lock = FileLock(self._path, is_singleton=True)
            # filelock (>= 3.20.1) opens the lock file with O_NOFOLLOW, so a link planted after the check above
            # fails here (ELOOP) instead of making us create, truncate or lock a file elsewhere.
            lock.acquire(timeout=self.wait, poll_interval=_POLL)
        except Timeout:
            raise ConflictError(f"{self.folder} is being changed by another writer (waited {self.wait:g} s)",
                                hint="try again, or wait longer with {param}", parameter="wait") from None
        except OSError as error:
            raise IndexProblem(f"cannot lock {self.folder / LOCK_FILE}: {error.strerror or error}",
                               hint="check that the index folder is writable") from None
        self._lock = lock

    def release(self) -> None:
        """Give the lock back (the outermost release of this thread unlocks)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _refuse_a_link(self) -> None:
        try:
            mode = os.lstat(self._path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise IndexProblem(f"cannot lock {self.folder / LOCK_FILE}: it is {kind}",
                               hint="remove it (simsearch creates a new one) and check who planted it")


__all__ = ["DEFAULT_WAIT", "LOCK_FILE", "IndexLock", "check_wait"]
