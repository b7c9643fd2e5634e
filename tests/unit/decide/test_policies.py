import numpy as np
import pytest

from simsearch.decide.policies import calibrate, threshold_from_good
from simsearch.errors import CalibrationError
from simsearch.evaluate.metrics import binary_metrics


def _separable():
    # goods 0..9, defects 20..29: every threshold in (9, 20) is perfect; midpoint candidates give 14.5
    labels = np.array([0] * 10 + [1] * 10)
    scores = np.concatenate([np.arange(10.0), np.arange(20.0, 30.0)])
    return labels, scores


def test_f1_policy_finds_the_perfect_threshold():
    labels, scores = _separable()
    result = calibrate(labels, scores)
    assert result.policy == "f1" and result.value == pytest.approx(14.5)
    assert result.metrics["f1"] == 1.0 and result.metrics["confusion"] == [[10, 0], [0, 10]]


def test_f1_policy_with_overlap_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 200 + [1] * 40)
    scores = np.concatenate([rng.normal(0, 1, 200), rng.normal(2, 1, 40)])
    result = calibrate(labels, scores, "f1")
    best = max(binary_metrics(labels, scores, t)["f1"] for t in np.unique(scores))
    assert result.metrics["f1"] == pytest.approx(best)


def test_target_recall_takes_fewest_false_alarms():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([1.0, 2.0, 3.0, 6.0, 4.0, 5.0, 7.0, 8.0])
    result = calibrate(labels, scores, "target-recall", 0.75)
    assert result.metrics["recall"] >= 0.75 and result.value == pytest.approx(4.5)  # 5, 7, 8 caught, 6 is a false alarm
    assert calibrate(labels, scores, "target-recall", 1.0).value == pytest.approx(3.5)


def test_max_false_alarm_catches_most_defects_within_budget():
    labels = np.array([0] * 10 + [1] * 4)
    scores = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9.5, 9, 10, 11, 3.5])
    result = calibrate(labels, scores, "max-false-alarm", 0.1)
    assert result.metrics["false_alarm_rate"] <= 0.1 and result.metrics["recall"] == 0.75


def test_good_only_threshold_false_alarm_rate_on_unseen_goods():
    rng = np.random.default_rng(1)
    rates = []
    for _ in range(200):
        value, _ = threshold_from_good(rng.gamma(4, 1, 300), 0.05)
        rates.append((rng.gamma(4, 1, 2000) >= value).mean())
    assert 0.035 < np.mean(rates) <= 0.06  # conformal: about the rate asked for, not far below


def test_impossible_policies_are_errors():
    with pytest.raises(CalibrationError, match="needs defect images"):
        calibrate(np.zeros(5, int), np.arange(5.0), "target-recall", 0.9)
    with pytest.raises(CalibrationError, match="too few"):
        threshold_from_good(np.arange(20.0), 0.01)


def test_normalised_score_puts_threshold_at_half():
    from simsearch.decide.threshold import normalise_scores
    labels, scores = _separable()
    record = calibrate(labels, scores).to_record()
    normalised = normalise_scores([record["value"], scores.min(), 1e9], record)
    assert normalised.tolist() == [0.5, pytest.approx(0.5 - (14.5 - 0) / 29), 1.0]


def test_normalised_score_is_informative_after_good_only_calibration():
    # the min-max rule put every good at 0.000 and every defect at 1.000 here (the span was the goods' only)
    goods = np.linspace(1.0, 2.0, 200)
    threshold = calibrate(np.zeros(200, int), goods, "good-only", 0.01)
    normalised = threshold.normalise([goods.min(), np.median(goods), threshold.value, 1.3 * threshold.value,
                                      3 * threshold.value])
    assert normalised[0] == pytest.approx(0.1) and 0.1 < normalised[1] < 0.5
    assert normalised[2] == pytest.approx(0.5) and 0.5 < normalised[3] < normalised[4] < 0.999


def test_few_defects_leave_the_default_threshold_to_the_good_scores():
    from simsearch.decide.policies import MIN_DEFECTS_FOR_F1

    rng = np.random.default_rng(0)
    good = rng.normal(0.0, 1.0, 200)
    few = np.r_[good, rng.normal(3.0, 1.0, MIN_DEFECTS_FOR_F1 - 1)]
    labels = np.r_[np.zeros(200, int), np.ones(MIN_DEFECTS_FOR_F1 - 1, int)]
    chosen = calibrate(labels, few)
    assert chosen.policy == "good-only" and "ask for policy f1" in chosen.reason
    assert calibrate(labels, few, "f1").policy == "f1"  # asked for: honoured
    enough = np.r_[good, rng.normal(3.0, 1.0, MIN_DEFECTS_FOR_F1)]
    assert calibrate(np.r_[np.zeros(200, int), np.ones(MIN_DEFECTS_FOR_F1, int)], enough).policy == "f1"
    # too few goods for a 1% quantile: still good-only (at the strictest rate 20 goods allow), never F1 on 2
    few_goods = calibrate(np.r_[np.zeros(20, int), np.ones(2, int)], np.r_[good[:20], [5.0, 6.0]])
    assert few_goods.policy == "good-only" and few_goods.target == pytest.approx(1 / 21)
