"""Where models run: one `Runtime` value (device, batch size, precision, loader threads, compiled copy or not) for
embedders, the inspector, trainers and baselines, and the device choice behind it."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simsearch.errors import DeviceError, InputError

if TYPE_CHECKING:
    import torch

DEFAULT_BATCH_SIZE = 16  # the one default: every embedder, baseline and face takes it from here
PRECISIONS = ("float32", "bfloat16", "float16")
# Loader threads decoding and preparing the next batches while the network runs on the current one. PIL
# releases the GIL while it decodes and resizes, so threads overlap with torch without copying pixels
# between processes. Four keep two cores busy; more only hold more decoded images.
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class Runtime:
    """How a model runs, passed whole from the face to the embedder (never rebuilt as a dict).

    `device`: None picks CUDA when torch sees a GPU, else the CPU (see `resolve_device`); `batch_size`: images per
    forward pass; `precision`: float32, or bfloat16/float16 autocast where the device has it; `workers`: loader
    threads reading the next batches while the network runs (0: none); `compiled`: run an index's compiled copy of
    its embedder (None: where it applies, True: or fail, False: never; see `simsearch.embed.choose`).
    """

    device: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    precision: str = "float32"
    workers: int = DEFAULT_WORKERS
    compiled: bool | None = None

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}", hint=f"use one of {', '.join(PRECISIONS)} in "
                             "{param}", parameter="precision")
        if int(self.workers) < 0:
            raise InputError(f"workers must be 0 or more, not {self.workers}", parameter="workers",
                             hint="pass 0 (read in the calling thread) or a positive {param}")
        object.__setattr__(self, "device", None if self.device in (None, "") else str(self.device))
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "workers", int(self.workers))

    @classmethod
    def of(cls, runtime: "Runtime | None" = None, **options: Any) -> "Runtime":
        """`runtime` (default: the defaults) with the options given as keywords that are not None: the one way
        the library's `batch_size=`, `device=`, ... keyword parameters become a Runtime."""
        given = {key: value for key, value in options.items() if value is not None}
        unknown = set(given) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown runtime option(s): {', '.join(sorted(unknown))}",
                             hint="use device, batch_size, precision, workers or compiled")
        return replace(runtime or cls(), **given)

    def embedder_options(self) -> dict[str, Any]:
        """The keywords embedders take (`create_embedder`, `embedder_from_config`): batch size, and device and
        precision where they are not the defaults (a trained embedder takes only the first two)."""
        return {"batch_size": self.batch_size, **({"device": self.device} if self.device else {}),
                **({"precision": self.precision} if self.precision != "float32" else {})}


def resolve_device(device: "str | torch.device | None" = None) -> "torch.device":
    """The requested device, else CUDA when available, else CPU; a CUDA request without a GPU is refused."""
    import torch

    if device is None or str(device) == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {str(device)!r}", hint="use cpu or cuda in {param}",
                          parameter="device") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("this machine has no CUDA GPU that torch can use", hint="leave {param} out or use cpu",
                          parameter="device")
    return chosen


def gpu_visible() -> bool:
    """Whether torch would find a CUDA GPU, answered without importing torch where it is not loaded yet (that
    takes seconds): NVIDIA's driver lists its GPUs under /proc, and CUDA_VISIBLE_DEVICES can hide them."""
    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        return any(gpus.iterdir())
    return shutil.which("nvidia-smi") is not None  # no /proc: another system, where the driver's tool tells


def check_batch_size(batch_size: int) -> int:
    """A positive batch size, or an InputError."""
    if int(batch_size) < 1:
        raise InputError(f"batch size must be at least 1, not {batch_size}", parameter="batch_size",
                         hint="pass a positive {param}")
    return int(batch_size)
