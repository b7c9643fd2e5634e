"""Scores of labelled images -> a Threshold, chosen by a stated policy, with the metrics it gives.

Policies: `f1` (the F1-best threshold), `target-recall` (catch at least R of the defects with the fewest
false alarms), `max-false-alarm` (reject at most P of good parts, catching as many defects as possible),
and `good-only` (no defects yet: the conformal (1 - P) quantile of good scores never scored against
themselves, so that unseen good parts are rejected at a rate of at most P on average).

A new policy is one `ThresholdPolicy` subclass under `@register_policy`.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import ClassVar, Sequence

import numpy as np

from simsearch.decide.threshold import Threshold
from simsearch.errors import CalibrationError, UnknownComponentError
from simsearch.evaluate.metrics import binary_metrics, image_auroc, pixel_threshold_for_f1  # noqa: F401  (re-exported: callers and tests import them from here)

# Below this many defects the F1-best threshold sits wherever the one or two defect scores fall (on ELPV's
# learning curve it gave lower F1 at 1-10 defects than the good-only quantile at 0): the default policy and
# compare's validation thresholds use the good scores instead.
MIN_DEFECTS_FOR_F1 = 5

Calibration = Threshold  # the old name of a calibration's result, kept for one release

_POLICIES: dict[str, type["ThresholdPolicy"]] = {}


class ThresholdPolicy:
    """How to place a threshold on labelled scores (reject when score >= threshold).

    `needs_defects` / `needs_good`: the classes the calibration set must hold; `parameter` names the library
    parameter that carries the target (for hints); `without_defects`: the policy to use instead when the set
    has no defects (None: refuse)."""

    name: ClassVar[str] = ""
    needs_defects: ClassVar[bool] = False
    needs_good: ClassVar[bool] = False
    parameter: ClassVar[str | None] = None
    without_defects: ClassVar[str | None] = None

    def check_target(self, target: float | None) -> float | None:
        """The target to use (a default filled in), or CalibrationError when it is out of range."""
        return target

    def _refuse_unless(self, within: bool, target: float | None, what: str, example: str) -> float | None:
        if not within:
            raise CalibrationError(f"policy {self.name} needs {what}, not {target}",
                                   hint=f"give {{param}}, e.g. {example}", parameter=self.parameter)
        return target

    def choose(self, labels: np.ndarray, scores: np.ndarray, target: float | None) -> tuple[float, str]:
        """The threshold value and a one-line reason for it."""
        raise NotImplementedError


def register_policy(cls: type[ThresholdPolicy]) -> type[ThresholdPolicy]:
    """Class decorator: make a policy available to `calibrate` and `get_policy` by its name."""
    _POLICIES[cls.name] = cls
    return cls


def policy_names() -> list[str]:
    """Names of the registered policies, in registration order."""
    return list(_POLICIES)


def get_policy(name: str) -> ThresholdPolicy:
    """A registered policy by name; UnknownComponentError for an unknown one."""
    if name not in _POLICIES:
        raise UnknownComponentError(f"unknown threshold policy {name!r}", hint=f"{{param}} is one of "
                                    f"{', '.join(_POLICIES)}", parameter="policy")
    return _POLICIES[name]()


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


@register_policy
class F1(ThresholdPolicy):
    """The F1-best threshold (defects positive); among ties the highest, for the fewest false alarms."""

    name = "f1"
    needs_defects = True

    def choose(self, labels: np.ndarray, scores: np.ndarray, target: float | None = None) -> tuple[float, str]:
        thresholds = candidate_thresholds(scores)
        tp, fp, n_defect, _ = _rates(labels, scores, thresholds)
        f1 = np.where(tp > 0, 2 * tp / (tp + fp + n_defect), 0.0)
        best = int(np.flatnonzero(f1 == f1.max())[-1])
        return float(thresholds[best]), f"maximises F1 ({f1[best]:.3f}) on the calibration set"


@register_policy
class TargetRecall(ThresholdPolicy):
    """The highest threshold that still catches at least `target` of the defects: fewest false alarms."""

    name = "target-recall"
    needs_defects = True
    parameter = "target_recall"

    def check_target(self, target: float | None) -> float | None:
        return self._refuse_unless(target is not None and 0 < target <= 1, target, "a recall in (0, 1]", "0.99")

    def choose(self, labels: np.ndarray, scores: np.ndarray, target: float | None) -> tuple[float, str]:
        thresholds = candidate_thresholds(scores)
        tp, fp, n_defect, _ = _rates(labels, scores, thresholds)
        best = int(np.flatnonzero(tp / n_defect >= target - 1e-12)[-1])
        return float(thresholds[best]), (f"the highest threshold catching >= {target:.0%} of the defects "
                                         f"({int(tp[best])}/{int(n_defect)}), with {int(fp[best])} false alarm(s)")


@register_policy
class MaxFalseAlarm(ThresholdPolicy):
    """The lowest threshold rejecting at most `target` of the good images: most defects caught."""

    name = "max-false-alarm"
    needs_good = True
    parameter = "max_false_alarm"
    without_defects = "good-only"  # no defects to catch: the conformal quantile of the goods instead

    def check_target(self, target: float | None) -> float | None:
        return self._refuse_unless(target is not None and 0 <= target < 1, target, "a false-alarm rate in [0, 1)",
                                   "0.01")

    def choose(self, labels: np.ndarray, scores: np.ndarray, target: float | None) -> tuple[float, str]:
        thresholds = candidate_thresholds(scores)
        tp, fp, n_defect, n_good = _rates(labels, scores, thresholds)
        best = int(np.flatnonzero(fp / n_good <= target + 1e-12)[0])
        return float(thresholds[best]), (f"the lowest threshold rejecting <= {target:.1%} of good images "
                                         f"({int(fp[best])}/{int(n_good)}), catching {int(tp[best])}/{int(n_defect)} "
                                         "defects")


@register_policy
class GoodOnly(ThresholdPolicy):
    """The conformal (1 - target) quantile of good scores never scored against themselves (default 1%)."""

    name = "good-only"
    needs_good = True
    parameter = "max_false_alarm"
    default_target = 0.01

    def check_target(self, target: float | None) -> float | None:
        target = self.default_target if target is None else target
        return self._refuse_unless(0 < target < 1, target, "a false-alarm rate in (0, 1)", "0.01")

    def choose(self, labels: np.ndarray, scores: np.ndarray, target: float | None) -> tuple[float, str]:
        return threshold_from_good(scores[labels == 0], target)


def enough_defects_for_f1(labels: np.ndarray) -> bool:
    """Whether a labelled set holds enough defects for the F1-best threshold to mean something."""
    return int((np.asarray(labels) == 1).sum()) >= MIN_DEFECTS_FOR_F1


def good_only_fits(labels: np.ndarray, false_alarm_rate: float = GoodOnly.default_target) -> bool:
    """Whether the set's good scores are enough for the good-only quantile at this false-alarm rate."""
    return int((np.asarray(labels) == 0).sum()) >= math.ceil(1 / false_alarm_rate) - 1


def threshold_for_f1(labels: np.ndarray, scores: np.ndarray) -> tuple[float, str]:
    """The F1 policy's choice: one home for the F1-best threshold (calibrate and compare both use it)."""
    return F1().choose(np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64))


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


def calibrate(labels: Sequence[int], scores: Sequence[float], policy: str | ThresholdPolicy | None = None,
              target: float | None = None) -> Threshold:
    """Choose a threshold by policy (default: f1 when there are defects, else good-only at 1% false alarms)."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        raise CalibrationError("no scores to calibrate on")
    has_defects, has_good = bool((labels == 1).any()), bool((labels == 0).any())
    few_defects = has_defects and not enough_defects_for_f1(labels)
    if policy is None:
        policy = "f1" if has_defects and not (few_defects and good_only_fits(labels)) else "good-only"
    chosen = get_policy(policy) if isinstance(policy, str) else policy
    if not has_defects and chosen.without_defects:
        chosen = get_policy(chosen.without_defects)
    if chosen.needs_defects and not has_defects:
        raise CalibrationError(f"policy {chosen.name} needs defect images, and the calibration set has none",
                               hint="use good-only calibration ({param}) or add defects",
                               parameter="max_false_alarm")
    if chosen.needs_good and not has_good:
        raise CalibrationError(f"policy {chosen.name} needs good images, and the calibration set has none",
                               hint="add good images")
    target = chosen.check_target(target)
    value, reason = chosen.choose(labels, scores, target)
    if few_defects and chosen.name == "good-only":
        reason += (f" (the set holds {int((labels == 1).sum())} defects: fewer than {MIN_DEFECTS_FOR_F1} place "
                   f"an F1 threshold by chance; ask for policy f1 to use them anyway)")
    low, high = float(scores.min()), float(max(scores.max(), value))
    if high - low <= 0:
        high = low + 1.0
    return Threshold(value=value, low=low, high=high, policy=chosen.name, target=target, reason=reason,
                     metrics=binary_metrics(labels, scores, value),
                     created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
