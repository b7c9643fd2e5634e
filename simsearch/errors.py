"""One root for every error simsearch raises on purpose, in a few categories, with one exit-code table.

The message says what is wrong; `hint` says what to do, naming the library `parameter` as `{param}` (and any
other, in either, as `{param:name}` or `{param:name=False}`). The faces render it: the CLI as its flag
(`--max-false-alarm`, `--no-pretrained`), the service as a JSON field (`max_false_alarm`).
"""

from __future__ import annotations

import re
from typing import Callable

_OTHER_PARAMETER = re.compile(r"\{param:([A-Za-z_][A-Za-z0-9_]*(?:=\w+)?)\}")


class SimsearchError(Exception):
    """Base of simsearch's errors; `category` and `exit_code` say what kind of failure it is."""

    category = "internal"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, parameter: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.parameter = parameter

    def named(self, name: Callable[[str], str] = lambda parameter: parameter) -> tuple[str, str | None]:
        """The message and the hint with every parameter written as `name(parameter)` (a CLI flag, a field)."""
        message = _OTHER_PARAMETER.sub(lambda match: name(match.group(1)), self.message)
        if not self.hint:
            return message, self.hint
        hint = _OTHER_PARAMETER.sub(lambda match: name(match.group(1)), self.hint)
        return message, hint.replace("{param}", name(self.parameter)) if self.parameter else hint

    def render(self, name: Callable[[str], str] = lambda parameter: parameter) -> str:
        """The message and its hint as one line, the parameter written as `name(parameter)`."""
        message, hint = self.named(name)
        return f"{message}; {hint}" if hint else message

    def __str__(self) -> str:
        return self.render()


class InputError(SimsearchError, ValueError):
    """Bad input: a missing path, an unreadable image, a malformed data set or option."""

    category = "input"
    exit_code = 2


class UnknownComponentError(InputError):
    """A name that no registry knows (embedder kind, scoring mode, threshold policy, baseline)."""

    category = "unknown-component"


class NotFoundError(InputError):
    """An id the index does not hold (an exemplar id); the service answers 404."""

    category = "not-found"


class CalibrationError(InputError):
    """A threshold policy that cannot be met on the scores given."""

    category = "calibration"


class TrainingError(InputError):
    """Training that cannot start or continue as asked."""

    category = "training"


class IndexProblem(SimsearchError):
    """An index that is missing, damaged, of another embedder or format, or unwritable."""

    category = "index"
    exit_code = 3


class WeightsError(SimsearchError, RuntimeError):
    """Weights or a checkpoint that cannot be found, read or fitted to the model."""

    category = "weights"
    exit_code = 4


class ConflictError(SimsearchError):
    """A change refused because of the index's state (the last good exemplar, a concurrent change)."""

    category = "conflict"
    exit_code = 5


class DeviceError(InputError):
    """A device that this machine does not have."""

    category = "device"


class NotFittedError(InputError, RuntimeError):
    """A step asked for before the one it needs (scoring before fitting, predicting before calibrating)."""

    category = "not-fitted"


# Exit codes of the `simsearch` command: every SimsearchError maps to its class's exit_code.
EXIT_CODES = {
    0: "done",
    1: "unexpected failure (a bug: please report it)",
    2: "bad input: path, image, data set, option, unknown name, calibration or training settings",
    3: "index problem: missing, damaged, built by another embedder, newer format, unwritable",
    4: "weights or checkpoint unavailable or unfit",
    5: "conflict: the index's state refuses the change",
    6: "done, but some inputs were skipped as unreadable (each named on stderr, and in --json output)",
}
EXIT_SKIPPED = 6  # not an error class: the command finished, on fewer inputs than it was given

__all__ = ["EXIT_CODES", "EXIT_SKIPPED", "CalibrationError", "ConflictError", "DeviceError", "IndexProblem",
           "InputError", "NotFittedError", "NotFoundError", "SimsearchError", "TrainingError", "UnknownComponentError",
           "WeightsError"]
