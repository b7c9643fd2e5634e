"""Saved baselines: a folder with `model.pt` (a plain dict of tensors, read with weights_only=True) and
`baseline.json` (what rebuilds the model). `load_baseline` opens any kind for `simsearch score --model`."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from simsearch.embed.weights import WeightsError, read_state_dict
from simsearch.errors import IndexProblem
from simsearch.files import write_bytes_atomic, write_text_atomic

CONFIG_FILE = "baseline.json"
TENSORS_FILE = "model.pt"
FORMAT_VERSION = 1


class BaselineError(IndexProblem):
    """A model folder that is missing, damaged, or of an unknown kind."""


def write_baseline(folder: str | Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Write tensors then config, each atomically, so a crash leaves no half file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, buffer)
    write_bytes_atomic(folder / TENSORS_FILE, buffer.getvalue())
    write_text_atomic(folder / CONFIG_FILE, json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2))


def read_baseline(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The config and tensors of a saved baseline."""
    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise BaselineError(f"{folder} is not a saved baseline (no {CONFIG_FILE}); train one with "
                            "`simsearch train-baseline` or `simsearch compare`")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"{config_path} is damaged ({error})") from None
    if config.get("format_version") != FORMAT_VERSION:
        raise BaselineError(f"{folder}: baseline format {config.get('format_version')!r} is not {FORMAT_VERSION}")
    try:
        tensors = read_state_dict(folder / TENSORS_FILE)
    except WeightsError as error:
        raise BaselineError(str(error)) from None
    return config, tensors


def load_baseline(folder: str | Path, weights: str | Path | None = None, **runtime: Any):
    """Open a saved CNN, CAM or probe baseline; it scores images like an Inspector (`iter_score`)."""
    config, tensors = read_baseline(folder)
    kind = config.get("kind")
    if kind in ("cnn", "cam"):
        from simsearch.baselines.classifier import ImageClassifier
        return ImageClassifier.from_saved(config, tensors, **runtime)
    if kind == "probe":
        from simsearch.baselines.probe import BackboneProbe
        return BackboneProbe.from_saved(config, tensors, weights=weights, **runtime)
    raise BaselineError(f"{folder}: unknown baseline kind {kind!r}")
