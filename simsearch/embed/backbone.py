"""PatchCore-style mid-level features from a torchvision classification model (the default embedder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torchvision
from torch import nn

from simsearch.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageSize,
    input_shape,
    parse_size,
    resize_rgb,
    size_config,
)
from simsearch.embed.base import Embedder, Embeddings, tensor_digest
from simsearch.embed.feature_extractor import FeatureExtractor
from simsearch.embed.registry import register_embedder
from simsearch.embed.weights import WeightsError, load_partial_state, read_state_dict, torchvision_state_dict
from simsearch.errors import InputError, UnknownComponentError
from simsearch.files import file_sha256
from simsearch.runtime import DEFAULT_BATCH_SIZE, resolve_device

# Runtime options: they change the arithmetic, not what the vectors are (the fingerprint leaves them out), and
# each is measured on real data by benchmarks/core_pipeline.py (speed, and image AUROC to 3 decimals).
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

RESNET_STEM = ("conv1", "bn1", "relu", "maxpool")  # the ResNet stem, for the baselines' CAM classifier
RANDOM_SEED = 0
KIND = "backbone"


def check_precision(precision: str, device: torch.device) -> str:
    """A known autocast precision for the device; float16 needs a GPU (CPU convolutions have no fast float16)."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}",
                         hint="choose one of them for {param}", parameter="precision")
    if precision == "float16" and device.type != "cuda":
        raise InputError("float16 autocast runs on a CUDA GPU only", hint="use bfloat16 for {param} on a CPU",
                         parameter="precision")
    return precision


class EmbeddingNet(nn.Module):
    """Prepared uint8 images (N, H, W, 3) -> image vectors (N, D) and patch vectors (N, h, w, D): ImageNet
    normalisation, the feature extractor, and the grid's mean, in one module (the one a compiled copy runs)."""

    def __init__(self, extractor: FeatureExtractor):
        super().__init__()
        self.extractor = extractor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = images.permute(0, 3, 1, 2).float() / 255.0  # channels-last in memory, as the uint8 rows come
        features = self.extractor((pixels - self.mean) / self.std).float()
        return features.mean(dim=(2, 3)), features.permute(0, 2, 3, 1)


@register_embedder
class BackboneEmbedder(Embedder):
    """Image and patch vectors from named nodes of a torchvision model (resnet18 layer2+layer3 by default).

    `layers` are graph node names (torchvision's get_graph_node_names); left out, the family's defaults.
    Weights: `weights` (a state-dict file; partial files are fine when every tensor of the modules run is
    there), else torchvision's pretrained weights from its cache or a download, else an error. Random
    weights only with pretrained=False. `image_size`: a square side, or (height, width) to keep an aspect
    ratio (`simsearch.data.transforms.kept_aspect`).
    """

    kind = KIND

    def __init__(self, backbone: str = "resnet18", layers: Sequence[str] | None = None,
                 image_size: ImageSize = 224, weights: str | Path | None = None, pretrained: bool = True,
                 batch_size: int = DEFAULT_BATCH_SIZE, device: str | torch.device | None = None,
                 expected_weights_sha256: str | None = None, precision: str = "float32",
                 channels_last: bool = False):
        self.backbone = backbone
        self.image_size = checked_size(image_size)
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.precision = check_precision(precision, self.device)
        self.channels_last = bool(channels_last)
        try:
            builder = torchvision.models.get_model_builder(backbone)
        except ValueError:
            raise UnknownComponentError(f"unknown backbone {backbone!r}",
                                        hint="name a torchvision classification model in {param}, e.g. resnet18, "
                                             "wide_resnet50_2, efficientnet_b0, convnext_tiny or vit_b_16",
                                        parameter="backbone") from None
        torch.manual_seed(RANDOM_SEED)  # random init is reproducible, so its fingerprint is stable
        extractor = FeatureExtractor(builder(weights=None), layers, model_name=backbone)
        extractor.check_size(self.image_size)
        self.layers = extractor.layers
        self.weights_path = str(Path(weights).resolve()) if weights is not None else None
        if weights is not None:
            if not Path(weights).is_file():  # a WeightsError (exit 4), not the hash's FileNotFoundError
                raise WeightsError(f"weights file {weights} does not exist", hint="check {param}", parameter="weights")
            sha = file_sha256(weights)
            if expected_weights_sha256 and sha != expected_weights_sha256:
                raise WeightsError(f"weights file {weights} is not the one this index was built with "
                                   f"(sha256 {sha[:12]}..., expected {expected_weights_sha256[:12]}...)")
            state = load_partial_state(extractor.body, read_state_dict(weights), f"weights file {weights}")
            self.weights_source = f"file:{sha}"
        elif pretrained:
            full, self.weights_source = torchvision_state_dict(backbone)
            state = load_partial_state(extractor.body, full, self.weights_source)
        else:
            self.weights_source = f"random:seed{RANDOM_SEED}"
            state = extractor.body.state_dict()
        # Over the tensors of the modules actually run: a partial file and a full one give the same digest.
        self._weights_digest = tensor_digest(state)
        self.model = extractor.eval().to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = EmbeddingNet(self.model).eval().to(self.device)
        probe_size = self.image_size if extractor.tokens else 64  # a transformer takes only its own size
        with torch.inference_mode():
            probe = self.model(torch.zeros(1, 3, probe_size, probe_size, device=self.device))
        self._dim = int(probe.shape[1])

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": KIND, "backbone": self.backbone, "layers": list(self.layers),
                "image_size": size_config(self.image_size), "weights_source": self.weights_source,
                "weights_path": self.weights_path}

    @property
    def weights_digest(self) -> str:
        return self._weights_digest

    @property
    def dim(self) -> int:
        return self._dim

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """Resize to the network's input size (on a loader thread; `embed` then only normalises)."""
        return resize_rgb(pixels, self.image_size)

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        size = self.image_size
        rows = (np.stack([resize_rgb(i, size) for i in images]) if len(images)
                else np.zeros((0, *input_shape(size), 3), np.uint8))
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=PRECISIONS[self.precision],
                                                    enabled=self.precision != "float32"):
            image_vectors, patches = self.net(torch.from_numpy(rows).to(self.device))
        return Embeddings(image=image_vectors.cpu().numpy(), patches=np.ascontiguousarray(patches.cpu().numpy()))

    def inference_module(self) -> tuple[nn.Module, ImageSize]:
        return self.net, self.image_size

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: str | Path | None = None,
                    **runtime: Any) -> "BackboneEmbedder":
        """Rebuild from a saved config; `weights` overrides the recorded weights file location."""
        source = config.get("weights_source", "")
        common = dict(backbone=config["backbone"], layers=config["layers"],
                      image_size=checked_size(config["image_size"]), **runtime)
        if source.startswith("file:"):
            path = weights or config.get("weights_path")
            if not path or not Path(path).is_file():
                raise WeightsError(f"this index was built with the weights file {config.get('weights_path')}, "
                                   "which is not there now", hint="pass the file's new place in {param}",
                                   parameter="weights")
            return cls(weights=path, expected_weights_sha256=source[5:], **common)
        if source.startswith("random:"):
            return cls(pretrained=False, **common)
        return cls(weights=weights, pretrained=True, **common)

    @classmethod
    def from_spec(cls, argument: str, **options: Any) -> "BackboneEmbedder":
        """From `backbone:MODEL` (a bare spec means resnet18); options are the constructor's."""
        return cls(backbone=argument or "resnet18", **options)


def checked_size(value: object) -> ImageSize:
    """An input size from a caller or a config (a side or (height, width)), or an InputError saying what to do."""
    try:
        return parse_size(value)
    except ValueError as error:
        raise InputError(str(error), hint="give {param} a whole number of pixels, or (height, width)",
                         parameter="image_size") from None
