"""Training checkpoints: a plain dict of tensors and JSON-able values, read back with weights_only=True."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, TypeVar

import torch

from simsearch.embed.weights import WeightsError, safe_torch_load
from simsearch.files import write_bytes_atomic

FORMAT = "simsearch-metric-checkpoint"
VERSION = 1
SIZE_LIMIT = 1 << 16  # no layer of ours is wider: a larger size in a loaded config is damage, not a model

C = TypeVar("C")


def write_checkpoint(path: str | Path, kind: str, config: dict[str, Any], model: dict[str, torch.Tensor],
                     **extra: Any) -> None:
    """Write a checkpoint atomically (simsearch.files.write_bytes_atomic), so an interruption never leaves half of
    one."""
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
    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("model"), dict):
        raise WeightsError(f"checkpoint {path} is damaged: it lacks its model config or tensors")
    return payload


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """model.load_state_dict, a mismatch reported as a WeightsError naming `source`."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0][:200]
        raise WeightsError(f"{source} does not fit its own model config: {first_line}") from None


def checkpoint_argument(kind: str, argument: str) -> str:
    """The CHECKPOINT of a `KIND:CHECKPOINT` embedder spec; WeightsError when it is empty."""
    if not argument:
        raise WeightsError(f"the {kind} embedder needs a checkpoint", parameter="embedder",
                           hint=f"name it in {{param}}, e.g. {kind}:artifacts/train/{kind}/model.pt")
    return argument


def runtime_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options a trained embedder takes at run time (batch size, device); the rest are in its checkpoint."""
    return {k: options[k] for k in ("batch_size", "device") if options.get(k) is not None}


def config_from_record(cls: type[C], record: Any, source: str, limits: dict[str, tuple[float, float]]) -> C:
    """A model config dataclass from a loaded record, every field checked for type (and, where `limits` names
    it, range) before any model is built from it; WeightsError naming `source` otherwise."""
    if not isinstance(record, dict):
        raise WeightsError(f"{source} is damaged: its model config is not a record")
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    unknown = sorted(set(record) - set(fields))
    if unknown:
        raise WeightsError(f"{source} is damaged: unknown model setting(s) {', '.join(map(str, unknown))}")
    for name, value in record.items():
        kind = fields[name]
        numbers = [value] if kind in ("int", "float") else value if kind.startswith("list[") else None
        if kind.startswith("list[") and not isinstance(value, list):
            numbers = None
        ok = {"int": _is_int(value), "float": _is_number(value), "list[int]": isinstance(value, list)
              and all(_is_int(v) for v in value), "str | None": value is None or isinstance(value, str),
              "bool": isinstance(value, bool),
              "dict[str, Any]": isinstance(value, dict)}.get(kind, True)
        low, high = limits.get(name, (float("-inf"), float("inf")))
        if not ok or (numbers is not None and not all(low <= v <= high for v in numbers)):
            shown = repr(value) if len(repr(value)) < 40 else repr(value)[:40] + "..."
            raise WeightsError(f"{source} is damaged: model setting {name} = {shown} is not "
                               + (f"a {kind}" if not ok else f"within {low:g}..{high:g}"))
    return cls(**record)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
