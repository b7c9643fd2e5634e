"""A labelled set scored by any Scorer -> metrics: image AUROC, the confusion matrix at its threshold, pixel
AUROC and PRO where there are masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np

from simsearch.data.callbacks import Callbacks
from simsearch.data.datasets import Sample, class_key
from simsearch.data.images import read_mask
from simsearch.errors import InputError
from simsearch.evaluate.metrics import binary_metrics, image_auroc, pixel_auroc, pro_score
from simsearch.files import file_sha256
from simsearch.score.results import ScoreResult
from simsearch.score.scorer import Scorer  # the kNN Inspector or any baseline


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


def evaluate_results(samples: Sequence[Sample], results: Sequence[ScoreResult],
                     threshold: float | None = None, known_types: Collection[str] | None = None) -> Evaluation:
    """Metrics for results aligned with samples. `known_types`: the defect types the scorer holds exemplars of
    (type accuracy counts only defects of those: no scorer can name a type it has never seen); None: every type."""
    samples, results = list(samples), list(results)
    labels = np.array([s.is_defect for s in samples], dtype=int)
    scores = np.array([r.score for r in results])
    evaluation = Evaluation(samples, results, image_auroc(labels, scores), threshold)
    if threshold is not None:
        metrics = binary_metrics(labels, scores, threshold)
        evaluation.confusion = metrics["confusion"]
        evaluation.extra.update({key: metrics[key] for key in ("recall", "false_alarm_rate", "precision")})
        predicted = (scores >= threshold).astype(int)
        for kind in sorted({class_key(s) for s in samples if s.is_defect}):
            rows = [i for i, s in enumerate(samples) if s.is_defect and class_key(s) == kind]
            evaluation.recall_by_type[kind] = float(predicted[rows].mean())
    evaluation.extra.update(type_accuracy(samples, results, known_types))
    return evaluation


def type_accuracy(samples: Sequence[Sample], results: Sequence[ScoreResult],
                  known_types: Collection[str] | None = None) -> dict[str, Any]:
    """How often the predicted defect type is right, and what it leaves out and why: `type_accuracy` is over
    the typed defects of a type the scorer holds (`known_types`) that got a type predicted (`typed_defects`);
    `type_counts` says how many were right, got no type (they resembled a good exemplar more than any defect
    one), and were of a type the scorer holds no exemplar of (`unknown_types`). {} when no defect is typed, or
    the scorer holds no defect type at all."""
    typed = [(s, r) for s, r in zip(samples, results) if s.is_defect and s.defect_type]
    if not typed or (known_types is not None and not known_types):
        return {}
    known = [(s, r) for s, r in typed if known_types is None or s.defect_type in known_types]
    predicted = [(s, r) for s, r in known if r.predicted_type]
    right = sum(s.defect_type == r.predicted_type for s, r in predicted)
    unknown = sorted({s.defect_type for s, _ in typed} - {s.defect_type for s, _ in known})
    record: dict[str, Any] = {"type_counts": {"right": right, "predicted": len(predicted),
                                              "no_prediction": len(known) - len(predicted),
                                              "type_not_in_index": len(typed) - len(known)},
                              "unknown_types": unknown}
    if predicted:
        record.update(type_accuracy=right / len(predicted), typed_defects=len(predicted))
    return record


def score_samples(scorer: Scorer, samples: Sequence[Sample],
                  callbacks: Callbacks | None = None) -> tuple[list[Sample], list[ScoreResult]]:
    """Score labelled samples; returns the samples that could be read and their results, aligned."""
    by_path = {str(s.path): s for s in samples}
    kept, results = [], []
    for result in scorer.iter_score([s.path for s in samples], callbacks):
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


def leave_out_exemplars(scorer: Scorer, samples: Sequence[Sample], purpose: str,
                        callbacks: Callbacks | None = None) -> list[Sample]:
    """The samples that are not exemplars of the scorer's index (same file bytes, by sha256): an exemplar
    scored against itself has distance 0 and says nothing. Notes how many were left out, and counts them as done
    (progress); InputError when none is left. A scorer without an index (a baseline) keeps every sample."""
    index = getattr(scorer, "index_", None)
    if index is None:
        return list(samples)
    known = {e.sha256 for e in index.exemplars.values()}
    fresh = [s for s in samples if not (Path(s.path).is_file() and file_sha256(s.path) in known)]
    if not fresh:
        raise InputError(f"every {purpose} image is an exemplar of the index (a score against itself says "
                         f"nothing)", hint=f"{purpose} on images the index was not built from, e.g. another "
                         "--fold or a held-out folder")
    if len(fresh) < len(samples):
        callbacks = callbacks or Callbacks()
        callbacks.note(f"left out {len(samples) - len(fresh)} {purpose} image(s) that are exemplars of the index "
                       "(a score against itself says nothing)")
        callbacks.progress(len(samples) - len(fresh))  # the left-out images count as done
    return fresh


def evaluate_dataset(scorer: Scorer, samples: Sequence[Sample], callbacks: Callbacks | None = None) -> Evaluation:
    """Score a labelled set, leaving out the index's own exemplars: image AUROC, the confusion matrix at the
    index's threshold (if any), and pixel AUROC and PRO where ground-truth masks exist (at the anomaly maps'
    resolution). `extra["left_out_exemplars"]` says how many samples were exemplars."""
    fresh = leave_out_exemplars(scorer, samples, "evaluation", callbacks)
    kept, results = score_samples(scorer, fresh, callbacks)
    threshold = scorer.threshold_
    index = getattr(scorer, "index_", None)
    known_types = None if index is None else {e.defect_type for e in index.exemplars.values()
                                              if e.label == "defect" and e.defect_type}
    evaluation = evaluate_results(kept, results, threshold.value if threshold is not None else None, known_types)
    evaluation.extra["left_out_exemplars"] = len(samples) - len(fresh)
    pixels = maps_and_masks(kept, results)
    if pixels is not None:
        evaluation.extra["pixel_auroc"] = pixel_auroc(*pixels)
        evaluation.extra["pixel_pro"] = pro_score(*pixels)
    return evaluation
