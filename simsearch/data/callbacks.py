"""What a long library call tells its caller while it runs, as one value: `Callbacks`.

Every stage takes `callbacks: Callbacks | None` (None: nothing is told) instead of loose `on_*` parameters, and
hands it on whole; each face turns the hooks into its own output (the CLI: rich bars and `warning:` lines; a
benchmark: log lines). Training's per-epoch events keep their own parameter: their payload is a TrainEvent.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

Progress = Callable[[int], None]  # called with how many more images are done
OnSkip = Callable[[str, str], None]  # called with (path, reason) for an unreadable input
Note = Callable[[str], None]  # called with one line for the user: a choice made, a step skipped, a warning
Stage = Callable[[str, "int | None"], ContextManager[Progress]]  # (stage, total) -> a context yielding advance(n)


def _ignore(*_told: object) -> None:
    """A hook nobody listens to."""


@dataclass(frozen=True)
class Callbacks:
    """The hooks of a long call, each optional (the default hears nothing).

    progress(n): n more images done. skip(path, reason): an unreadable input, left out. note(text): one line for
    the user (a choice made, a step skipped, a warning). done(what): one named unit of a long run finished (a
    method's fold in `compare`). stage(name, total): a context for a named stage of a call that has several
    (`build_index`: embedding, then saving), yielding that stage's advance(n); without it, `progress` counts."""

    progress: Progress = _ignore
    skip: OnSkip = _ignore
    note: Note = _ignore
    done: Note = _ignore
    stage: Stage | None = None

    def staged(self, name: str, total: int | None) -> ContextManager[Progress]:
        """The context of stage `name` (`total` images): the face's `stage`, else `progress` as it is."""
        return self.stage(name, total) if self.stage is not None else contextlib.nullcontext(self.progress)


__all__ = ["Callbacks", "Note", "OnSkip", "Progress", "Stage"]
