"""The metrics against plain references: PRO by a loop over thresholds and regions, the pixel-F1 threshold by
brute force over every map value, binary metrics on a hand-made example."""

from collections import deque

import numpy as np
import pytest

from simsearch.evaluate.metrics import binary_metrics, pixel_threshold_for_f1, pro_score


def _regions(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Connected regions of a 2-D mask (4-neighbours), by breadth-first search."""
    seen = np.zeros(mask.shape, bool)
    regions = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        queue, region = deque([start]), []
        while queue:
            y, x = queue.popleft()
            region.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        regions.append(region)
    return regions


def _pro_reference(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3, steps: int = 200) -> float:
    regions = [(n, region) for n, mask in enumerate(masks) for region in _regions(mask)]
    good_values = np.sort(maps[~masks])
    fprs, overlaps = [], []
    for fpr in np.linspace(0.0, max_fpr, steps):
        threshold = np.quantile(good_values, 1.0 - fpr)
        fprs.append(sum(v >= threshold for v in good_values) / len(good_values))
        per_region = [sum(maps[n][y, x] >= threshold for y, x in region) / len(region) for n, region in regions]
        overlaps.append(sum(per_region) / len(per_region))
    area = sum((fprs[i + 1] - fprs[i]) * (overlaps[i + 1] + overlaps[i]) / 2 for i in range(len(fprs) - 1))
    return area / max_fpr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pro_matches_a_loop_over_thresholds_and_regions(seed):
    rng = np.random.default_rng(seed)
    masks = rng.random((3, 12, 12)) < 0.15  # many small regions, some touching
    masks[0, 2:5, 2:6] = True
    maps = rng.random((3, 12, 12)) + masks * rng.uniform(0.0, 0.8, (3, 12, 12))
    assert pro_score(maps, masks, steps=40) == pytest.approx(_pro_reference(maps, masks, steps=40), abs=1e-6)


def test_pro_without_defects_is_none():
    assert pro_score(np.random.default_rng(0).random((2, 8, 8)), np.zeros((2, 8, 8), bool)) is None


def test_pixel_threshold_for_f1_is_within_one_bin_of_brute_force():
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 32, 32), bool)
    masks[:, 8:16, 10:20] = True
    maps = rng.normal(0.0, 1.0, masks.shape) + 3.0 * masks
    values, truth = maps.ravel(), masks.ravel()

    def f1(threshold: float) -> float:
        predicted = values >= threshold
        tp = (predicted & truth).sum()
        return 2 * tp / (predicted.sum() + truth.sum())

    best = max(np.unique(values), key=f1)
    bins = 512
    chosen = pixel_threshold_for_f1(maps, masks, bins=bins)
    width = (values.max() - values.min()) / bins
    assert abs(chosen - best) <= width + 1e-12
    assert f1(chosen) == pytest.approx(f1(best), abs=0.01)


def test_binary_metrics_on_a_hand_made_example():
    labels = [0, 0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.4, 0.6, 0.3, 0.7, 0.8, 0.9]  # at 0.5: TN 2, FP 1 (0.6), FN 1 (0.3), TP 3
    metrics = binary_metrics(labels, scores, 0.5)
    assert metrics["confusion"] == [[2, 1], [1, 3]]
    assert metrics["precision"] == 0.75 and metrics["recall"] == 0.75 and metrics["f1"] == pytest.approx(0.75)
    assert metrics["false_alarm_rate"] == pytest.approx(1 / 3)
    assert metrics["balanced_accuracy"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert metrics["image_auroc"] == pytest.approx(10 / 12)  # 0.3 beats one good, the others all three
    assert (metrics["good"], metrics["defect"]) == (3, 4)


def test_binary_metrics_at_a_threshold_score_is_a_reject():
    metrics = binary_metrics([0, 1], [0.5, 0.5], 0.5)
    assert metrics["confusion"] == [[0, 1], [0, 1]] and metrics["recall"] == 1.0


def test_binary_metrics_with_one_class():
    metrics = binary_metrics([0, 0, 0], [0.1, 0.2, 0.9], 0.5)
    assert metrics["recall"] is None and metrics["f1"] is None and metrics["false_alarm_rate"] == pytest.approx(1 / 3)
