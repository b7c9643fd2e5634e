"""Saved baselines: a folder with `model.pt` (a plain dict of tensors, read with weights_only=True) and
`baseline.json` (what rebuilds the model). `load_baseline` opens any kind for `simsearch score --model`."""

from __future__ import annotations

import io
import json
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch

from simsearch.data.transforms import parse_size
from simsearch.decide.threshold import Threshold, probability_threshold
from simsearch.embed.weights import WeightsError, read_state_dict
from simsearch.errors import IndexProblem, SimsearchError
from simsearch.files import write_bytes_atomic, write_text_atomic
from simsearch.score.scorer import Scorer

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
    if not isinstance(config, dict):
        raise BaselineError(f"{config_path} is damaged: not a JSON object")
    if config.get("format_version") != FORMAT_VERSION:
        raise BaselineError(f"{folder}: baseline format {config.get('format_version')!r} is not {FORMAT_VERSION}")
    try:
        tensors = read_state_dict(folder / TENSORS_FILE)
    except WeightsError as error:
        raise BaselineError(str(error)) from None
    return config, tensors


_LEGACY_FILES = ("index", "head")  # what older saves named at the top of baseline.json


def _inside(folder: Path, path: Any, name: str) -> str:
    """`path` (relative to `folder`, or an older save's absolute one) as a path that, links followed, lies inside
    `folder`; BaselineError otherwise: a model folder never uses files from elsewhere."""
    root = os.path.realpath(folder)
    if not isinstance(path, str) or not path:
        raise BaselineError(f"{folder / CONFIG_FILE} is damaged: its {name} {path!r} is not a path")
    real = os.path.realpath(folder / path)
    if os.path.commonpath([root, real]) != root:
        raise BaselineError(f"{folder / CONFIG_FILE} names its {name} at {path}, outside {folder}; a model folder "
                            "only uses its own files", hint="save or train the baseline again")
    return real


def load_baseline(folder: str | Path, weights: str | Path | None = None, **runtime: Any):
    """Open a saved baseline of any registered kind; it scores images like an Inspector (`iter_score`)."""
    from simsearch.baselines.registry import baseline_names, open_baseline

    config, tensors = read_baseline(folder)
    kind = config.get("kind")
    if kind not in baseline_names():
        raise BaselineError(f"{folder}: unknown baseline kind {kind!r} (known: {', '.join(baseline_names())})")
    try:
        parse_size(config.get("image_size", 224))
    except ValueError as error:
        raise BaselineError(f"{folder / CONFIG_FILE} is damaged: {error}") from None
    files = config.get("files")
    if files is None and any(config.get(key) is not None for key in _LEGACY_FILES):
        # older saves named their files by absolute paths, at top level: held to the same rule, inside the folder
        legacy = {key: config[key] for key in _LEGACY_FILES if config.get(key) is not None}
        files = {key: _inside(folder, value, key) for key, value in legacy.items()}
    elif files is not None:  # files a baseline keeps beside baseline.json, named relative to its folder
        if not isinstance(files, dict) or not all(isinstance(v, str) and v and not Path(v).is_absolute()
                                                  and ".." not in Path(v).parts for v in files.values()):
            raise BaselineError(f"{folder / CONFIG_FILE} is damaged: 'files' must map names to paths inside "
                                "the folder")
        files = {name: _inside(folder, path, name) for name, path in files.items()}
    if files is not None:
        config = {**config, "files": files}
    try:
        return open_baseline(kind, config, tensors, weights=weights, **runtime)
    except SimsearchError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # A field missing or of the wrong type in baseline.json: the file is damaged, whatever field it is.
        raise BaselineError(f"{folder / CONFIG_FILE} is damaged: {error.__class__.__name__} {error}") from None


class SavedBaseline(Scorer):
    """What every baseline shares: a folder of model.pt + baseline.json, a fixed defect-probability threshold."""

    family = "classifier"
    threshold: float = 0.5

    @classmethod
    def load(cls, folder: str | Path, weights: str | Path | None = None, **runtime: Any) -> Scorer:
        """Open a baseline saved by `save`; refuses a folder holding another class's baseline."""
        scorer = load_baseline(folder, weights=weights, **runtime)
        if not isinstance(scorer, cls):
            raise BaselineError(f"{folder} holds a {scorer.name} baseline, not a {cls.__name__}",
                                hint="open it with simsearch.load")
        return scorer

    @property
    @abstractmethod
    def is_fitted(self) -> bool:
        """True once trained or loaded."""

    @property
    def threshold_(self) -> Threshold | None:
        """The fixed defect-probability threshold (None until trained or loaded)."""
        return probability_threshold(self.threshold) if self.is_fitted else None
