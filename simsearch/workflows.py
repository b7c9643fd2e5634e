"""Multi-step jobs over a labelled set that the CLI and notebooks share: evaluate an index on it."""

from __future__ import annotations

from typing import Sequence

from simsearch.datasets import Sample
from simsearch.evaluation import Evaluation, evaluate_results
from simsearch.inspector import Inspector, OnSkip, Progress


def score_samples(inspector: Inspector, samples: Sequence[Sample], on_progress: Progress | None = None,
                  on_skip: OnSkip | None = None) -> tuple[list[Sample], list]:
    """Score labelled samples; returns the samples that could be read and their results, aligned."""
    by_path = {str(s.path): s for s in samples}
    kept, results = [], []
    for result in inspector.iter_score([s.path for s in samples], on_progress, on_skip):
        kept.append(by_path[result.path])
        results.append(result)
    return kept, results


def evaluate_dataset(inspector: Inspector, samples: Sequence[Sample], on_progress: Progress | None = None,
                     on_skip: OnSkip | None = None) -> Evaluation:
    """Score a labelled set and compute image metrics at the index's threshold (if it has one)."""
    kept, results = score_samples(inspector, samples, on_progress, on_skip)
    threshold = inspector.index_.threshold
    return evaluate_results(kept, results, threshold["value"] if threshold else None)
