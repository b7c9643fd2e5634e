"""The few-defects rule and the sample-size rule of false-alarm rates (issue 28 items 4, 5, 6, 12)."""

import numpy as np
import pytest

from simsearch.decide.policies import (
    MIN_DEFECTS_FOR_F1,
    calibrate,
    default_policy,
    strictest_false_alarm_rate,
)
from simsearch.errors import CalibrationError


def _set(n_good: int, n_defect: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_good, int), np.ones(n_defect, int)]
    return labels, np.r_[rng.gamma(4, 1, n_good), rng.gamma(4, 1, n_defect) + 2]


def test_no_good_images_is_refused_by_every_policy():
    # all goods were exemplars and were left out: F1 on defects alone said "maximises F1 (1.000)"
    labels, scores = np.ones(12, int), np.linspace(1.0, 2.0, 12)
    for policy, target in ((None, None), ("f1", None), ("target-recall", 0.9)):
        with pytest.raises(CalibrationError, match="needs good images"):
            calibrate(labels, scores, policy, target)


@pytest.mark.parametrize("n_defect", [1, 3, MIN_DEFECTS_FOR_F1 - 1])
def test_few_defects_and_few_goods_use_good_only_at_the_strictest_rate(n_defect):
    # 48 goods and 3-4 defects: the default used F1 on those few defects (54 % false alarms on one fold)
    labels, scores = _set(48, n_defect)
    threshold = calibrate(labels, scores)
    assert threshold.policy == "good-only"
    assert threshold.target == pytest.approx(1 / 49) == pytest.approx(strictest_false_alarm_rate(48))
    assert threshold.reason.startswith(f"{n_defect} defect")
    assert "too few for F1" in threshold.reason and "strictest rate 48 goods allow" in threshold.reason
    assert threshold.value >= scores[labels == 0].max()  # 48 goods vouch for no rate below 1/49: above them all


def test_the_rule_is_one_function_and_states_its_choice():
    assert default_policy(_set(48, 3)[0])[:2] == ("good-only", pytest.approx(1 / 49))
    assert default_policy(_set(200, 3)[0])[:2] == ("good-only", 0.01)
    policy, target, why = default_policy(_set(48, MIN_DEFECTS_FOR_F1)[0])
    assert (policy, target) == ("f1", None) and why.startswith(f"{MIN_DEFECTS_FOR_F1} defects")
    labels, scores = _set(48, MIN_DEFECTS_FOR_F1)
    assert calibrate(labels, scores).reason.startswith(why)
    with pytest.raises(CalibrationError, match="needs good images"):
        default_policy(np.ones(4, int))


@pytest.mark.parametrize("policy", ["max-false-alarm", "good-only"])
@pytest.mark.parametrize("n_defect", [0, 10])
def test_a_false_alarm_rate_the_goods_cannot_vouch_for_is_raised_and_said(policy, n_defect):
    # `--max-false-alarm 0.01` on 48 goods: accepted as "0/48" with defects, refused without them
    labels, scores = _set(48, n_defect)
    threshold = calibrate(labels, scores, policy, 0.01)
    assert threshold.target == pytest.approx(1 / 49)
    assert "0.01 asked" in threshold.reason and "99 are needed" in threshold.reason
    assert threshold.value >= scores[labels == 0].max()
    plenty = _set(200, n_defect)
    assert "asked" not in calibrate(*plenty, policy, 0.01).reason
    assert calibrate(*plenty, policy, 0.01).target == 0.01


def test_out_of_range_rates_are_still_errors():
    labels, scores = _set(48, 10)
    for policy, target in (("max-false-alarm", 1.5), ("good-only", -0.1), ("max-false-alarm", None)):
        with pytest.raises(CalibrationError):
            calibrate(labels, scores, policy, target)


@pytest.mark.parametrize("n_good, n_defect", [(48, 3), (48, 0), (200, 2), (48, 6), (30, 4)])
def test_compare_and_calibrate_follow_the_same_rule(n_good, n_defect):
    # compare used good-only where calibrate used F1 on the same 3-4 defects
    from simsearch.baselines.similarity import place_threshold

    labels, scores = _set(n_good, n_defect, seed=n_good + n_defect)
    stored, chosen = place_threshold(labels, scores), calibrate(labels, scores)
    assert (stored.policy, stored.target, stored.value) == (chosen.policy, chosen.target, chosen.value)
