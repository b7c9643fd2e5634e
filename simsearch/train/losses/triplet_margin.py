"""The triplet margin loss: max(0, d(a, p) - d(a, n) + margin) over mined triplets."""

from __future__ import annotations

import torch

from simsearch.train.distances import LpDistance
from simsearch.train.miners.base import Triplets, all_triplets
from simsearch.train.reducers import AvgNonZeroReducer


class TripletMarginLoss(torch.nn.Module):
    """Pulls an anchor towards a same-class positive and pushes a negative at least `margin` further away.

    Without `triplets`, every valid triplet of the batch counts (as pytorch-metric-learning does).
    """

    def __init__(self, margin: float = 0.2, distance: LpDistance | None = None, reducer=None):
        super().__init__()
        self.margin = float(margin)
        self.distance = distance or LpDistance()
        self.reducer = reducer or AvgNonZeroReducer()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                triplets: Triplets | None = None) -> torch.Tensor:
        anchor, positive, negative = all_triplets(labels) if triplets is None else triplets
        if anchor.numel() == 0:
            return embeddings.sum() * 0.0  # keeps the graph: a batch without triplets adds nothing
        d_ap = self.distance.pair(embeddings[anchor], embeddings[positive])
        d_an = self.distance.pair(embeddings[anchor], embeddings[negative])
        return self.reducer(torch.relu(d_ap - d_an + self.margin))
