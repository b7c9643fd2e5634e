"""Pinned split assignments: the README and docs figures depend on which images each fold holds."""

from pathlib import Path

from simsearch.data.datasets import Sample
from simsearch.data.splits import holdout_split, kfold_splits, select_fold


def _samples():
    samples = [Sample(Path(f"good/{i:02d}.png"), "good") for i in range(12)]
    samples += [Sample(Path(f"defect/crack/{i:02d}.png"), "defect", "crack") for i in range(6)]
    return samples + [Sample(Path(f"defect/{i:02d}.png"), "defect") for i in range(4)]


def _names(samples):
    return sorted(s.path.as_posix() for s in samples)


def test_select_fold_assigns_the_same_images_as_before():
    samples = _samples()
    assert _names(select_fold(samples, 1, 3)) == [
        "defect/00.png", "defect/03.png", "defect/crack/00.png", "defect/crack/03.png",
        "good/00.png", "good/03.png", "good/06.png", "good/09.png"]
    assert _names(select_fold(samples, 2, 3)) == [
        "defect/01.png", "defect/crack/01.png", "defect/crack/04.png",
        "good/01.png", "good/04.png", "good/07.png", "good/10.png"]
    assert _names(select_fold(samples, 3, 3)) == [
        "defect/02.png", "defect/crack/02.png", "defect/crack/05.png",
        "good/02.png", "good/05.png", "good/08.png", "good/11.png"]


def test_compare_folds_and_holdout_keep_their_assignments_at_seed_42():
    tests = [_names(split.test) for split in kfold_splits(_samples(), 3, seed=42)]
    assert tests[0] == ["defect/00.png", "defect/02.png", "defect/crack/01.png", "defect/crack/03.png",
                        "good/00.png", "good/03.png", "good/07.png", "good/11.png"]
    assert tests[1] == ["defect/03.png", "defect/crack/00.png", "defect/crack/05.png",
                        "good/05.png", "good/08.png", "good/09.png", "good/10.png"]
    assert _names(holdout_split(_samples(), 0.25, seed=42).test) == [
        "defect/00.png", "defect/crack/03.png", "defect/crack/04.png", "good/02.png", "good/06.png", "good/09.png"]
