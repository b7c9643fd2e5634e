"""PatchCore-style mid-level features from a pretrained torchvision CNN (the default embedder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from simsearch.data.transforms import imagenet_pixels
from simsearch.embed.base import Embedder, Embeddings, tensor_digest
from simsearch.embed.weights import (
    WeightsError,
    load_partial_state,
    read_state_dict,
    torchvision_state_dict,
)
from simsearch.errors import UnknownComponentError
from simsearch.files import file_sha256
from simsearch.runtime import resolve_device

RESNET_STEM = ("conv1", "bn1", "relu", "maxpool")
RANDOM_SEED = 0


class PatchFeatureModel(nn.Module):
    """A ResNet-family trunk run up to its deepest used layer; returns locally averaged patch features.

    Each chosen layer's map is averaged over a 3x3 neighbourhood (PatchCore's local aggregation), resized
    to the first layer's grid and concatenated along channels: (N, C, H, W) -> (N, D, h, w).
    """

    def __init__(self, trunk: nn.Module, layers: Sequence[str] = ("layer2", "layer3")):
        super().__init__()
        self.layers = tuple(layers)
        names = list(RESNET_STEM) + [f"layer{i}" for i in range(1, 5)]
        last = max(names.index(layer) for layer in self.layers)
        self.stages = nn.ModuleDict({name: getattr(trunk, name) for name in names[:last + 1]})
        self.local = nn.AvgPool2d(kernel_size=3, stride=1, padding=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        maps = []
        out = pixels
        for name, stage in self.stages.items():
            out = stage(out)
            if name in self.layers:
                maps.append(self.local(out))
        grid = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == grid else F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
                for m in maps]
        return torch.cat(maps, dim=1)



class BackboneEmbedder(Embedder):
    """Image and patch vectors from layer2+layer3 of a torchvision ResNet (resnet18 by default).

    Weights: `weights` (a state-dict file; partial files are fine when every used tensor is there),
    else torchvision's pretrained weights from its cache or a download, else an error. Random weights
    only with pretrained=False.
    """

    def __init__(self, backbone: str = "resnet18", layers: Sequence[str] = ("layer2", "layer3"),
                 image_size: int = 224, weights: str | Path | None = None, pretrained: bool = True,
                 batch_size: int = 16, device: str | torch.device | None = None,
                 expected_weights_sha256: str | None = None):
        self.backbone = backbone
        self.layers = tuple(layers)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        try:
            builder = torchvision.models.get_model_builder(backbone)
        except ValueError:
            raise UnknownComponentError(f"unknown backbone {backbone!r}", hint="try resnet18, resnet50 or wide_resnet50_2 in {param}", parameter="backbone") from None
        torch.manual_seed(RANDOM_SEED)  # random init is reproducible, so its fingerprint is stable
        trunk = builder(weights=None)
        if not all(hasattr(trunk, layer) for layer in self.layers):
            raise WeightsError(f"backbone {backbone!r} has no {'/'.join(self.layers)}: use a ResNet-family model")
        used = list(RESNET_STEM[:2]) + [f"layer{i}" for i in range(1, 1 + max(int(l[-1]) for l in self.layers))]
        self.weights_path = str(Path(weights).resolve()) if weights is not None else None
        if weights is not None:
            if not Path(weights).is_file():  # a WeightsError (exit 4), not the hash's FileNotFoundError
                raise WeightsError(f"weights file {weights} does not exist", hint="check {param}", parameter="weights")
            sha = file_sha256(weights)
            if expected_weights_sha256 and sha != expected_weights_sha256:
                raise WeightsError(f"weights file {weights} is not the one this index was built with "
                                   f"(sha256 {sha[:12]}..., expected {expected_weights_sha256[:12]}...)")
            state = load_partial_state(trunk, read_state_dict(weights), used, f"weights file {weights}")
            self.weights_source = f"file:{sha}"
        elif pretrained:
            full, self.weights_source = torchvision_state_dict(backbone)
            state = load_partial_state(trunk, full, used, self.weights_source)
        else:
            self.weights_source = f"random:seed{RANDOM_SEED}"
            state = {k: v for k, v in trunk.state_dict().items() if k.startswith(tuple(f"{p}." for p in used))}
        self._weights_digest = tensor_digest(state)
        self.model = PatchFeatureModel(trunk, self.layers).eval().to(self.device)
        with torch.inference_mode():
            probe = self.model(torch.zeros(1, 3, 64, 64, device=self.device))
        self._dim = int(probe.shape[1])

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "backbone", "backbone": self.backbone, "layers": list(self.layers),
                "image_size": self.image_size, "weights_source": self.weights_source,
                "weights_path": self.weights_path}

    @property
    def weights_digest(self) -> str:
        return self._weights_digest

    @property
    def dim(self) -> int:
        return self._dim

    def patch_grid(self) -> tuple[int, int]:
        """The (h, w) patch grid for this image size."""
        with torch.inference_mode():
            out = self.model(torch.zeros(1, 3, self.image_size, self.image_size, device=self.device))
        return int(out.shape[2]), int(out.shape[3])

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        with torch.inference_mode():
            features = self.model(imagenet_pixels(images, self.image_size, self.device))
            image_vectors = features.mean(dim=(2, 3))
            patches = features.permute(0, 2, 3, 1)
        return Embeddings(image=image_vectors.float().cpu().numpy(),
                          patches=np.ascontiguousarray(patches.float().cpu().numpy()))

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: str | Path | None = None,
                    **runtime: Any) -> "BackboneEmbedder":
        """Rebuild from a saved config; `weights` overrides the recorded weights file location."""
        source = config.get("weights_source", "")
        common = dict(backbone=config["backbone"], layers=config["layers"], image_size=config["image_size"], **runtime)
        if source.startswith("file:"):
            path = weights or config.get("weights_path")
            if not path or not Path(path).is_file():
                raise WeightsError(f"this index was built with the weights file {config.get('weights_path')}, "
                                   "which is not there now", hint="pass {param} FILE", parameter="weights")
            return cls(weights=path, expected_weights_sha256=source[5:], **common)
        if source.startswith("random:"):
            return cls(pretrained=False, **common)
        return cls(weights=weights, pretrained=True, **common)
