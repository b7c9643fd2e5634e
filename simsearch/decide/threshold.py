"""Scores -> verdict: a typed threshold, and the normalised score on which it sits at 0.5.

`Threshold` is saved as the JSON record the index manifest holds (`to_record` / `from_record`). This module
imports only numpy and simsearch.errors, so reading a threshold loads neither torch nor FAISS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from simsearch.errors import IndexProblem

RECORD_KEYS = ("value", "policy", "target", "reason", "low", "high", "pixel_value", "metrics", "calibrated_on",
               "created", "generation")


@dataclass
class Threshold:
    """A reject threshold on raw scores (reject when score >= value), its scale, and why it was chosen."""

    value: float
    low: float = 0.0  # smallest and largest calibration scores: the normalised score's scale
    high: float = 1.0
    pixel_value: float | None = None  # anomaly-map threshold for boxes; None: the image threshold
    policy: str = "fixed"
    target: float | None = None
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    calibrated_on: str = ""
    created: str = ""
    generation: int | None = None  # the index generation whose save stored it; None: not known (older records)

    @property
    def pixel(self) -> float:
        """The anomaly-map threshold: pixel_value, or the image threshold when none was calibrated."""
        return float(self.pixel_value) if self.pixel_value is not None else float(self.value)

    def gain(self, value: float | None = None) -> float | None:
        """The steepness g of the ratio rule: ln 9 / ln(t / low), so that the lowest calibration score maps to
        0.1; None where the rule does not apply (scores not positive, or low not below t)."""
        centre, low = float(self.value if value is None else value), float(self.low)
        return math.log(9.0) / math.log(centre / low) if 0.0 < low < centre else None

    def normalise(self, scores: np.ndarray | Sequence[float], value: float | None = None) -> np.ndarray:
        """Raw scores -> [0, 1] with the threshold t (or `value`) at 0.5, by the ratio rule
        s -> 1 / (1 + (t / s)^g) with g = gain(): the lowest calibration score maps to 0.1, scores twice the
        threshold to 1 / (1 + 2^-g), so the number stays informative on both sides of 0.5 even after a
        good-only calibration (whose scores span only the good parts). Where scores are not positive
        distances (low <= 0: e.g. a defect probability), the linear rule 0.5 + (s - t) / (high - low)."""
        scores = np.asarray(scores, dtype=np.float64)
        centre = float(self.value if value is None else value)
        gain = self.gain(centre)
        if gain is None:
            span = max(float(self.high) - float(self.low), 1e-12)
            return np.clip(0.5 + (scores - centre) / span, 0.0, 1.0)
        with np.errstate(divide="ignore", over="ignore"):
            ratio = np.where(scores > 0, centre / np.maximum(scores, 1e-300), np.inf)
            return np.clip(1.0 / (1.0 + ratio ** gain), 0.0, 1.0)

    def is_anomalous(self, scores: np.ndarray | Sequence[float]) -> np.ndarray:
        """True where the raw score is at or above the threshold."""
        return np.asarray(scores, dtype=np.float64) >= float(self.value)

    def verdict(self, score: float) -> tuple[float, bool]:
        """One raw score -> (normalised score, is anomaly): the one way every Scorer fills a ScoreResult, so that
        the threshold sits at normalised 0.5 whatever the scorer (a probability threshold of 0.46 included)."""
        return float(self.normalise([score])[0]), bool(self.is_anomalous([score])[0])

    def to_record(self) -> dict[str, Any]:
        """The JSON dict stored in the index manifest."""
        return {"value": self.value, "policy": self.policy, "target": self.target, "reason": self.reason,
                "low": self.low, "high": self.high, "pixel_value": self.pixel_value, "metrics": self.metrics,
                "calibrated_on": self.calibrated_on, "created": self.created, "generation": self.generation}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Threshold":
        """A Threshold from a manifest record; a malformed record raises IndexProblem naming the field."""
        if not isinstance(record, Mapping):
            raise IndexProblem(f"the stored threshold is a {type(record).__name__}, not a record",
                               hint="calibrate the index again")
        return cls(value=_number(record, "value"), low=_number(record, "low"), high=_number(record, "high"),
                   pixel_value=_number(record, "pixel_value", optional=True),
                   policy=_text(record, "policy", "fixed"), target=_number(record, "target", optional=True),
                   reason=_text(record, "reason"), metrics=_mapping(record, "metrics"),
                   calibrated_on=_text(record, "calibrated_on"), created=_text(record, "created"),
                   generation=_whole(record, "generation"))


def _bad(name: str, what: str, value: Any) -> IndexProblem:
    return IndexProblem(f"the stored threshold's field {name!r} should be {what}, not {value!r}",
                        hint="calibrate the index again")


def _number(record: Mapping[str, Any], name: str, optional: bool = False) -> Any:
    value = record.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _bad(name, "a number" + (" or null" if optional else ""), value)
    return float(value)


def _whole(record: Mapping[str, Any], name: str) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(name, "a whole number or null", value)
    return value


def _text(record: Mapping[str, Any], name: str, default: str = "") -> str:
    value = record.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad(name, "text", value)
    return value


def _mapping(record: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(name, "a mapping", value)
    return dict(value)


def as_threshold(threshold: Threshold | Mapping[str, Any] | None) -> Threshold | None:
    """A Threshold from a Threshold, a manifest record, or None (None and an empty record give None)."""
    if threshold is None or isinstance(threshold, Threshold):
        return threshold
    return Threshold.from_record(threshold) if threshold else None


def normalise_scores(scores: np.ndarray | Sequence[float], threshold: Threshold | Mapping[str, Any]) -> np.ndarray:
    """Threshold.normalise for a Threshold or its record."""
    return as_threshold(threshold).normalise(scores)


def is_anomalous(scores: np.ndarray | Sequence[float], threshold: Threshold | Mapping[str, Any]) -> np.ndarray:
    """Threshold.is_anomalous for a Threshold or its record."""
    return as_threshold(threshold).is_anomalous(scores)


def probability_threshold(value: float = 0.5) -> Threshold:
    """A fixed threshold on a defect probability (the supervised baselines' verdict), on the scale [0, 1]."""
    return Threshold(value=float(value), low=0.0, high=1.0, policy="fixed",
                     reason=f"a fixed threshold on the defect probability ({value:g})")
