"""Every registered threshold policy through the same checks, and the registry itself."""

import json

import numpy as np
import pytest

from simsearch.decide import policies
from simsearch.decide.policies import (
    ThresholdPolicy,
    calibrate,
    get_policy,
    policy_names,
    register_policy,
    threshold_for_f1,
)
from simsearch.decide.threshold import Threshold
from simsearch.errors import CalibrationError, UnknownComponentError


def _scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array([0] * 120 + [1] * 30)
    return labels, np.concatenate([rng.gamma(4, 1, 120), rng.gamma(4, 1, 30) + 3])


def _target(policy: ThresholdPolicy) -> float | None:
    """The policy's default target, or 0.5 (a valid recall and false-alarm rate) when it needs one."""
    try:
        return policy.check_target(None)
    except CalibrationError:
        return 0.5


@pytest.mark.parametrize("name", policy_names())
@pytest.mark.parametrize("seed", [0, 1])
def test_every_policy_keeps_the_contract(name, seed):
    labels, scores = _scores(seed)
    policy = get_policy(name)
    assert policy.name == name and (policy.needs_defects or policy.needs_good)
    threshold = calibrate(labels, scores, name, _target(policy))
    assert isinstance(threshold, Threshold) and threshold.policy == name
    margin = 1e-6 * np.abs(scores).max() + 1e-9  # just outside the scores: reject all, or pass all
    assert scores.min() - margin <= threshold.value <= scores.max() + margin
    assert threshold.reason.strip() and threshold.low <= threshold.value <= threshold.high
    record = json.loads(json.dumps(threshold.to_record()))
    assert Threshold.from_record(record) == threshold
    (tn, fp), (fn, tp) = threshold.metrics["confusion"]
    rejected = threshold.is_anomalous(scores)
    assert (tp, fp) == (int(rejected[labels == 1].sum()), int(rejected[labels == 0].sum()))
    assert threshold.normalise([threshold.value]).tolist() == [0.5]


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_refuses_a_set_without_the_class_it_needs(name):
    policy = get_policy(name)
    for label, needed in ((0, policy.needs_defects), (1, policy.needs_good)):
        if needed and not (label == 0 and policy.without_defects):
            with pytest.raises(CalibrationError, match="needs"):
                calibrate(np.full(30, label), np.arange(30.0), name, _target(policy))


def test_unknown_policy_names_the_parameter():
    with pytest.raises(UnknownComponentError) as caught:
        get_policy("nope")
    assert caught.value.parameter == "policy" and "f1" in caught.value.render()


def test_a_new_policy_is_one_class_and_its_registry_entry(monkeypatch):
    monkeypatch.setattr(policies, "_POLICIES", dict(policies._POLICIES))

    @register_policy
    class Median(ThresholdPolicy):
        name = "median"
        needs_good = True

        def choose(self, labels, scores, target):
            return float(np.median(scores)), "the median score"

    labels, scores = _scores()
    threshold = calibrate(labels, scores, "median")
    assert "median" in policy_names() and threshold.value == pytest.approx(np.median(scores))


def test_a_target_given_alone_picks_the_policy_that_declares_it(monkeypatch):
    both = {"target_recall": None, "max_false_alarm": None}
    assert policies.policy_for_target(None, both) == (None, None)
    assert policies.policy_for_target("f1", both) == ("f1", None)
    assert policies.policy_for_target(None, {**both, "target_recall": 0.9}) == ("target-recall", 0.9)
    assert policies.policy_for_target(None, {**both, "max_false_alarm": 0.05}) == ("max-false-alarm", 0.05)
    assert policies.policy_for_target("good-only", {**both, "max_false_alarm": 0.05}) == ("good-only", 0.05)
    monkeypatch.setattr(policies, "_POLICIES", dict(policies._POLICIES))

    @register_policy
    class AtLeast(ThresholdPolicy):  # a new target is one class: the CLI needs no branch for it
        name = "at-least"
        target_name = "minimum"

        def choose(self, labels, scores, target):
            return float(target), "the minimum given"

    assert policies.policy_for_target(None, {"minimum": 2.0}) == ("at-least", 2.0)


def test_compare_and_calibrate_choose_the_same_f1_threshold():
    from simsearch.baselines.similarity import place_threshold

    rng = np.random.default_rng(5)
    labels = np.array([0] * 80 + [1] * 6)
    scores = np.where(labels == 1, rng.gamma(4, 1, len(labels)) + 3, rng.gamma(4, 1, len(labels)))
    stored = place_threshold(labels, scores)
    chosen = calibrate(labels, scores)
    assert stored.policy == "f1" and stored.value == chosen.value
    assert stored.value == threshold_for_f1(labels, scores)[0]
    good_only = place_threshold(labels[:80], scores[:80])  # no validation defects: good-only, never refused
    assert good_only.policy == "good-only" and good_only.value >= np.sort(scores[:80])[-2]
