"""Splits: stratified by defect type, disjoint, reproducible; k-fold tests every sample exactly once."""

from collections import Counter
from pathlib import Path

import pytest

from simsearch.data.datasets import DatasetError, Sample, training_samples
from simsearch.data.splits import holdout_split, kfold_splits, stratum


def _samples():
    samples = [Sample(Path(f"good/{i:03d}.png"), "good") for i in range(60)]
    for kind, count in (("crack", 20), ("scratch", 10), ("rare", 2)):
        samples += [Sample(Path(f"defect/{kind}/{i:03d}.png"), "defect", kind) for i in range(count)]
    return samples


def test_kfold_is_stratified_disjoint_and_covers_every_sample_once():
    samples = _samples()
    splits = kfold_splits(samples, folds=5, seed=1)
    tested = Counter()
    for split in splits:
        assert not set(split.train) & set(split.test)
        assert len(split.train) + len(split.test) == len(samples)
        counts = Counter(map(stratum, split.test))
        assert counts["good"] == 12 and counts["defect:crack"] == 4 and counts["defect:scratch"] == 2
        tested.update(split.test)
    assert set(tested) == set(samples) and set(tested.values()) == {1}


def test_splits_are_reproducible_and_independent_of_input_order():
    samples = _samples()
    first = kfold_splits(samples, 4, seed=3)
    again = kfold_splits(list(reversed(samples)), 4, seed=3)
    assert [s.test for s in first] == [s.test for s in again]
    assert [s.test for s in kfold_splits(samples, 4, seed=4)] != [s.test for s in first]


def test_holdout_split_keeps_proportions():
    split = holdout_split(_samples(), test_size=0.2)
    counts = Counter(map(stratum, split.test))
    assert counts["good"] == 12 and counts["defect:crack"] == 4 and counts["defect:scratch"] == 2
    assert not set(split.train) & set(split.test)
    assert split.fold == 1


def test_too_few_defects_is_a_clear_error():
    samples = [Sample(Path(f"g{i}.png"), "good") for i in range(10)] + [Sample(Path("d.png"), "defect")]
    with pytest.raises(DatasetError, match="at least 3"):
        kfold_splits(samples, 3)


def test_mvtec_pool_adds_train_good(tmp_path):
    from PIL import Image
    for folder, count in (("train/good", 3), ("test/good", 1), ("test/crack", 2)):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8)).save(tmp_path / folder / f"{i}.png")
    samples = training_samples(tmp_path)
    assert Counter(map(stratum, samples)) == {"good": 4, "defect:crack": 2}


def test_one_class_key_drives_counts_ids_folds_and_validation():
    from simsearch.data.datasets import class_ids, class_key, count_by_class
    from simsearch.data.splits import DEFAULT_SEED, validation_split

    samples = _samples() + [Sample(Path("defect/untyped.png"), "defect")]
    assert [class_key(s) for s in samples[:1] + samples[-1:]] == ["good", "defect"]
    assert count_by_class(samples) == {"good": 60, "crack": 20, "scratch": 10, "rare": 2, "defect": 1}
    ids, names = class_ids(samples)
    assert names == ["good", "crack", "defect", "rare", "scratch"] and ids[0] == 0 and ids[-1] == 2
    assert [split.fold for split in kfold_splits(samples, 3)] == [1, 2, 3] and DEFAULT_SEED == 0
    rest, held = validation_split(_samples(), 0.25)
    assert len(held) == 23 and Counter(map(class_key, held))["crack"] == 5 and not set(rest) & set(held)


def test_fold_selection_lives_in_splits_only():
    from simsearch.data import datasets, splits

    assert not hasattr(datasets, "select_fold") and splits.parse_fold("2/3") == (2, 3)
    with pytest.raises(DatasetError) as error:
        splits.parse_fold("2of3")
    assert error.value.parameter == "fold"


def test_defect_draws_are_reproducible_nested_per_type_and_keep_every_good():
    from simsearch.data.splits import draw_defects

    samples = _samples()
    draws = {count: draw_defects(samples, count, seed=7, repeat=1) for count in (0, 1, 3, 10, None)}
    for count, drawn in draws.items():
        kinds = Counter(s.defect_type for s in drawn if s.is_defect)
        assert sum(not s.is_defect for s in drawn) == 60  # every good image kept
        if count is None:
            assert kinds == {"crack": 20, "scratch": 10, "rare": 2}
        else:
            assert kinds == {k: min(count, n) for k, n in (("crack", 20), ("scratch", 10), ("rare", 2)) if count}
    defects = {count: {s.path for s in drawn if s.is_defect} for count, drawn in draws.items()}
    assert defects[0] <= defects[1] <= defects[3] <= defects[10] <= defects[None]  # nested
    assert draw_defects(list(reversed(samples)), 3, seed=7, repeat=1) == draws[3]  # same seed: same files
    others = [{s.path for s in draw_defects(samples, 3, seed=7, repeat=r) if s.is_defect} for r in (0, 2)]
    assert defects[3] not in others and others[0] != others[1]  # another repeat draws others
    assert {s.path for s in draw_defects(samples, 3, seed=8, repeat=1) if s.is_defect} != defects[3]


def test_a_negative_defect_count_is_refused():
    from simsearch.data.splits import draw_defects
    from simsearch.errors import InputError

    with pytest.raises(InputError, match="0 or more"):
        draw_defects(_samples(), -1)
