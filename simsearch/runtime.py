"""Where models run: one choice of device (and batch size) for embedders, trainers and baselines."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from simsearch.errors import DeviceError, InputError

if TYPE_CHECKING:
    import torch

DEFAULT_BATCH_SIZE = 16


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
