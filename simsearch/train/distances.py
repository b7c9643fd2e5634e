"""Distance strategies for losses and miners: pairwise distances between the rows of two matrices."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LpDistance:
    """Lp distance between (optionally L2-normalised) embeddings; Euclidean by default."""

    def __init__(self, p: float = 2.0, normalize_embeddings: bool = True):
        self.p = p
        self.normalize_embeddings = normalize_embeddings

    def __call__(self, query: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D), (M, D) -> (N, M) distances; reference defaults to query."""
        if self.normalize_embeddings:
            query = F.normalize(query, dim=1)
            reference = None if reference is None else F.normalize(reference, dim=1)
        reference = query if reference is None else reference
        # torch.cdist's gradient is NaN at zero distance (a vector with itself); clamp a squared form instead.
        if self.p == 2:
            squared = (query.pow(2).sum(1, keepdim=True) + reference.pow(2).sum(1)[None]
                       - 2 * query @ reference.T)
            return squared.clamp_min(1e-12).sqrt()
        return torch.cdist(query, reference, p=self.p)

    def pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances between matching rows: (N, D), (N, D) -> (N,)."""
        if self.normalize_embeddings:
            a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        return (a - b).abs().pow(self.p).sum(1).clamp_min(1e-12).pow(1 / self.p)
