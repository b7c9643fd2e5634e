"""A frozen backbone plus a triplet-trained projection head: image (and patch) vectors through the head."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simsearch.data.roi import apply_roi
from simsearch.embed.backbone import BackboneEmbedder
from simsearch.embed.base import Embedder, Embeddings, tensor_digest
from simsearch.embed.checkpoint import (
    SIZE_LIMIT,
    checkpoint_argument,
    config_from_record,
    load_model_state,
    read_checkpoint,
    runtime_options,
)
from simsearch.embed.registry import register_embedder
from simsearch.embed.weights import WeightsError
from simsearch.runtime import DEFAULT_BATCH_SIZE

KIND = "triplet-head"



class ProjectionHead(nn.Module):
    """Standardise -> Linear -> ReLU -> Linear -> L2-normalise, over the last dimension of any shape.

    `mean` and `scale` are buffers the trainer sets from the training vectors (saved with the weights),
    so the head works on raw backbone features whatever their range. A `joined` head also keeps `join_scales`:
    the typical gap between near good patches in the backbone's space and in the head's (`joined`).
    """

    def __init__(self, in_dim: int, embedding_dim: int = 128, hidden_dim: int = 512, joined: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        if joined:
            self.register_buffer("join_scales", torch.ones(2))
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embedding_dim))

    def set_standardisation(self, vectors: torch.Tensor) -> None:
        """Centre and scale inputs with the statistics of the training vectors (N, in_dim)."""
        self.mean.copy_(vectors.mean(0))
        self.scale.copy_(vectors.std(0).clamp_min(1e-6))

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net((vectors - self.mean) / self.scale), dim=-1)

    def set_join_scales(self, good_vectors: torch.Tensor) -> None:
        """Measure, on good patch vectors (N, in_dim), the median distance to the nearest other one in the
        backbone's space and in the head's: the units of the two halves of a joined vector."""
        with torch.no_grad():
            self.join_scales.copy_(torch.stack([nearest_gap(good_vectors), nearest_gap(self(good_vectors))]))

    def joined(self, vectors: torch.Tensor) -> torch.Tensor:
        """The backbone's vectors and the head's, each in units of its typical good-to-good gap, side by side:
        the head adds the directions the labelled defects taught it without losing what the frozen features
        tell of anomalies no label names (ELPV, 224 px: docs/metric_learning.md)."""
        return torch.cat([vectors / self.join_scales[0], self(vectors) / self.join_scales[1]], dim=-1)


def nearest_gap(vectors: torch.Tensor) -> torch.Tensor:
    """Median distance from each vector (N, D) to its nearest other one (floored: never a zero unit)."""
    distances = torch.cdist(vectors.float(), vectors.float())
    distances.fill_diagonal_(float("inf"))
    return distances.min(dim=1).values.median().clamp_min(1e-6)

@dataclass
class HeadConfig:
    """What fixes the head embedder's vectors: the backbone's config, the head's shape, the ROI crop, and the
    level it was trained at: "image" (on pooled backbone vectors) or "patch" (on patch vectors; the image
    vector is then the mean of the projected patches, unit length). A `joined` patch head gives each patch
    the backbone's vector and the head's side by side (`ProjectionHead.joined`); its image vector is the mean
    of its joined patches."""

    backbone: dict[str, Any] = field(default_factory=dict)
    in_dim: int = 0
    embedding_dim: int = 128
    hidden_dim: int = 512
    roi: str | None = None
    level: str = "image"
    joined: bool = False

    def build(self) -> ProjectionHead:
        return ProjectionHead(self.in_dim, self.embedding_dim, self.hidden_dim, self.joined)


HEAD_LIMITS = {"in_dim": (1, SIZE_LIMIT), "embedding_dim": (1, SIZE_LIMIT), "hidden_dim": (1, SIZE_LIMIT)}
LEVELS = ("image", "patch")




@register_embedder
class TripletHeadEmbedder(Embedder):
    """Vectors of `simsearch train triplet-head`: the checkpoint names its backbone; `weights` is the backbone's
    state-dict file when the recorded one has moved."""

    kind = KIND

    def __init__(self, checkpoint: str | Path, weights: str | Path | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: str | torch.device | None = None):
        state = read_checkpoint(checkpoint, kind=KIND)
        self.checkpoint = str(Path(checkpoint).resolve())
        self.head_config = config_from_record(HeadConfig, state["config"], f"checkpoint {checkpoint}", HEAD_LIMITS)
        if self.head_config.level not in LEVELS:
            raise WeightsError(f"checkpoint {checkpoint} is damaged: level {self.head_config.level!r} is not one of "
                               f"{', '.join(LEVELS)}")
        if self.head_config.joined and self.head_config.level != "patch":
            raise WeightsError(f"checkpoint {checkpoint} is damaged: a joined head is a patch-level one")
        self.batch_size = int(batch_size)
        self.backbone = BackboneEmbedder.from_config(self.head_config.backbone, weights=weights,
                                                     batch_size=batch_size, device=device)
        if self.backbone.dim != self.head_config.in_dim:
            raise WeightsError(f"checkpoint {checkpoint} expects {self.head_config.in_dim}-d backbone vectors, "
                               f"the backbone gives {self.backbone.dim}")
        self.head = self.head_config.build()
        load_model_state(self.head, state["model"], f"checkpoint {checkpoint}")
        self.head.eval().to(self.backbone.device)
        self._digest = self.backbone.weights_digest + tensor_digest(state["model"])

    @property
    def config(self) -> dict[str, Any]:
        config = {"kind": KIND, "weights_path": self.checkpoint, "backbone": self.backbone.config,
                  "embedding_dim": self.head_config.embedding_dim, "hidden_dim": self.head_config.hidden_dim,
                  "roi": self.head_config.roi}
        if self.head_config.level != "image":  # image-level heads keep the config (and fingerprint) they had
            config["level"] = self.head_config.level
        if self.head_config.joined:
            config["joined"] = True
        return config

    @property
    def weights_digest(self) -> str:
        return self._digest

    @property
    def dim(self) -> int:
        return self.head_config.embedding_dim + (self.head_config.in_dim if self.head_config.joined else 0)

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        features = self.backbone.embed([apply_roi(image, self.head_config.roi) for image in images])
        device = self.backbone.device
        with torch.inference_mode():
            vectors = torch.from_numpy(features.patches).to(device)
            if self.head_config.joined:
                patches = self.head.joined(vectors)
                image = patches.mean(dim=(1, 2))
            elif self.head_config.level == "patch":  # the head never saw pooled vectors: pool what it made
                patches = self.head(vectors)
                image = F.normalize(patches.mean(dim=(1, 2)), dim=-1)
            else:
                patches = self.head(vectors)
                image = self.head(torch.from_numpy(features.image).to(device))
        return Embeddings(image=image.float().cpu().numpy(),
                          patches=np.ascontiguousarray(patches.float().cpu().numpy()))

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: str | Path | None = None,
                    **runtime: Any) -> "TripletHeadEmbedder":
        """Reopen the recorded checkpoint; `weights` is the backbone's state-dict file if it has moved."""
        path = config.get("weights_path")
        if not path or not Path(path).is_file():
            raise WeightsError(f"this index was built with the checkpoint {path}, which is not there now; "
                               "put it back (or rebuild the index with the new one)")
        return cls(path, weights=weights, **runtime_options(runtime))

    @classmethod
    def from_spec(cls, argument: str, weights: str | Path | None = None, **options: Any) -> "TripletHeadEmbedder":
        """From `triplet-head:CHECKPOINT`; `weights` is the backbone's state-dict file (else the recorded one)."""
        return cls(checkpoint_argument(KIND, argument), weights=weights, **runtime_options(options))
