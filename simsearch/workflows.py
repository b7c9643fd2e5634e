"""Multi-step jobs over a labelled set that the CLI and notebooks share: evaluate an index, calibrate it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from simsearch.calibration import Calibration, calibrate, pixel_threshold_for_f1
from simsearch.datasets import Sample
from simsearch.embedder.base import Embeddings
from simsearch.files import file_sha256
from simsearch.evaluation import Evaluation, evaluate_results, pixel_auroc, pro_score
from simsearch.images import read_mask
from simsearch.inspector import Inspector, OnSkip, Progress, iter_embedded
from simsearch.scoring import ScoreResult, anomaly_scores

Warn = Callable[[str], None]


def score_samples(inspector: Inspector, samples: Sequence[Sample], on_progress: Progress | None = None,
                  on_skip: OnSkip | None = None) -> tuple[list[Sample], list[ScoreResult]]:
    """Score labelled samples; returns the samples that could be read and their results, aligned."""
    by_path = {str(s.path): s for s in samples}
    kept, results = [], []
    for result in inspector.iter_score([s.path for s in samples], on_progress, on_skip):
        kept.append(by_path[result.path])
        results.append(result)
    return kept, results


def maps_and_masks(samples: Sequence[Sample], results: Sequence[ScoreResult]) -> tuple[np.ndarray, np.ndarray] | None:
    """Anomaly maps and ground-truth masks at map resolution (good images: empty masks), or None when the
    set has no masks or the results have no maps (image mode)."""
    if not any(s.mask_path for s in samples) or any(r.anomaly_map is None for r in results):
        return None
    maps = np.stack([r.anomaly_map for r in results])
    masks = np.stack([read_mask(s.mask_path, maps.shape[1:]) if s.mask_path else np.zeros(maps.shape[1:], bool)
                      for s in samples])
    return maps, masks


def evaluate_dataset(inspector: Inspector, samples: Sequence[Sample], on_progress: Progress | None = None,
                     on_skip: OnSkip | None = None) -> Evaluation:
    """Score a labelled set: image AUROC, the confusion matrix at the index's threshold (if any), and
    pixel AUROC and PRO where ground-truth masks exist (at the anomaly maps' resolution)."""
    kept, results = score_samples(inspector, samples, on_progress, on_skip)
    threshold = inspector.index_.threshold
    evaluation = evaluate_results(kept, results, threshold["value"] if threshold else None)
    pixels = maps_and_masks(kept, results)
    if pixels is not None:
        evaluation.extra["pixel_auroc"] = pixel_auroc(*pixels)
        evaluation.extra["pixel_pro"] = pro_score(*pixels)
    return evaluation


def leave_one_out_scores(inspector: Inspector, on_progress: Progress | None = None,
                         on_skip: OnSkip | None = None) -> np.ndarray:
    """Scores of the index's own good exemplars, each against all the others (never against itself),
    re-embedded from their source files."""
    index = inspector.index_
    good = [e for e in index.exemplars.values() if e.label == "good"]
    by_path = {e.path: e for e in good}
    present = [e.path for e in good if Path(e.path).is_file()]
    if len(present) < 2:
        raise ValueError("good-only calibration re-scores the index's good exemplars from their files, and "
                         f"only {len(present)} of them can be found; pass a folder of good images instead")
    scores = []
    for batch, embeddings in iter_embedded(inspector.embedder, present, on_progress, on_skip):
        for row, item in enumerate(batch):
            single = Embeddings(embeddings.image[row:row + 1],
                                None if embeddings.patches is None else embeddings.patches[row:row + 1])
            value, _ = anomaly_scores(index, single, exclude=by_path[item.path].id)
            scores.append(float(value[0]))
    return np.asarray(scores)


def calibrate_index(inspector: Inspector, samples: Sequence[Sample] | None = None, policy: str | None = None,
                    target: float | None = None, source: str = "", on_progress: Progress | None = None,
                    on_skip: OnSkip | None = None, warn: Warn | None = None) -> Calibration:
    """Choose a threshold on a labelled set (or, with none, on the index's own good exemplars left out one
    at a time) and store it in the index's manifest (in memory: save the index after)."""
    index = inspector.index_
    if samples is None:
        scores = leave_one_out_scores(inspector, on_progress, on_skip)
        calibration = calibrate(np.zeros(len(scores), int), scores, policy or "good-only", target)
        calibration.reason += " (leave-one-out on the index's good exemplars)"
        source = source or "index exemplars, leave-one-out"
    else:
        kept, results = score_samples(inspector, samples, on_progress, on_skip)
        known = {e.sha256 for e in index.exemplars.values()}
        fresh = [(s, r) for s, r in zip(kept, results) if file_sha256(s.path) not in known]
        if len(fresh) < len(kept) and warn is not None:
            warn(f"left out {len(kept) - len(fresh)} calibration image(s) that are exemplars of the index "
                 "(a score against itself says nothing)")
        if not fresh:
            raise ValueError("every calibration image is an exemplar of the index; calibrate on other images")
        kept, results = [s for s, _ in fresh], [r for _, r in fresh]
        labels = np.array([s.is_defect for s in kept], dtype=int)
        calibration = calibrate(labels, np.array([r.score for r in results]), policy, target)
        pixels = maps_and_masks(kept, results)
        if pixels is not None and pixels[1].any():
            calibration.pixel_value = pixel_threshold_for_f1(*pixels)
            calibration.reason += "; map threshold for boxes: the pixel-F1-best on the masks"
    index.threshold = calibration.to_record(source)
    return calibration
