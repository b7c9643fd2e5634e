"""Training checkpoints: a plain dict of tensors and JSON-able values, read back with weights_only=True."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from simsearch.embed.weights import WeightsError, safe_torch_load
from simsearch.files import write_bytes_atomic

FORMAT = "simsearch-metric-checkpoint"
VERSION = 1


def write_checkpoint(path: str | Path, kind: str, config: dict[str, Any], model: dict[str, torch.Tensor],
                     **extra: Any) -> None:
    """Write a checkpoint atomically (simsearch.files.write_bytes_atomic), so an interruption never leaves half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "kind": kind, "config": config,
               "model": {k: v.detach().cpu() for k, v in model.items()}, **extra}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def read_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint safely; WeightsError when it is missing, unreadable, or of another kind."""
    path = Path(path)
    payload = safe_torch_load(path, "checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a simsearch training checkpoint (make one with `simsearch train`)")
    if payload.get("version") != VERSION:
        raise WeightsError(f"checkpoint {path} has format version {payload.get('version')}, expected {VERSION}")
    if kind is not None and payload.get("kind") != kind:
        raise WeightsError(f"checkpoint {path} holds a {payload.get('kind')} model, not a {kind} one")
    return payload


def checkpoint_argument(kind: str, argument: str) -> str:
    """The CHECKPOINT of a `KIND:CHECKPOINT` embedder spec; WeightsError when it is empty."""
    if not argument:
        raise WeightsError(f"the {kind} embedder needs a checkpoint", parameter="embedder",
                           hint=f"name it in {{param}}, e.g. {kind}:artifacts/train/{kind}/model.pt")
    return argument


def runtime_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options a trained embedder takes at run time (batch size, device); the rest are in its checkpoint."""
    return {k: options[k] for k in ("batch_size", "device") if options.get(k) is not None}
