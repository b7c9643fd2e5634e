"""Open-set scoring with a few labelled defects (maths only; the mode is `OpenSetMode` in score/modes.py).

The published methods for a few labelled anomalies (DevNet, Pang et al. 2019; DRA, Ding et al. 2022; AHL,
Zhu et al. 2024) score an image by what the labelled defects show (seen defects) and by its residual
distance to the good data (unseen defects). simsearch's version, as a similarity method: the good-only patch
residual r (PatchCore's image score), times how much nearer the image lies to the known defects than to the
known goods, ratio = d_good / d_defect (mean distance to the k nearest exemplars, the geometric mean of the
image vectors' and the region descriptors'), to a power w: score = r * ratio ** w. The weight w is chosen
out of fold: every exemplar of the index scored with itself left out (a leave-one-out residual for the
goods, stored as they are banked; the defects' against the good bank), the image AUROC of those scores for
each w of WEIGHTS, and w > 0 only where it beats w = 0 by MIN_GAIN (or removes MIN_ERROR_CUT of its errors) with
MIN_DEFECTS or more defects. Where the
labels do not help (none, too few, or no gain) w = 0 and the score is the residual, bit for bit."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from simsearch.index.exemplar_index import ExemplarIndex
from simsearch.index.roles import Role

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
MIN_DEFECTS = 3  # fewer labelled defects cannot show out of fold that they help: two positives are chance
MIN_GAIN = 0.01  # the out-of-fold AUROC a weight must add to the residual's before the labels are used
MIN_ERROR_CUT = 0.25  # or the share of the residual's out-of-fold ranking errors it must remove
NEIGHBOURS = 3  # on each side: one odd exemplar should not decide
# each exemplar's residual (its largest patch distance to the good bank; a good one's to the other goods'
# patches), measured as it is banked: the out-of-fold scores the weight is chosen on
RESIDUAL_ROLES = {"good_residuals": Role("good", dim=1), "defect_residuals": Role("defect", dim=1)}
IMAGE_AND_REGION = (("good", "defect"), ("good_regions", "defect_regions"))


@dataclass(frozen=True)
class WeightChoice:
    """The out-of-fold choice of the defect weight: `weight` (0: the residual alone), the AUROC of each
    candidate on the exemplars left out one at a time, and why."""

    weight: float
    auroc: dict[float, float]
    reason: str

    def to_dict(self) -> dict:
        return {"weight": self.weight, "out_of_fold_auroc": {str(w): round(a, 4) for w, a in self.auroc.items()},
                "reason": self.reason}


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Image AUROC (ties count half), without scikit-learn on the scoring path."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def choose_weight(residuals: np.ndarray, log_ratios: np.ndarray, labels: np.ndarray) -> WeightChoice:
    """The weight w of log(ratio) added to log(residual) that ranks the exemplars' out-of-fold scores best;
    0 unless it beats the residual alone by MIN_GAIN with MIN_DEFECTS defects or more."""
    labels = np.asarray(labels, dtype=bool)
    defects = int(labels.sum())
    if defects < MIN_DEFECTS:
        return WeightChoice(0.0, {}, f"{defects} labelled defect(s): too few to show out of fold that they help "
                                     f"(needs {MIN_DEFECTS}); the good-only residual")
    if labels.all():
        return WeightChoice(0.0, {}, "no good exemplar to compare with: the good-only residual")
    log_residual = np.log(np.maximum(residuals, 1e-12))
    scores = {w: auroc(labels, log_residual + w * log_ratios) for w in WEIGHTS}
    best = max(WEIGHTS, key=lambda w: (scores[w], -w))  # ties: the smaller weight
    gain = scores[best] - scores[0.0]
    # near an AUROC of 1 no absolute gain is left to show: a quarter of the residual's errors is enough there
    if best == 0.0 or gain <= 0.0 or gain < min(MIN_GAIN, MIN_ERROR_CUT * (1.0 - scores[0.0])):
        return WeightChoice(0.0, scores, f"the {defects} labelled defects do not help out of fold (AUROC "
                                         f"{scores[best]:.3f} at best, {scores[0.0]:.3f} without): the residual")
    return WeightChoice(best, scores, f"{defects} labelled defects: out-of-fold AUROC {scores[best]:.3f} against "
                                      f"{scores[0.0]:.3f} for the residual alone")


def log_ratio(index: ExemplarIndex, image_vectors: np.ndarray, regions: np.ndarray,
              exclude: int | None = None) -> np.ndarray:
    """log(d_good / d_defect) of images (N,): the mean of the image vectors' and the region descriptors' log
    ratios, each of mean distances to the NEIGHBOURS nearest good and defect exemplars (leaving out `exclude`)."""
    left_out = index.exemplars.get(exclude) if exclude is not None else None
    k = _neighbours(index, left_out.label if left_out else None)
    total = np.zeros(len(image_vectors))
    for (good, defect), vectors in zip(IMAGE_AND_REGION, (image_vectors, regions)):
        near_good = index.search(good, vectors, k, exclude)[0].mean(axis=1)
        near_defect = index.search(defect, vectors, k, exclude)[0].mean(axis=1)
        total += np.log(np.maximum(near_good, 1e-12)) - np.log(np.maximum(near_defect, 1e-12))
    return total / 2.0


def _neighbours(index: ExemplarIndex, left_out_label: str | None = None) -> int:
    goods, defects = len(index.good) - (left_out_label == "good"), len(index.defect) - (left_out_label == "defect")
    return max(1, min(NEIGHBOURS, goods, defects))


def _out_of_fold(index: ExemplarIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residuals, log ratios and labels (True = defect) of every exemplar that has its residual, each left out
    of its own label's stores (the k nearest others; the other label's k nearest)."""
    residuals, ratios, labels = [], [], []
    for label, residual_role in (("good", "good_residuals"), ("defect", "defect_residuals")):
        values, ids = index.vectors[residual_role].contents()
        if not len(ids):
            continue
        k = _neighbours(index, label)
        total = np.zeros(len(ids))
        for roles in IMAGE_AND_REGION:
            own_role = roles[label == "defect"]
            vectors = _vectors_of(index, own_role, ids)
            sides = []
            for role in roles:
                if role == own_role:
                    distances, found = index.search(role, vectors, k + 1)
                    distances = np.where(index.owners(role, found) == ids[:, None], np.inf, distances)
                    sides.append(np.sort(distances, axis=1)[:, :k].mean(axis=1))
                else:
                    sides.append(index.search(role, vectors, k)[0].mean(axis=1))
            total += np.log(np.maximum(sides[0], 1e-12)) - np.log(np.maximum(sides[1], 1e-12))
        residuals.append(values[:, 0])
        ratios.append(total / 2.0)
        labels.append(np.full(len(ids), label == "defect"))
    if not residuals:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate(residuals), np.concatenate(ratios), np.concatenate(labels)


def _vectors_of(index: ExemplarIndex, role: str, ids: np.ndarray) -> np.ndarray:
    vectors, stored = index.vectors[role].contents()
    rows = {int(i): n for n, i in enumerate(stored.tolist())}
    return vectors[[rows[int(i)] for i in ids.tolist()]]


# (stores' identity and versions, the choice) by index: chosen once per state of the stores it reads
_CHOICES: weakref.WeakKeyDictionary[ExemplarIndex, tuple[tuple, WeightChoice]] = weakref.WeakKeyDictionary()


def defect_weight(index: ExemplarIndex) -> WeightChoice:
    """The index's out-of-fold choice of the defect weight, once per state of its stores."""
    roles = ("good", "defect", "good_regions", "defect_regions", "good_residuals", "defect_residuals")
    if any(role not in index.vectors for role in roles):
        return WeightChoice(0.0, {}, "the index keeps no residuals or regions: the good-only residual")
    state = tuple((id(index.vectors[role]), index.vectors[role].version) for role in roles)
    cached = _CHOICES.get(index)
    if cached is None or cached[0] != state:
        if not len(index.defect):
            choice = WeightChoice(0.0, {}, "no labelled defects: the good-only residual")
        else:
            choice = choose_weight(*_out_of_fold(index))
        cached = _CHOICES[index] = (state, choice)
    return cached[1]
