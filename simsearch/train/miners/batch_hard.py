"""Batch-hard mining (Hermans et al. 2017): per anchor, its farthest positive and its nearest negative."""

from __future__ import annotations

import torch

from simsearch.train.miners.base import TripletMiner, Triplets, pair_masks


class BatchHardMiner(TripletMiner):
    """One triplet per anchor that has both a positive and a negative in the batch."""

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        distances = self.distance(embeddings)
        positive, negative = pair_masks(labels)
        usable = positive.any(1) & negative.any(1)
        hardest_positive = distances.masked_fill(~positive, float("-inf")).argmax(1)
        hardest_negative = distances.masked_fill(~negative, float("inf")).argmin(1)
        anchor = torch.nonzero(usable, as_tuple=True)[0]
        return anchor, hardest_positive[anchor], hardest_negative[anchor]
