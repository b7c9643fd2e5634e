import json
import math

import numpy as np
import pytest

from simsearch.decide.threshold import RECORD_KEYS, Threshold, as_threshold, probability_threshold
from simsearch.errors import IndexProblem


def _threshold() -> Threshold:
    return Threshold(value=2.0, low=1.0, high=5.0, pixel_value=3.5, policy="f1", target=None, reason="why",
                     metrics={"f1": 1.0, "confusion": [[3, 0], [0, 2]]}, calibrated_on="some/folder fold 1/2",
                     created="2024-01-01T00:00:00+00:00")


def test_record_round_trip_through_json():
    threshold = _threshold()
    record = json.loads(json.dumps(threshold.to_record()))
    assert tuple(record) == RECORD_KEYS
    assert Threshold.from_record(record) == threshold


def test_a_record_with_only_the_scale_is_enough():
    threshold = Threshold.from_record({"value": 1, "low": 0, "high": 2})
    assert (threshold.value, threshold.policy, threshold.pixel_value, threshold.metrics) == (1.0, "fixed", None, {})


@pytest.mark.parametrize("field, bad", [("value", "abc"), ("value", None), ("low", True), ("high", [1]),
                                        ("pixel_value", "x"), ("target", {}), ("policy", 3), ("metrics", [1, 2]),
                                        ("reason", 1.5), ("value", float("nan"))])
def test_a_malformed_record_is_refused_naming_the_field(field, bad):
    record = {**_threshold().to_record(), field: bad}
    with pytest.raises(IndexProblem, match=repr(field)):
        Threshold.from_record(record)


def test_a_record_that_is_not_a_mapping_is_refused():
    with pytest.raises(IndexProblem):
        Threshold.from_record([1, 2, 3])


def test_normalise_is_anomalous_and_pixel():
    threshold = _threshold()  # value 2, scale 1..5: span 4
    normalised = threshold.normalise([2.0, 3.0, 100.0, -100.0, 1.0, 1.5])  # value 2, low 1
    gain = math.log(9) / math.log(2)
    assert normalised.tolist() == [0.5, pytest.approx(1 / (1 + (2 / 3) ** gain)), pytest.approx(1.0, abs=1e-4), 0.0,
                                   pytest.approx(0.1), pytest.approx(1 / (1 + (2 / 1.5) ** gain))]
    assert threshold.normalise([3.5], value=threshold.pixel).tolist() == [0.5]
    assert threshold.is_anomalous([1.9, 2.0, 2.1]).tolist() == [False, True, True]
    assert threshold.pixel == 3.5 and Threshold(value=2.0).pixel == 2.0


def test_as_threshold_and_probability_threshold():
    assert as_threshold(None) is None and as_threshold({}) is None
    threshold = _threshold()
    assert as_threshold(threshold) is threshold and as_threshold(threshold.to_record()) == threshold
    fixed = probability_threshold()
    assert (fixed.value, fixed.low, fixed.high, fixed.policy) == (0.5, 0.0, 1.0, "fixed")
    assert np.array_equal(fixed.is_anomalous([0.49, 0.5]), [False, True])
