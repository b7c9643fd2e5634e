"""A small projection head that maps frozen backbone vectors to a unit-length metric embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """Standardise -> Linear -> ReLU -> Linear -> L2-normalise, over the last dimension of any shape.

    `mean` and `scale` are buffers the trainer sets from the training vectors (saved with the weights),
    so the head works on raw backbone features whatever their range.
    """

    def __init__(self, in_dim: int, embedding_dim: int = 128, hidden_dim: int = 512):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embedding_dim))

    def set_standardisation(self, vectors: torch.Tensor) -> None:
        """Centre and scale inputs with the statistics of the training vectors (N, in_dim)."""
        self.mean.copy_(vectors.mean(0))
        self.scale.copy_(vectors.std(0).clamp_min(1e-6))

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net((vectors - self.mean) / self.scale), dim=-1)
