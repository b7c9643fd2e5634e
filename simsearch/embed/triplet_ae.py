"""The triplet-loss autoencoder as an embedder: its L2-normalised bottleneck is the image vector."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simsearch.data.transforms import to_unit_tensor
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
from simsearch.errors import InputError
from simsearch.runtime import DEFAULT_BATCH_SIZE, resolve_device

KIND = "triplet-ae"



class ConvAutoencoder(nn.Module):
    """Stride-2 conv encoder -> linear -> unit-length embedding -> linear -> transposed-conv decoder.

    The decoder reconstructs from the normalised embedding itself, so the reconstruction loss and the
    triplet loss shape the same vector. Inputs are (N, in_channels, image_size, image_size) in [0, 1].
    """

    def __init__(self, in_channels: int = 3, image_size: int = 128, embedding_dim: int = 64,
                 widths: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if image_size % (2 ** len(widths)):
            raise InputError(f"image size {image_size} must be a multiple of {2 ** len(widths)}")
        self.grid = image_size // 2 ** len(widths)
        encoder, previous = [], in_channels
        for width in widths:
            encoder += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.1)]
            previous = width
        self.encoder = nn.Sequential(*encoder)
        flat = widths[-1] * self.grid * self.grid
        self.to_embedding = nn.Linear(flat, embedding_dim)
        self.from_embedding = nn.Linear(embedding_dim, flat)
        decoder = []
        for width in reversed(widths[:-1]):
            decoder += [nn.ConvTranspose2d(previous, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            previous = width
        decoder += [nn.ConvTranspose2d(previous, in_channels, 4, stride=2, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*decoder)
        self.widths = widths

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, embedding_dim) unit vectors."""
        return F.normalize(self.to_embedding(self.encoder(pixels).flatten(1)), dim=1)

    def decode(self, embedding: torch.Tensor) -> torch.Tensor:
        """(N, embedding_dim) -> (N, C, S, S) in [0, 1]."""
        grid = self.from_embedding(embedding).view(-1, self.widths[-1], self.grid, self.grid)
        return self.decoder(grid)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.encode(pixels)
        return embedding, self.decode(embedding)

@dataclass
class AutoencoderConfig:
    """What fixes the autoencoder embedder's vectors: architecture and preprocessing."""

    image_size: int = 128
    embedding_dim: int = 64
    channels: int = 3  # 1 = grayscale input
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    roi: str | None = None  # "hough" crops each image to its circular part first
    triplet_weight: float = 1.0

    def build(self) -> ConvAutoencoder:
        return ConvAutoencoder(self.channels, self.image_size, self.embedding_dim, self.widths)

    def prepare(self, image) -> torch.Tensor:
        """One RGB uint8 array -> (C, S, S) float in [0, 1], as the embedder will see it."""
        return to_unit_tensor([image], self.image_size, self.channels, self.roi)[0]


AUTOENCODER_LIMITS = {"image_size": (8, 4096), "embedding_dim": (1, SIZE_LIMIT), "channels": (1, 3),
                      "widths": (1, 4096), "triplet_weight": (0, 1e6)}




@register_embedder
class TripletAutoencoderEmbedder(Embedder):
    """Image vectors from a checkpoint of `simsearch train triplet-ae` (no patch vectors: use mode 'image')."""

    kind = KIND

    def __init__(self, checkpoint: str | Path, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: str | torch.device | None = None):
        state = read_checkpoint(checkpoint, kind=KIND)
        self.checkpoint = str(Path(checkpoint).resolve())
        self.model_config = config_from_record(AutoencoderConfig, state["config"], f"checkpoint {checkpoint}",
                                               AUTOENCODER_LIMITS)
        self.batch_size = int(batch_size)
        self.device = resolve_device(str(device) if device is not None else None)
        self.model = self.model_config.build()
        load_model_state(self.model, state["model"], f"checkpoint {checkpoint}")
        self.model.eval().to(self.device)
        self._digest = tensor_digest(state["model"])

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": KIND, "weights_path": self.checkpoint, "image_size": self.model_config.image_size,
                "embedding_dim": self.model_config.embedding_dim, "channels": self.model_config.channels,
                "widths": list(self.model_config.widths), "roi": self.model_config.roi}

    @property
    def weights_digest(self) -> str:
        return self._digest

    @property
    def dim(self) -> int:
        return self.model_config.embedding_dim

    @property
    def supports_patches(self) -> bool:
        return False

    def embed(self, images: Sequence[np.ndarray]) -> Embeddings:
        pixels = to_unit_tensor(images, self.model_config.image_size, self.model_config.channels,
                                self.model_config.roi, self.device)
        with torch.inference_mode():
            vectors = self.model.encode(pixels)
        return Embeddings(image=vectors.float().cpu().numpy(), patches=None)

    @classmethod
    def from_config(cls, config: dict[str, Any], weights: str | Path | None = None,
                    **runtime: Any) -> "TripletAutoencoderEmbedder":
        """Reopen the recorded checkpoint, or `weights` (a moved copy of it); the index checks the digest."""
        path = weights or config.get("weights_path")
        if not path or not Path(path).is_file():
            raise WeightsError(f"this index was built with the checkpoint {config.get('weights_path')}, "
                               "which is not there now", hint="pass {param} CHECKPOINT", parameter="weights")
        return cls(path, **runtime_options(runtime))

    @classmethod
    def from_spec(cls, argument: str, **options: Any) -> "TripletAutoencoderEmbedder":
        """From `triplet-ae:CHECKPOINT`; image size and weights come from the checkpoint, not the options."""
        return cls(checkpoint_argument(KIND, argument), **runtime_options(options))
