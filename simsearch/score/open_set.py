"""Open-set scoring with a few labelled defects (the mode is `OpenSetMode` in score/modes.py).

The published methods for a few labelled anomalies (DevNet, Pang et al. 2019; DRA, Ding et al. 2022; AHL,
Zhu et al. 2024) score an image by what the labelled defects show (seen defects) and by its residual
distance to the good data (unseen defects). simsearch's version, as a similarity method:

    log score = log r + w * log(d_good / d_defect) + v * z

r is the good-only patch residual (PatchCore's image score); d_good / d_defect how much nearer the image lies
to the known defects than to the known goods (mean distance to the k nearest exemplars, the mean of the image
vectors' and the region descriptors' log ratios); z the image vector's projection on the goods-to-defects
discriminant (a metric learned from the labels: Fisher's, shrunk), each term brought to the residual's spread
on the goods. The weights w and v are chosen out of fold, on the index's own exemplars only: each scored
without itself (a leave-one-out residual for the goods, stored as they are banked; the ratios leave each out
of its own label's stores; the discriminant from FOLDS folds), the image AUROC of each (w, v) of WEIGHTS, and
non-zero weights only where, with MIN_DEFECTS or more defects, they beat the residual alone in CONFIDENCE of
bootstrap resamples; among weights that rank them equally well, those leaving the widest gap between the
goods' and the defects' tails (`tail_gap`). Where the labels do not help (none, too few, no confirmed gain)
the score is the residual, bit for bit."""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from simsearch.index.exemplar_index import ExemplarIndex
from simsearch.index.roles import Role

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
MIN_DEFECTS = 3  # fewer labelled defects cannot show out of fold that they help: two positives are chance
# A few defects give a noisy out-of-fold AUROC: a weight is used where it ranks the exemplars better than the
# residual alone in CONFIDENCE of RESAMPLES bootstrap resamples, not where it merely came out ahead once.
CONFIDENCE = 0.9
RESAMPLES = 200
SHRINKAGE = 0.5  # of the goods' covariance towards its mean variance, in the discriminant
FOLDS = 5  # out-of-fold discriminant projections: each exemplar's from a direction fitted without it
NEIGHBOURS = 3  # on each side: one odd exemplar should not decide
TAIL = 0.1  # the goods' top and the defects' bottom tenth: the tails between which a threshold is placed
# each exemplar's residual (its largest patch distance to the good bank; a good one's to the other goods'
# patches), measured as it is banked: the out-of-fold scores the weight is chosen on
RESIDUAL_ROLES = {"good_residuals": Role("good", dim=1), "defect_residuals": Role("defect", dim=1)}
IMAGE_AND_REGION = (("good", "defect"), ("good_regions", "defect_regions"))


@dataclass(frozen=True)
class WeightChoice:
    """The out-of-fold choice of how much the labelled defects weigh: `weight` of the log ratio and
    `direction_weight` of the discriminant (0 and 0: the residual alone), each term's `scales` (its spread
    brought to the residual's on the goods), the image AUROC of the best candidates on the exemplars left out,
    and why; `direction` and `origin`: the discriminant fitted on every exemplar (None without one)."""

    weight: float
    auroc: dict[tuple[float, float], float]
    reason: str
    direction_weight: float = 0.0
    scales: tuple[float, float] = (1.0, 1.0)
    direction: np.ndarray | None = field(default=None, compare=False, repr=False)
    origin: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def uses_labels(self) -> bool:
        return bool(self.weight or self.direction_weight)

    def to_dict(self) -> dict:
        return {"weight": self.weight, "direction_weight": self.direction_weight,
                "out_of_fold_auroc": {f"{a:g},{b:g}": round(v, 4) for (a, b), v in self.auroc.items()},
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


def choose_weight(residuals: np.ndarray, log_ratios: np.ndarray, labels: np.ndarray,
                  projections: np.ndarray | None = None) -> WeightChoice:
    """The weights of the evidence terms (log ratio, and the discriminant projection where given) added to
    log(residual) that rank the exemplars' out-of-fold scores best; 0 and 0 unless, with MIN_DEFECTS defects or
    more, the best beats the residual alone in CONFIDENCE of bootstrap resamples."""
    labels = np.asarray(labels, dtype=bool)
    defects = int(labels.sum())
    if defects < MIN_DEFECTS:
        return WeightChoice(0.0, {}, f"{defects} labelled defect(s): too few to show out of fold that they help "
                                     f"(needs {MIN_DEFECTS}); the good-only residual")
    if labels.all():
        return WeightChoice(0.0, {}, "no good exemplar to compare with: the good-only residual")
    log_residual = np.log(np.maximum(residuals, 1e-12))
    terms = [np.asarray(log_ratios, dtype=np.float64),
             np.zeros(len(labels)) if projections is None else np.asarray(projections, dtype=np.float64)]
    spread = float(np.std(log_residual[~labels])) or 1.0
    scales = tuple(spread / (float(np.std(term[~labels])) or 1.0) for term in terms)
    grid = [(a, b) for a in WEIGHTS for b in (WEIGHTS if projections is not None else (0.0,))]

    def combined(a: float, b: float) -> np.ndarray:
        return log_residual + a * scales[0] * terms[0] + b * scales[1] * terms[1]

    scores = {(a, b): auroc(labels, combined(a, b)) for a, b in grid}
    top = max(scores.values())
    # Where several weights rank the exemplars equally well (where they separate, most do), the widest gap
    # between the goods' and the defects' tails: the threshold placed in that gap holds better on new parts.
    # On MPDD the smallest tied weights left a narrow gap, and new defects fell below the threshold.
    tied = [ab for ab in grid if scores[ab] >= top - 1e-12]
    best = max(tied, key=lambda ab: (tail_gap(labels, combined(*ab)), -sum(ab)))
    confidence = _gain_confidence(labels, log_residual, combined(*best)) if any(best) else 0.0
    if not any(best) or scores[best] <= scores[0.0, 0.0] or confidence < CONFIDENCE:
        return WeightChoice(0.0, scores, f"the {defects} labelled defects do not help out of fold (AUROC "
                                         f"{scores[best]:.3f} at best, {scores[0.0, 0.0]:.3f} without, better in "
                                         f"{confidence:.0%} of resamples): the residual")
    return WeightChoice(best[0], scores, f"{defects} labelled defects: out-of-fold AUROC {scores[best]:.3f} "
                                         f"against {scores[0.0, 0.0]:.3f} for the residual alone, better in "
                                         f"{confidence:.0%} of resamples", best[1], scales)


def tail_gap(labels: np.ndarray, scores: np.ndarray) -> float:
    """How far the defects' lower tail lies above the goods' upper tail (their TAIL quantiles), in the goods'
    spread: the room a threshold has between them (negative where they overlap)."""
    labels = np.asarray(labels, dtype=bool)  # 0/1 labels as auroc takes them: `~` of an int array is not a mask
    good, defect = scores[~labels], scores[labels]
    return float((np.quantile(defect, TAIL) - np.quantile(good, 1 - TAIL)) / (np.std(good) or 1.0))


def _gain_confidence(labels: np.ndarray, base: np.ndarray, weighed: np.ndarray) -> float:
    """Share of RESAMPLES bootstrap resamples (goods and defects drawn apart, seeded) in which `weighed` ranks
    the exemplars better than `base`, with ties counted as not worse only where nothing was left to gain."""
    rng = np.random.default_rng(0)
    goods, defects = np.flatnonzero(~labels), np.flatnonzero(labels)
    better = 0.0
    for _ in range(RESAMPLES):
        rows = np.concatenate([rng.choice(goods, len(goods)), rng.choice(defects, len(defects))])
        before, after = auroc(labels[rows], base[rows]), auroc(labels[rows], weighed[rows])
        better += 1.0 if after > before else (1.0 if after == before == 1.0 else 0.0)
    return better / RESAMPLES


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


def _out_of_fold(index: ExemplarIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Residuals, log ratios, labels (True = defect) and image vectors of every exemplar that has its residual,
    each left out of its own label's stores (the k nearest others; the other label's k nearest)."""
    residuals, ratios, labels, images = [], [], [], []
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
        images.append(_vectors_of(index, label, ids))
    if not residuals:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), np.zeros((0, index.dim), np.float32)
    return np.concatenate(residuals), np.concatenate(ratios), np.concatenate(labels), np.concatenate(images)


def fit_direction(goods: np.ndarray, defects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The discriminant between good and defect image vectors (Fisher's, with the goods' covariance shrunk
    half-way to its mean variance: a few hundred goods do not fill a few hundred dimensions), scaled so that
    the goods' projections have unit spread; and the goods' mean, its origin."""
    goods, defects = np.asarray(goods, dtype=np.float64), np.asarray(defects, dtype=np.float64)
    origin = goods.mean(axis=0)
    with threadpool_limits(1, user_api="blas"):  # small products: BLAS threads cost more to wake than they save
        covariance = np.cov(goods, rowvar=False) if len(goods) > 1 else np.zeros((goods.shape[1],) * 2)
        shrunk = (1 - SHRINKAGE) * covariance + SHRINKAGE * (np.trace(covariance) / len(covariance) or 1.0) * \
            np.eye(len(covariance))
        direction = np.linalg.solve(shrunk, defects.mean(axis=0) - origin)
    direction /= np.sqrt(max(float(direction @ shrunk @ direction), 1e-24))
    return direction, origin


def _projections_out_of_fold(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each exemplar's discriminant projection from a direction fitted without its fold (FOLDS, stratified by
    label, seeded)."""
    rng = np.random.default_rng(0)
    folds = np.zeros(len(labels), dtype=int)
    for label in (False, True):
        rows = rng.permutation(np.flatnonzero(labels == label))
        folds[rows] = np.arange(len(rows)) % FOLDS
    projections = np.zeros(len(labels))
    for fold in range(FOLDS):
        held, kept = folds == fold, folds != fold
        if not held.any() or not (kept & labels).any() or not (kept & ~labels).any():
            continue
        direction, origin = fit_direction(images[kept & ~labels], images[kept & labels])
        projections[held] = (images[held] - origin) @ direction
    return projections


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
            residuals, ratios, labels, images = _out_of_fold(index)
            projections = _projections_out_of_fold(images, labels) if labels.sum() >= MIN_DEFECTS else None
            choice = choose_weight(residuals, ratios, labels, projections)
            if choice.direction_weight:
                direction, origin = fit_direction(images[~labels], images[labels])
                choice = dataclasses.replace(choice, direction=direction, origin=origin)
        cached = _CHOICES[index] = (state, choice)
    return cached[1]


def evidence(choice: WeightChoice, log_ratios: np.ndarray | None, image_vectors: np.ndarray) -> np.ndarray:
    """What the labelled defects add to log(residual) for images (N,), by the chosen weights."""
    total = np.zeros(len(image_vectors))
    if choice.weight:
        total += choice.weight * choice.scales[0] * log_ratios
    if choice.direction_weight:
        total += choice.direction_weight * choice.scales[1] * ((image_vectors - choice.origin) @ choice.direction)
    return total
