"""The triplet margin loss: zero when every negative is margin-far, positive (and exact) when not."""

import pytest
import torch

from simsearch.train.distances import LpDistance
from simsearch.train.losses import TripletMarginLoss
from simsearch.train.reducers import MeanReducer

RAW = LpDistance(normalize_embeddings=False)


def _line(*xs):
    return torch.tensor([[x, 0.0] for x in xs])


def test_zero_when_the_margin_holds():
    loss = TripletMarginLoss(margin=0.5, distance=RAW)
    # classes 0 at 0 and 0.1, class 1 at 5 and 5.1: every negative is far beyond the margin
    assert loss(_line(0.0, 0.1, 5.0, 5.1), torch.tensor([0, 0, 1, 1])).item() == 0.0


def test_positive_and_exact_when_the_margin_is_violated():
    loss = TripletMarginLoss(margin=0.5, distance=RAW, reducer=MeanReducer())
    embeddings, labels = _line(0.0, 1.0, 1.2), torch.tensor([0, 0, 1])
    triplets = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    # d(a,p) = 1, d(a,n) = 1.2: 1 - 1.2 + 0.5 = 0.3
    assert loss(embeddings, labels, triplets).item() == pytest.approx(0.3, abs=1e-5)


def test_gradient_pulls_positive_in_and_pushes_negative_out():
    embeddings = _line(0.0, 1.0, 1.2).requires_grad_()
    loss = TripletMarginLoss(margin=0.5, distance=RAW)
    loss(embeddings, torch.tensor([0, 0, 1]), (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))).backward()
    # a descent step moves the positive (x=1) down towards the anchor (x=0) and the negative (x=1.2) up, away
    assert embeddings.grad[1, 0] > 0
    assert embeddings.grad[2, 0] < 0


def test_no_triplets_gives_zero_with_a_graph():
    embeddings = _line(0.0, 1.0).requires_grad_()
    value = TripletMarginLoss()(embeddings, torch.tensor([0, 1]))
    assert value.item() == 0.0 and value.requires_grad
