"""Reducer strategies: per-triplet losses -> one scalar."""

from __future__ import annotations

import torch


class MeanReducer:
    """The mean over all triplets (zero when there are none)."""

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:
        return losses.mean() if losses.numel() else losses.sum()


class AvgNonZeroReducer:
    """The mean over the triplets that still violate the margin, so easy ones do not dilute the gradient."""

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:
        active = losses > 0
        return losses[active].mean() if active.any() else losses.sum() * 0.0
