"""Where a compared method's threshold comes from: scores of its own training part that no model fitted on
them produced (out of fold), and one rule to place it (`place_threshold`: the F1 policy of `simsearch
calibrate` with enough defects, else the good-only quantile; the few-defects rule itself is
`simsearch.decide.policies.enough_defects_for_f1`).

A 20 % carve-out holds about two defects when a fold has nine: an F1 threshold placed on two defect scores
is chance (issue 26). Out-of-fold scores of the WHOLE training part use every labelled image:
- similarity methods score each training exemplar against the index with it left out
  (`similarity.out_of_fold_scores`);
- the probe fits its head on K-1 internal folds and scores the held one (`internal_folds`);
- CNN and CAM, each fit a full training run, keep their validation carve-out (K runs would cost K times
  the training); their basis says so."""

from __future__ import annotations

from typing import Callable

import numpy as np

from simsearch.decide.policies import calibrate, enough_defects_for_f1
from simsearch.decide.threshold import Threshold

GOOD_ONLY_RATE = 0.01  # without enough defects: reject about 1% of good parts
INTERNAL_FOLDS = 3  # the probe's out-of-fold predictions

# What a threshold was placed on (`Threshold.calibrated_on` and the compare table's short tag).
LEAVE_ONE_OUT = "leave-one-out"
OUT_OF_FOLD = "out-of-fold"
CARVE_OUT = "carve-out"
FIXED = "fixed"


def place_threshold(labels: np.ndarray, scores: np.ndarray, scored_on: str = CARVE_OUT) -> Threshold | None:
    """F1-best where the scored set holds enough defects (the policy of `simsearch calibrate`); with fewer,
    the good-only conformal quantile at about 1% false alarms (fewer goods: the strictest rate they allow).
    None without good scores. `scored_on` names where the scores come from (one of the constants above)."""
    labels = np.asarray(labels, dtype=int)
    if not (labels == 0).any():
        return None
    if enough_defects_for_f1(labels):
        threshold = calibrate(labels, scores, "f1")
    else:
        threshold = calibrate(labels, scores, "good-only", max(GOOD_ONLY_RATE, 1.0 / (int((labels == 0).sum()) + 1)))
    threshold.calibrated_on = (f"{scored_on} scores of {len(labels)} training images "
                               f"({int((labels == 1).sum())} defects)")
    return threshold


def basis(threshold: Threshold | None, scored_on: str) -> str:
    """The compare table's short tag: where the scores came from and the policy, e.g. 'leave-one-out f1',
    'out-of-fold good-only' (too few defects for F1), 'fixed 0.5'."""
    if threshold is None:
        return f"{FIXED} 0.5"
    return f"{scored_on} {threshold.policy}"


def internal_folds(labels: np.ndarray, folds: int = INTERNAL_FOLDS,
                   seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held rows) per internal fold over a training part: goods and defects each dealt into
    `folds` parts in a seeded random order, so every fit part keeps both classes where it can. With one
    defect it is never held (a fit without defects cannot learn them); its goods still get scores, and one
    defect is too few for the F1 policy anyway. Every row is held at most once."""
    labels = np.asarray(labels, dtype=int)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(folds)]
    for value in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == value))
        if value == 1 and len(rows) < 2:
            continue
        for position, chunk in enumerate(np.array_split(rows, min(folds, len(rows)))):
            parts[position].append(chunk)
    result = []
    for chunks in parts:
        held = np.sort(np.concatenate(chunks)) if chunks else np.array([], dtype=int)
        if len(held):
            result.append((np.setdiff1d(np.arange(len(labels)), held), held))
    return result


def out_of_fold_predictions(labels: np.ndarray, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
                            folds: int = INTERNAL_FOLDS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores): each held row's score from `fit_predict(fit_rows, held_rows)`, a model fitted on the
    other internal folds only; rows never held (a lone defect) are left out."""
    rows, scores = [], []
    for fit_rows, held_rows in internal_folds(labels, folds, seed):
        rows.append(held_rows)
        scores.append(np.asarray(fit_predict(fit_rows, held_rows), dtype=np.float64))
    if not rows:
        return np.array([], dtype=int), np.array([])
    order = np.argsort(np.concatenate(rows), kind="stable")
    return np.concatenate(rows)[order], np.concatenate(scores)[order]
