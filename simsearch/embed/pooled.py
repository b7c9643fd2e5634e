"""Whole-image vectors from a torchvision classifier's `features` trunk + global average pooling
(MobileNet, EfficientNet, ConvNeXt, VGG...), for the backbone probe; ResNets use the BackboneEmbedder."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torchvision

from simsearch.data.transforms import ImageSize, imagenet_pixels, resize_rgb, size_config
from simsearch.embed.backbone import checked_size
from simsearch.embed.base import Embedder, Embeddings, tensor_digest
from simsearch.embed.weights import WeightsError, torchvision_state_dict
from simsearch.runtime import DEFAULT_BATCH_SIZE, resolve_device


class PooledEmbedder(Embedder):
    """Image vectors (no patches) from `model.features` of a torchvision backbone with ImageNet weights.

    Not registered: the backbone probe builds it itself (it needs pretrained weights, which are not always
    at hand); `@register_embedder` would make it a `pooled:MODEL` embedder.
    """

    kind = "pooled"

    def __init__(self, backbone: str, image_size: ImageSize = 224, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: str | torch.device | None = None):
        self.backbone = backbone
        self.image_size = checked_size(image_size)
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        try:
            model = torchvision.models.get_model(backbone, weights=None)
        except ValueError:
            raise WeightsError(f"unknown torchvision backbone {backbone!r}") from None
        if not hasattr(model, "features"):
            raise WeightsError(f"backbone {backbone!r} has no `features` trunk")
        state, self.weights_source = torchvision_state_dict(backbone)
        model.load_state_dict(state)
        self.trunk = model.features.eval().to(self.device)
        self._weights_digest = tensor_digest(self.trunk.state_dict())
        with torch.inference_mode():
            self._dim = int(self.trunk(torch.zeros(1, 3, 64, 64, device=self.device)).shape[1])

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "pooled", "backbone": self.backbone, "image_size": size_config(self.image_size),
                "weights_source": self.weights_source}

    @property
    def weights_digest(self) -> str:
        return self._weights_digest

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def supports_patches(self) -> bool:
        return False

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """Resize to the network's input size (on a loader thread; `embed` then only normalises)."""
        return resize_rgb(pixels, self.image_size)

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        with torch.inference_mode():
            features = self.trunk(imagenet_pixels(images, self.image_size, self.device))
        return Embeddings(image=features.mean(dim=(2, 3)).float().cpu().numpy())

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: Any = None, **runtime: Any) -> "PooledEmbedder":
        """Rebuild from a saved config (always torchvision's pretrained weights, so `weights` is unused)."""
        return cls(config["backbone"], checked_size(config["image_size"]), **runtime)

    @classmethod
    def from_spec(cls, argument: str, image_size: ImageSize = 224, **runtime: Any) -> "PooledEmbedder":
        """From `pooled:MODEL`."""
        return cls(argument, image_size, **runtime)
