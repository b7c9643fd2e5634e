"""A convolutional autoencoder whose bottleneck is an L2-normalised embedding."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


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
            raise ValueError(f"image size {image_size} must be a multiple of {2 ** len(widths)}")
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
