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
from typing import ClassVar, Mapping, Sequence

import numpy as np

from simsearch.decide.threshold import Threshold
from simsearch.errors import CalibrationError, UnknownComponentError
from simsearch.evaluate.metrics import binary_metrics

# Below this many defects the F1-best threshold sits wherever the one or two defect scores fall (on ELPV's
# learning curve it gave lower F1 at 1-10 defects than the good-only quantile at 0): the default policy and
# compare's validation thresholds use the good scores instead.
MIN_DEFECTS_FOR_F1 = 5

_POLICIES: dict[str, type["ThresholdPolicy"]] = {}


class ThresholdPolicy:
    """How to place a threshold on labelled scores (reject when score >= threshold).

    `needs_defects` / `needs_good`: the classes the calibration set must hold; `parameter` names the library
    parameter that carries the target (for hints); `target_name`: the target that, given alone, asks for this
    policy (`policy_for_target`); `without_defects`: the policy to use instead when the set has no defects
    (None: refuse)."""

    name: ClassVar[str] = ""
    needs_defects: ClassVar[bool] = False
    needs_good: ClassVar[bool] = False
    parameter: ClassVar[str | None] = None
    target_name: ClassVar[str | None] = None
    without_defects: ClassVar[str | None] = None
    # The target is a false-alarm rate read off the good scores: n goods cannot show one below 1 / (n + 1)
    # (the sample-size rule every such policy shares: see `rate_the_goods_allow`).
    target_is_false_alarm_rate: ClassVar[bool] = False

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


def policy_for_target(policy: str | None, targets: Mapping[str, float | None]) -> tuple[str | None, float | None]:
    """The policy and target to calibrate with, from a policy name (None: the default) and targets by name
    (None: not given; give one at most), e.g. (None, {"target_recall": 0.99}) -> ("target-recall", 0.99): a
    target given alone picks the policy that declares it as its `target_name`."""
    for name, target in targets.items():
        if target is not None:
            return policy or next(cls.name for cls in _POLICIES.values() if cls.target_name == name), target
    return policy, None


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
    target_name = "target_recall"

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
    target_name = "max_false_alarm"
    target_is_false_alarm_rate = True
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
    target_is_false_alarm_rate = True
    default_target = 0.01

    def check_target(self, target: float | None) -> float | None:
        target = self.default_target if target is None else target
        return self._refuse_unless(0 < target < 1, target, "a false-alarm rate in (0, 1)", "0.01")

    def choose(self, labels: np.ndarray, scores: np.ndarray, target: float | None) -> tuple[float, str]:
        return threshold_from_good(scores[labels == 0], target)


def enough_defects_for_f1(labels: np.ndarray) -> bool:
    """Whether a labelled set holds enough defects for the F1-best threshold to mean something."""
    return int((np.asarray(labels) == 1).sum()) >= MIN_DEFECTS_FOR_F1


def strictest_false_alarm_rate(n_good: int) -> float:
    """The lowest false-alarm rate n good scores can vouch for: 1 / (n + 1) (the conformal quantile's rank
    ceil((n + 1)(1 - P)) must not pass n; an empirical 0/n says no more than that either)."""
    return 1.0 / (n_good + 1) if n_good > 0 else 1.0


def goods_needed(false_alarm_rate: float) -> float:
    """How many good scores a false-alarm rate needs (99 for 1%; a rate of 0: no number of them)."""
    return math.inf if false_alarm_rate <= 0 else max(1, math.ceil(1 / false_alarm_rate - 1e-9) - 1)


def good_only_fits(labels: np.ndarray, false_alarm_rate: float = GoodOnly.default_target) -> bool:
    """Whether the set's good scores are enough for the good-only quantile at this false-alarm rate."""
    return int((np.asarray(labels) == 0).sum()) >= goods_needed(false_alarm_rate)


def rate_the_goods_allow(n_good: int, asked: float | None, default: float | None) -> tuple[float, str]:
    """The sample-size rule of every false-alarm-rate policy: the rate asked for (or the default), raised to
    the strictest rate n good scores allow where it is below it, and a note saying so ('' when unchanged)."""
    rate = default if asked is None else asked
    strictest = strictest_false_alarm_rate(n_good)
    if rate is not None and rate >= strictest - 1e-12:
        return rate, ""
    if asked is None:
        return strictest, f"at the strictest rate {n_good} goods allow ({strictest:.1%})"
    needed = "no number of them vouches for 0" if asked <= 0 else f"{goods_needed(asked)} are needed for {asked:g}"
    return strictest, (f"{asked:g} asked, but {n_good} good images vouch for no rate below {strictest:.3g} "
                       f"({needed}): the strictest rate {n_good} goods allow was used")


def default_policy(labels: np.ndarray) -> tuple[str, float | None, str]:
    """THE few-defects rule (calibrate and compare): the F1-best threshold with MIN_DEFECTS_FOR_F1 or more
    defects; with fewer (or none), good-only at 1% false alarms, or at the strictest rate the goods allow
    where they are under 99. Returns the policy, its target and why, e.g. '3 defects: too few for F1 (it
    needs 5); good-only at the strictest rate 48 goods allow (2.0%)'. No good images: CalibrationError."""
    labels = np.asarray(labels, dtype=int)
    n_defect, n_good = int((labels == 1).sum()), int((labels == 0).sum())
    if n_good == 0:
        _refuse_without_good(n_defect)
    if n_defect >= MIN_DEFECTS_FOR_F1:
        return "f1", None, f"{n_defect} defects: enough for F1 (it needs {MIN_DEFECTS_FOR_F1})"
    rate, raised = rate_the_goods_allow(n_good, None, GoodOnly.default_target)
    why = "no defects" if n_defect == 0 else \
        f"{n_defect} defect{'s' if n_defect != 1 else ''}: too few for F1 (it needs {MIN_DEFECTS_FOR_F1}; ask for " \
        "policy f1 to use them anyway)"
    return "good-only", rate, f"{why}; good-only " + (raised or f"at {rate:.1%} false alarms")


def _refuse_without_good(n_defect: int) -> None:
    raise CalibrationError(f"a threshold needs good images, and the calibration set holds none ({n_defect} "
                           "defect(s) only): placed on defects alone it rejects good parts at an unknown rate",
                           hint="add good images that are not exemplars of the index (exemplars are left out "
                                "of calibration)")


def threshold_for_f1(labels: np.ndarray, scores: np.ndarray) -> tuple[float, str]:
    """The F1 policy's choice: one home for the F1-best threshold (calibrate and compare both use it)."""
    return F1().choose(np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64))


def threshold_from_good(good_scores: np.ndarray, false_alarm_rate: float) -> tuple[float, str]:
    """Conformal quantile: the ceil((n + 1)(1 - P))-th smallest of n held-out good scores."""
    scores = np.sort(np.asarray(good_scores, dtype=np.float64))
    n = len(scores)
    rank = math.ceil((n + 1) * (1 - false_alarm_rate) - 1e-9)  # 1e-9: P = 1 / (n + 1) gives rank n exactly
    if rank > n:
        raise CalibrationError(f"{n} good scores are too few for a false-alarm rate of {false_alarm_rate:g}: "
                               f"it needs at least {goods_needed(false_alarm_rate)}",
                               hint="add good images or allow a higher {param}", parameter="max_false_alarm")
    upper = scores[rank] if rank < n else scores[-1] + max(1e-9, 1e-6 * abs(scores[-1]))
    value = float((scores[rank - 1] + upper) / 2)
    return value, (f"from {n} good scores never scored against themselves: the conformal "
                   f"{1 - false_alarm_rate:.1%} quantile, for an expected false-alarm rate <= {false_alarm_rate:.1%}")


def calibrate(labels: Sequence[int], scores: Sequence[float], policy: str | ThresholdPolicy | None = None,
              target: float | None = None) -> Threshold:
    """Choose a threshold by policy (default: `default_policy`, the few-defects rule). Every policy needs good
    images; a false-alarm rate below what the goods can vouch for is raised to it, and the reason says so."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        raise CalibrationError("no scores to calibrate on")
    has_defects, n_good = bool((labels == 1).any()), int((labels == 0).sum())
    if n_good == 0:  # F1 on defects alone "maximises F1 (1.000)" and rejects good parts at any rate
        _refuse_without_good(int((labels == 1).sum()))
    note = ""
    if policy is None:
        policy, target, note = default_policy(labels)
    chosen = get_policy(policy) if isinstance(policy, str) else policy
    if not has_defects and chosen.without_defects:
        chosen = get_policy(chosen.without_defects)
    if chosen.needs_defects and not has_defects:
        raise CalibrationError(f"policy {chosen.name} needs defect images, and the calibration set has none",
                               hint="use good-only calibration ({param}) or add defects",
                               parameter="max_false_alarm")
    if chosen.target_is_false_alarm_rate and target is not None:
        chosen.check_target(target)  # out of range is an error before any raising
    if chosen.target_is_false_alarm_rate:
        default = chosen.check_target(None) if target is None else None
        target, raised = rate_the_goods_allow(n_good, target, default)
        if raised and not note:
            note = raised
    target = chosen.check_target(target)
    value, reason = chosen.choose(labels, scores, target)
    if note:
        reason = f"{note}: {reason}"
    low, high = float(scores.min()), float(max(scores.max(), value))
    if high - low <= 0:
        high = low + 1.0
    return Threshold(value=value, low=low, high=high, policy=chosen.name, target=target, reason=reason,
                     metrics=binary_metrics(labels, scores, value),
                     created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
