"""Each miner simsearch offers (pytorch-metric-learning's, chosen by name) picks exactly the triplets it should
on a hand-made batch with known distances."""

import pytest
import torch
from pytorch_metric_learning import miners
from pytorch_metric_learning.distances import LpDistance

from simsearch.errors import UnknownComponentError
from simsearch.train.triplets import create_miner, miner_names

RAW = LpDistance(normalize_embeddings=False)
# Points on a line: class 0 at x=0 and x=1, class 1 at x=3 and x=1.5.
# Distances: d01=1, d02=3, d03=1.5, d12=2, d13=0.5, d23=1.5
EMBEDDINGS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [1.5, 0.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def _set(triplets):
    return {tuple(int(t[i]) for t in triplets) for i in range(len(triplets[0]))}


def test_all_triplets():
    found = _set(create_miner("all", margin=0.2, distance=RAW)(EMBEDDINGS, LABELS))
    assert found == {(0, 1, 2), (0, 1, 3), (1, 0, 2), (1, 0, 3), (2, 3, 0), (2, 3, 1), (3, 2, 0), (3, 2, 1)}


def test_batch_hard_takes_farthest_positive_and_nearest_negative():
    found = _set(create_miner("batch-hard", distance=RAW)(EMBEDDINGS, LABELS))
    assert found == {(0, 1, 3), (1, 0, 3), (2, 3, 1), (3, 2, 1)}


def test_batch_hard_with_several_positives():
    embeddings = torch.tensor([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [2.5, 0.0], [6.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    _, positive, negative = create_miner("batch-hard", distance=RAW)(embeddings, labels)
    assert (int(positive[0]), int(negative[0])) == (2, 3)  # anchor 0: farthest positive x=4, nearest negative x=2.5


def test_semi_hard_keeps_negatives_beyond_the_positive_but_inside_the_margin():
    found = _set(create_miner("semi-hard", margin=1.0, distance=RAW)(EMBEDDINGS, LABELS))
    # a0,p1 (1.0): n3 at 1.5 is semi-hard, n2 at 3 is easy; a2,p3 (1.5): n1 at 2 is semi-hard, n0 at 3 easy;
    # a3,p2 (1.5): n1 at 0.5 is hard, n0 at 1.5 ties the positive (not beyond it).
    # a1,p0 (1.0): n3 at 0.5 is hard; n2 at 2 lies exactly on the margin (2 = 1 + 1.0). pml's semi-hard bound is
    # inclusive (d(a,n) <= d(a,p) + margin), the hand-written miner's was strict: (1, 0, 2) is kept now. Its loss
    # is max(0, 1 - 2 + 1.0) = 0, and the non-zero average leaves it out, so training is unchanged.
    assert found == {(0, 1, 3), (2, 3, 1), (1, 0, 2)}


def test_anchor_without_positive_gives_no_triplet():
    anchor, _, _ = create_miner("batch-hard", distance=RAW)(EMBEDDINGS[:3], torch.tensor([0, 0, 1]))
    assert sorted(anchor.tolist()) == [0, 1]


def test_miners_by_name():
    assert miner_names() == ["all", "batch-hard", "semi-hard"]
    assert isinstance(create_miner("batch-hard"), miners.BatchHardMiner)
    semi_hard = create_miner("semi-hard", margin=0.3)
    assert isinstance(semi_hard, miners.TripletMarginMiner)
    assert (semi_hard.margin, semi_hard.type_of_triplets) == (0.3, "semihard")
    with pytest.raises(UnknownComponentError, match="batch-hard"):
        create_miner("hardest")
