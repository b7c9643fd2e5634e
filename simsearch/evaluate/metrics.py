"""Metrics of scores against labels, one home: image AUROC, binary metrics at a threshold, pixel AUROC,
PRO, and the pixel-F1-best map threshold. Plain functions on arrays."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def roc_auc_score(labels: Any, scores: Any) -> float:
    """scikit-learn's ROC AUC, imported on first use: scikit-learn (with pandas, scipy.stats) costs seconds of
    start-up that scoring, which only reaches this module through the threshold policies, never needs."""
    from sklearn.metrics import roc_auc_score as sklearn_roc_auc

    return sklearn_roc_auc(labels, scores)


def image_auroc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC with defects as positives, or None when only one class is present."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))



def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, balanced accuracy, false-alarm rate, confusion [[TN, FP], [FN, TP]], AUROC."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=np.float64)
    predicted = scores >= threshold
    tp = int((predicted & (labels == 1)).sum())
    fp = int((predicted & (labels == 0)).sum())
    fn = int((~predicted & (labels == 1)).sum())
    tn = int((~predicted & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else None
    false_alarm = fp / (fp + tn) if fp + tn else None
    f1 = (2 * precision * recall / (precision + recall) if recall and precision + recall
          else (0.0 if recall is not None else None))
    balanced = None if recall is None or false_alarm is None else (recall + 1 - false_alarm) / 2
    return {"precision": precision, "recall": recall, "f1": f1, "balanced_accuracy": balanced,
            "false_alarm_rate": false_alarm, "confusion": [[tn, fp], [fn, tp]],
            "image_auroc": image_auroc(labels, scores) if len(labels) else None,
            "good": int((labels == 0).sum()), "defect": int((labels == 1).sum())}



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


def pixel_threshold_for_f1(maps: np.ndarray, masks: np.ndarray, bins: int = 512) -> float:
    """The anomaly-map value that maximises pixel F1 over maps and masks (histogram approximation)."""
    values, truth = maps.ravel(), masks.ravel().astype(bool)
    edges = np.linspace(values.min(), values.max(), bins + 1)
    defect_hist = np.histogram(values[truth], bins=edges)[0]
    good_hist = np.histogram(values[~truth], bins=edges)[0]
    tp = np.cumsum(defect_hist[::-1])[::-1].astype(np.float64)
    fp = np.cumsum(good_hist[::-1])[::-1].astype(np.float64)
    f1 = 2 * tp / np.maximum(tp + fp + truth.sum(), 1)
    return float(edges[:-1][int(np.argmax(f1))])
