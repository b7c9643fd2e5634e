"""Scores of labelled images -> a threshold, chosen by a stated policy, with the metrics it gives.

Policies: `f1` (the F1-best threshold), `target-recall` (catch at least R of the defects with the fewest
false alarms), `max-false-alarm` (reject at most P of good parts, catching as many defects as possible),
and `good-only` (no defects yet: the conformal (1 - P) quantile of good scores never scored against
themselves, so that unseen good parts are rejected at a rate of at most P on average).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from simsearch.errors import CalibrationError
from simsearch.evaluate.metrics import (  # noqa: F401
    binary_metrics,
    image_auroc,
    pixel_threshold_for_f1,
)

POLICIES = ("f1", "target-recall", "max-false-alarm", "good-only")


@dataclass
class Calibration:
    """A chosen threshold, why it was chosen, and what it gives on the calibration set."""

    value: float
    policy: str
    reason: str
    target: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    low: float = 0.0  # smallest and largest calibration scores: the normalised score's scale
    high: float = 1.0
    pixel_value: float | None = None

    def to_record(self, source: str = "") -> dict[str, Any]:
        """The dict stored in the index manifest."""
        return {"value": self.value, "policy": self.policy, "target": self.target, "reason": self.reason,
                "low": self.low, "high": self.high, "pixel_value": self.pixel_value, "metrics": self.metrics,
                "calibrated_on": source,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive distinct scores, plus one below and one above all of them."""
    distinct = np.unique(np.asarray(scores, dtype=np.float64))
    margin = max(1e-9, 1e-6 * float(np.abs(distinct).max(initial=1.0)))
    return np.concatenate([[distinct[0] - margin], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + margin]])


def _rates(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """True and false positive counts for each threshold (reject when score >= threshold)."""
    defect = np.sort(scores[labels == 1])
    good = np.sort(scores[labels == 0])
    tp = len(defect) - np.searchsorted(defect, thresholds, side="left")
    fp = len(good) - np.searchsorted(good, thresholds, side="left")
    return tp.astype(np.float64), fp.astype(np.float64), float(len(defect)), float(len(good))


def threshold_for_f1(labels: np.ndarray, scores: np.ndarray) -> tuple[float, str]:
    thresholds = candidate_thresholds(scores)
    tp, fp, n_defect, _ = _rates(labels, scores, thresholds)
    f1 = np.where(tp > 0, 2 * tp / (tp + fp + n_defect), 0.0)
    best = int(np.flatnonzero(f1 == f1.max())[-1])  # among ties, the highest threshold: fewest false alarms
    return float(thresholds[best]), f"maximises F1 ({f1[best]:.3f}) on the calibration set"


def threshold_for_recall(labels: np.ndarray, scores: np.ndarray, target: float) -> tuple[float, str]:
    thresholds = candidate_thresholds(scores)
    tp, fp, n_defect, _ = _rates(labels, scores, thresholds)
    meets = np.flatnonzero(tp / n_defect >= target - 1e-12)
    best = int(meets[-1])  # the highest threshold that still catches enough: fewest false alarms
    return float(thresholds[best]), (f"the highest threshold catching >= {target:.0%} of the defects "
                                     f"({int(tp[best])}/{int(n_defect)}), with {int(fp[best])} false alarm(s)")


def threshold_for_false_alarm(labels: np.ndarray, scores: np.ndarray, max_rate: float) -> tuple[float, str]:
    thresholds = candidate_thresholds(scores)
    tp, fp, n_defect, n_good = _rates(labels, scores, thresholds)
    meets = np.flatnonzero(fp / n_good <= max_rate + 1e-12)
    best = int(meets[0])  # the lowest threshold within the false-alarm budget: most defects caught
    return float(thresholds[best]), (f"the lowest threshold rejecting <= {max_rate:.1%} of good images "
                                     f"({int(fp[best])}/{int(n_good)}), catching {int(tp[best])}/{int(n_defect)} defects")


def threshold_from_good(good_scores: np.ndarray, false_alarm_rate: float) -> tuple[float, str]:
    """Conformal quantile: the ceil((n + 1)(1 - P))-th smallest of n held-out good scores."""
    scores = np.sort(np.asarray(good_scores, dtype=np.float64))
    n = len(scores)
    rank = math.ceil((n + 1) * (1 - false_alarm_rate))
    if rank > n:
        raise CalibrationError(f"{n} good scores are too few for a false-alarm rate of {false_alarm_rate:g}: "
                               f"it needs at least {math.ceil(1 / false_alarm_rate) - 1}",
                               hint="add good images or allow a higher {param}", parameter="max_false_alarm")
    upper = scores[rank] if rank < n else scores[-1] + max(1e-9, 1e-6 * abs(scores[-1]))
    value = float((scores[rank - 1] + upper) / 2)
    return value, (f"from {n} good scores never scored against themselves: the conformal "
                   f"{1 - false_alarm_rate:.1%} quantile, for an expected false-alarm rate <= {false_alarm_rate:.1%}")


def calibrate(labels: Sequence[int], scores: Sequence[float], policy: str | None = None,
              target: float | None = None) -> Calibration:
    """Choose a threshold by policy (default: f1 when there are defects, else good-only at 1% false alarms)."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        raise CalibrationError("no scores to calibrate on")
    has_defects, has_good = bool((labels == 1).any()), bool((labels == 0).any())
    policy = policy or ("f1" if has_defects else "good-only")
    if policy not in POLICIES:
        raise CalibrationError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")
    if policy in ("f1", "target-recall") and not has_defects:
        raise CalibrationError(f"policy {policy} needs defect images, and the calibration set has none",
                               hint="use good-only calibration ({param} P) or add defects", parameter="max_false_alarm")
    if policy in ("max-false-alarm", "good-only") and not has_good:
        raise CalibrationError(f"policy {policy} needs good images, and the calibration set has none")
    if policy == "target-recall":
        if target is None or not 0 < target <= 1:
            raise CalibrationError("the target recall must be in (0, 1]", hint="pass {param}, e.g. 0.99", parameter="target_recall")
        value, reason = threshold_for_recall(labels, scores, target)
    elif policy == "max-false-alarm" and has_defects:
        if target is None or not 0 <= target < 1:
            raise CalibrationError("the false-alarm rate must be in [0, 1)", hint="pass {param}, e.g. 0.01", parameter="max_false_alarm")
        value, reason = threshold_for_false_alarm(labels, scores, target)
    elif policy in ("max-false-alarm", "good-only"):
        target = 0.01 if target is None else target
        if not 0 < target < 1:
            raise CalibrationError("a good-only threshold needs a false-alarm rate in (0, 1), e.g. 0.01")
        value, reason = threshold_from_good(scores[labels == 0], target)
        policy = "good-only"
    else:
        value, reason = threshold_for_f1(labels, scores)
    low, high = float(scores.min()), float(max(scores.max(), value))
    if high - low <= 0:
        high = low + 1.0
    return Calibration(value=value, policy=policy, reason=reason, target=target,
                       metrics=binary_metrics(labels, scores, value), low=low, high=high)
