"""Scores -> verdict: a stored threshold, and the normalised score on which it sits at 0.5."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def normalise_scores(scores: np.ndarray | Sequence[float], threshold: dict[str, Any]) -> np.ndarray:
    """Map raw scores to [0, 1] with the threshold at 0.5 (anomalib's min-max rule): 0.5 + (s - t) / (max - min),
    where min and max are the raw scores seen at calibration."""
    scores = np.asarray(scores, dtype=np.float64)
    span = max(float(threshold["high"]) - float(threshold["low"]), 1e-12)
    return np.clip(0.5 + (scores - float(threshold["value"])) / span, 0.0, 1.0)


def is_anomalous(scores: np.ndarray | Sequence[float], threshold: dict[str, Any]) -> np.ndarray:
    """True where the raw score is at or above the threshold."""
    return np.asarray(scores, dtype=np.float64) >= float(threshold["value"])
