"""Thresholds that hold with few defects: every compared method places its threshold on out-of-fold scores of
its training part (never on a test score), with the one few-defects rule (`enough_defects_for_f1`)."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.baselines.thresholds import (
    LEAVE_ONE_OUT,
    basis,
    internal_folds,
    out_of_fold_predictions,
    place_threshold,
)
from simsearch.decide.policies import MIN_DEFECTS_FOR_F1


@pytest.mark.parametrize("defects", [0, 1, 2, 3, 7])
def test_internal_folds_hold_each_row_once_and_never_fit_on_what_they_hold(defects):
    labels = np.array([0] * 20 + [1] * defects)
    folds = internal_folds(labels, 3, seed=4)
    held = np.concatenate([h for _, h in folds])
    assert len(held) == len(set(held.tolist()))  # each row held at most once
    for fit_rows, held_rows in folds:
        assert not set(fit_rows.tolist()) & set(held_rows.tolist())
        assert sorted(fit_rows.tolist() + held_rows.tolist()) == list(range(len(labels)))
        if defects:
            assert labels[fit_rows].sum() >= 1  # every fit keeps a defect to learn from
    held_defects = int(labels[held].sum())
    assert held_defects == (0 if defects < 2 else defects)  # a lone defect is never held
    assert (labels[held] == 0).sum() == 20
    assert [h.tolist() for _, h in internal_folds(labels, 3, seed=4)] == [h.tolist() for _, h in folds]


def test_out_of_fold_predictions_come_from_models_fitted_without_the_row():
    labels = np.array([0] * 12 + [1] * 6)
    calls = []

    def fit_predict(fit_rows, held_rows):
        calls.append((set(fit_rows.tolist()), set(held_rows.tolist())))
        return held_rows * 10.0  # a score that names its row
    rows, scores = out_of_fold_predictions(labels, fit_predict, folds=3, seed=0)
    assert rows.tolist() == list(range(18)) and scores.tolist() == [r * 10.0 for r in range(18)]
    assert all(not fit & held for fit, held in calls)


def test_place_threshold_uses_f1_with_enough_defects_else_good_only_and_says_where():
    rng = np.random.default_rng(0)
    good, defect = rng.normal(0, 1, 50), rng.normal(3, 1, MIN_DEFECTS_FOR_F1)
    labels = np.r_[np.zeros(50, int), np.ones(MIN_DEFECTS_FOR_F1, int)]
    enough = place_threshold(labels, np.r_[good, defect], LEAVE_ONE_OUT)
    assert enough.policy == "f1" and basis(enough, LEAVE_ONE_OUT) == "leave-one-out f1"
    assert "leave-one-out scores of 55 training images (5 defects)" in enough.calibrated_on
    few = place_threshold(labels[:-1], np.r_[good, defect[:-1]], LEAVE_ONE_OUT)
    assert few.policy == "good-only" and basis(few, LEAVE_ONE_OUT) == "leave-one-out good-only"
    assert few.value >= np.sort(good)[-2]  # the good-only quantile: about 1 false alarm in 50 at most
    assert place_threshold(np.ones(6, int), np.arange(6.0)) is None and basis(None, "x") == "fixed 0.5"
