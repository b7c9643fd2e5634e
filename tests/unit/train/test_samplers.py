"""Class-balanced batches: good and defects in every batch, small classes recycled, seeded per epoch."""

import pytest

from simsearch.data.datasets import Sample, class_ids
from simsearch.train.samplers import ClassBalancedBatchSampler


def test_class_ids_count_defect_types_as_classes():
    samples = [Sample("a", "good"), Sample("b", "defect", "crack"), Sample("c", "defect"),
               Sample("d", "defect", "crack")]
    ids, names = class_ids(samples)
    assert names == ["good", "crack", "defect"] and ids == [0, 1, 2, 1]


def test_every_batch_holds_good_and_defects_in_equal_numbers():
    labels = [0] * 40 + [1] * 3 + [2] * 5
    sampler = ClassBalancedBatchSampler(labels, batch_size=12, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4
    for batch in batches:
        classes = [labels[i] for i in batch]
        assert len(batch) == 12 and classes.count(0) == 4 and classes.count(1) == 4 and classes.count(2) == 4


def test_good_always_present_when_not_all_classes_fit():
    labels = [0] * 20 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    for batch in ClassBalancedBatchSampler(labels, batch_size=8, samples_per_class=4, seed=0):
        classes = {labels[i] for i in batch}
        assert 0 in classes and len(classes) == 2


def test_same_epoch_same_batches_and_epochs_differ():
    labels = [0] * 30 + [1] * 10
    sampler = ClassBalancedBatchSampler(labels, batch_size=8, seed=1)
    sampler.set_epoch(2)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(3)
    assert list(sampler) != first


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="two classes"):
        ClassBalancedBatchSampler([0, 0, 0], batch_size=8)
