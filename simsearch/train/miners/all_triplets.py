"""The trivial miner: every valid triplet of the batch."""

from __future__ import annotations

import torch

from simsearch.train.miners.base import TripletMiner, Triplets, all_triplets


class AllTripletsMiner(TripletMiner):
    """Every (a, p, n) with a same-class positive and an other-class negative."""

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        return all_triplets(labels)
