"""Each miner picks exactly the triplets it should on a hand-made batch with known distances."""

import pytest
import torch

from simsearch.train.distances import LpDistance
from simsearch.train.miners import AllTripletsMiner, BatchHardMiner, SemiHardMiner, create_miner, miner_names

RAW = LpDistance(normalize_embeddings=False)
# Points on a line: class 0 at x=0 and x=1, class 1 at x=3 and x=1.5.
# Distances: d01=1, d02=3, d03=1.5, d12=2, d13=0.5, d23=1.5
EMBEDDINGS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [1.5, 0.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def _set(triplets):
    return {tuple(int(t[i]) for t in triplets) for i in range(len(triplets[0]))}


def test_all_triplets():
    found = _set(AllTripletsMiner(RAW)(EMBEDDINGS, LABELS))
    assert found == {(0, 1, 2), (0, 1, 3), (1, 0, 2), (1, 0, 3), (2, 3, 0), (2, 3, 1), (3, 2, 0), (3, 2, 1)}


def test_batch_hard_takes_farthest_positive_and_nearest_negative():
    found = _set(BatchHardMiner(RAW)(EMBEDDINGS, LABELS))
    assert found == {(0, 1, 3), (1, 0, 3), (2, 3, 1), (3, 2, 1)}


def test_batch_hard_with_several_positives():
    embeddings = torch.tensor([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0], [2.5, 0.0], [6.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    anchor, positive, negative = BatchHardMiner(RAW)(embeddings, labels)
    assert (int(positive[0]), int(negative[0])) == (2, 3)  # anchor 0: farthest positive x=4, nearest negative x=2.5


def test_semi_hard_keeps_negatives_beyond_the_positive_but_inside_the_margin():
    found = _set(SemiHardMiner(margin=1.0, distance=RAW)(EMBEDDINGS, LABELS))
    # a0,p1 (1.0): n3 at 1.5 is semi-hard, n2 at 3 is easy; a2,p3 (1.5): n1 at 2 is semi-hard, n0 at 3 easy;
    # a1 and a3 only have hard negatives (0.5 < their positive's distance)
    assert found == {(0, 1, 3), (2, 3, 1)}


def test_anchor_without_positive_gives_no_triplet():
    anchor, _, _ = BatchHardMiner(RAW)(EMBEDDINGS[:3], torch.tensor([0, 0, 1]))
    assert sorted(anchor.tolist()) == [0, 1]


def test_miners_by_name():
    assert miner_names() == ["all", "batch-hard", "semi-hard"]
    assert isinstance(create_miner("semi-hard", margin=0.3), SemiHardMiner)
    assert create_miner("semi-hard", margin=0.3).margin == 0.3
    with pytest.raises(ValueError, match="batch-hard"):
        create_miner("hardest")
