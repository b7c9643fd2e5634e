"""The triplet margin loss simsearch trains with (pytorch-metric-learning's): zero when every negative is
margin-far, positive and exact when not, with the gradient pointing the right way."""

import math

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.reducers import MeanReducer

from simsearch.train.tasks.common import TripletObjective, TripletOptions

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


def _circle(*degrees):
    return torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in degrees])


def test_objective_averages_the_violating_triplets_on_unit_vectors():
    # simsearch's objective: unit-length vectors, Euclidean chord 2 sin(angle / 2), margin 0.2, every triplet mined.
    # class 0 at 0 and 60 degrees, class 1 at 90 and 180 degrees
    objective = TripletObjective(TripletOptions(miner="all", margin=0.2))
    chord = {a: 2 * math.sin(math.radians(a) / 2) for a in (30, 60, 90, 120, 180)}
    # (anchor, positive, negative) angles apart: (a,p), (a,n); class-0 anchors and class-1 anchors
    triplets = [(60, 90), (60, 180), (60, 30), (60, 120), (90, 90), (90, 180), (90, 30), (90, 120)]
    violations = [max(0.0, chord[ap] - chord[an] + 0.2) for ap, an in triplets]
    # only (a=60, p=0, n=90 at 30 degrees) and (a=90, p=180, n=60 at 30 degrees) and (a=90, p=180, n=0 at 90) break it
    expected = sum(violations) / sum(v > 0 for v in violations)  # pml's AvgNonZeroReducer: easy triplets left out
    value = objective(_circle(0, 60, 90, 180), torch.tensor([0, 0, 1, 1]))
    assert value.item() == pytest.approx(expected, abs=1e-5)


def test_no_triplets_gives_zero_with_a_graph():
    embeddings = _line(0.0, 1.0).requires_grad_()
    value = TripletObjective()(embeddings, torch.tensor([0, 1]))  # no anchor has a positive
    assert value.item() == 0.0 and value.requires_grad


def test_duplicate_vectors_keep_the_gradient_finite():
    # a batch larger than cdist's matrix-product threshold (25) with two identical vectors of one class
    torch.manual_seed(0)
    embeddings = torch.randn(32, 8)
    embeddings[1] = embeddings[0]
    embeddings.requires_grad_()
    TripletObjective(TripletOptions(miner="all", margin=0.5))(embeddings, torch.arange(32) % 2).backward()
    assert torch.isfinite(embeddings.grad).all()
