from simsearch.data.datasets import discover_samples
from simsearch.data.splits import select_fold


def test_folds_are_stratified_and_disjoint(part_folder):
    samples = discover_samples(part_folder)
    first, second = select_fold(samples, 1, 2), select_fold(samples, 2, 2)
    assert not set(first) & set(second) and len(first) + len(second) == len(samples)
    assert sum(s.is_defect for s in first) == 2 and sum(s.is_defect for s in second) == 2
