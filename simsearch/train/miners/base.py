"""Shared pieces of the triplet miners: the Triplets type and the masks of valid positives/negatives."""

from __future__ import annotations

from typing import Tuple

import torch

Triplets = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # anchor, positive, negative index tensors


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, N) masks: same class but not itself (positives), and other class (negatives)."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def all_triplets(labels: torch.Tensor) -> Triplets:
    """Every (a, p, n) with label[a] == label[p], a != p and label[n] != label[a]."""
    positive, negative = pair_masks(labels)
    valid = positive[:, :, None] & negative[:, None, :]
    anchor, pos, neg = torch.nonzero(valid, as_tuple=True)
    return anchor, pos, neg


class TripletMiner:
    """Chooses triplets from a batch of embeddings: miner(embeddings, labels) -> (anchor, positive, negative)."""

    def __init__(self, distance=None):
        from simsearch.train.distances import LpDistance
        self.distance = distance or LpDistance()

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        with torch.no_grad():
            return self.mine(embeddings.detach(), labels)

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        raise NotImplementedError
