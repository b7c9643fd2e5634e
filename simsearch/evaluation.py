"""Scores of a labelled set -> metrics: image AUROC, and the confusion matrix at the stored threshold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from simsearch.datasets import Sample
from simsearch.scoring import ScoreResult


@dataclass
class Evaluation:
    """Image-level results of scoring a labelled set."""

    samples: list[Sample]
    results: list[ScoreResult]
    image_auroc: float | None
    threshold: float | None = None
    confusion: list[list[int]] | None = None  # [[TN, FP], [FN, TP]] with defect as positive
    recall_by_type: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.is_defect for s in self.samples], dtype=int)

    @property
    def scores(self) -> np.ndarray:
        return np.array([r.score for r in self.results], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        labels = self.labels
        return {"images": len(self.samples), "good": int((labels == 0).sum()), "defect": int(labels.sum()),
                "image_auroc": self.image_auroc, "threshold": self.threshold, "confusion": self.confusion,
                "recall_by_type": self.recall_by_type, **self.extra}


def image_auroc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC with defects as positives, or None when only one class is present."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def evaluate_results(samples: Sequence[Sample], results: Sequence[ScoreResult],
                     threshold: float | None = None) -> Evaluation:
    """Metrics for results aligned with samples."""
    samples, results = list(samples), list(results)
    labels = np.array([s.is_defect for s in samples], dtype=int)
    scores = np.array([r.score for r in results])
    evaluation = Evaluation(samples, results, image_auroc(labels, scores), threshold)
    if threshold is not None:
        predicted = (scores >= threshold).astype(int)
        evaluation.confusion = confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
        for kind in sorted({s.defect_type or "defect" for s in samples if s.is_defect}):
            rows = [i for i, s in enumerate(samples) if s.is_defect and (s.defect_type or "defect") == kind]
            evaluation.recall_by_type[kind] = float(predicted[rows].mean())
    return evaluation


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float | None:
    """ROC AUC over all pixels of all maps, defect pixels as positives."""
    truth = masks.ravel().astype(int)
    if truth.min() == truth.max():
        return None
    return float(roc_auc_score(truth, maps.ravel()))


def pro_score(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3, steps: int = 200) -> float | None:
    """Per-region overlap (MVTec AD's PRO): mean overlap of each connected defect region, integrated over
    the false-positive rate from 0 to max_fpr and divided by max_fpr."""
    from scipy import ndimage

    regions = np.zeros(masks.shape, dtype=np.int64)
    offset = 0
    for number, mask in enumerate(masks):
        labels, count = ndimage.label(mask)
        regions[number] = np.where(labels > 0, labels + offset, 0)
        offset += count
    if offset == 0 or (~masks.astype(bool)).sum() == 0:
        return None
    flat_regions, flat_maps = regions.ravel(), maps.ravel()
    region_size = np.bincount(flat_regions, minlength=offset + 1)[1:].astype(np.float64)
    good = flat_regions == 0
    good_values = np.sort(flat_maps[good])
    # thresholds spread evenly in false-positive rate, from 0 to max_fpr
    fprs = np.linspace(0.0, max_fpr, steps)
    thresholds = np.quantile(good_values, 1.0 - fprs)
    overlaps = []
    for threshold in thresholds:
        hit = flat_maps >= threshold
        per_region = np.bincount(flat_regions[hit & ~good], minlength=offset + 1)[1:] / region_size
        overlaps.append(per_region.mean())
    actual_fpr = 1.0 - np.searchsorted(good_values, thresholds, side="left") / len(good_values)
    return float(np.trapezoid(overlaps, actual_fpr) / max_fpr)
