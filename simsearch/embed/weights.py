"""Backbone weights: torchvision's cache/download, a user's state-dict file, or random only on request."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torchvision
from torch import nn

from simsearch.errors import WeightsError

SHARED_RESNET18 = "../shared/weights/resnet18-imagenet1k-v1-layers1to3.pth"
# A download that failed is not tried again for this long in the same process: a compare run asks for the same
# backbones on every fold, and offline each try costs a wait and a "Downloading:" line from torch.hub.
DOWNLOAD_RETRY_S = 600.0
_failed_downloads: dict[str, tuple[float, str]] = {}  # weights url -> (when, the error's class name)


def torchvision_cache_dir() -> Path:
    """Where torchvision looks for downloaded checkpoints ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def safe_torch_load(path: str | Path, what: str = "weights file") -> object:
    """torch.load with weights_only=True (never unpickles code); WeightsError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        text = str(error)
        # torch's own text goes on to suggest weights_only=False, i.e. running the file's code: never quote it.
        if "Unsupported global" in text or "can still be loaded" in text:
            raise WeightsError(f"{what} {path} is refused: it is not a plain state dict of tensors (it holds "
                               "pickled objects, which simsearch never unpickles because that can run code)",
                               hint="save the model's state_dict() with torch.save and pass that file") from None
        if "Weights only load failed" in text:
            raise WeightsError(f"{what} {path} is not a loadable state dict: damaged, or not a torch file") from None
        raise WeightsError(f"{what} {path} is not a loadable state dict ({error.__class__.__name__}: "
                           f"{str(error).splitlines()[0][:200]})") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely (weights_only) and unwrap common containers and 'module.' prefixes."""
    state = safe_torch_load(path)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_partial_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Load into model every tensor it holds (a feature extractor holds only the modules it runs); name what
    is missing or mis-shaped.

    Tensors of modules the model never runs (e.g. a ResNet's layer4 and fc) may be absent from `state`.
    Returns the loaded part.
    """
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in expected if k not in state)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise WeightsError(f"{source} lacks {len(missing)} tensor(s) the embedder needs: {shown}")
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        key = wrong[0]
        raise WeightsError(f"{source} does not fit this backbone: {key} has shape {tuple(state[key].shape)}, "
                           f"expected {tuple(expected[key].shape)}", hint="check {param}", parameter="backbone")
    used = {k: state[k] for k in expected}
    model.load_state_dict(used, strict=False)
    return used


def torchvision_state_dict(name: str) -> tuple[dict[str, torch.Tensor], str]:
    """The default pretrained weights of a torchvision model, from its cache or a download."""
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise WeightsError(f"torchvision has no pretrained weights for {name!r}",
                           hint="pass a state-dict file in {param}", parameter="weights") from None
    filename = Path(weights.url).name
    failed = _failed_downloads.get(weights.url)
    recent = failed is not None and time.monotonic() - failed[0] < DOWNLOAD_RETRY_S
    if recent and not (torchvision_cache_dir() / filename).is_file():
        raise _not_downloaded(name, filename, failed[1])
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # offline, a proxy, a hub or HTTP error, a bad hash: all one "could not download"
        _failed_downloads[weights.url] = (time.monotonic(), error.__class__.__name__)
        raise _not_downloaded(name, filename, error.__class__.__name__) from None
    return state, f"torchvision:{weights}"


def _not_downloaded(name: str, filename: str, error_kind: str) -> WeightsError:
    """The error for pretrained weights that are not cached and could not be downloaded."""
    example = f" (e.g. {SHARED_RESNET18})" if name == "resnet18" else ""  # the shared folder has only ResNet-18's
    return WeightsError(
        f"pretrained weights for {name} are not cached and could not be downloaded ({error_kind}): put {filename} "
        f"in {torchvision_cache_dir()} (or set TORCH_HOME)",
        hint=f"or pass a state-dict file as {{param}} FILE{example}, or random weights (tests and demos only) with "
             "{param:pretrained=False}", parameter="weights")
