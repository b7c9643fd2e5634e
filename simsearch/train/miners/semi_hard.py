"""Semi-hard mining (Schroff et al. 2015): negatives farther than the positive but inside the margin."""

from __future__ import annotations

import torch

from simsearch.train.miners.base import TripletMiner, Triplets, all_triplets


class SemiHardMiner(TripletMiner):
    """Triplets with d(a, p) < d(a, n) < d(a, p) + margin: informative without the noise of the hardest ones."""

    def __init__(self, margin: float = 0.2, distance=None):
        super().__init__(distance)
        self.margin = float(margin)

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        distances = self.distance(embeddings)
        anchor, positive, negative = all_triplets(labels)
        d_ap, d_an = distances[anchor, positive], distances[anchor, negative]
        keep = (d_an > d_ap) & (d_an < d_ap + self.margin)
        return anchor[keep], positive[keep], negative[keep]
