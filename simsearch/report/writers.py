"""Jobs that fill a run folder and render its report: the evaluation of an index on a labelled set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simsearch.data.datasets import discover_samples
from simsearch.evaluate.evaluation import Evaluation
from simsearch.report.html import write_report
from simsearch.report.run import (
    default_run_dir,
    evaluation_run,
    write_example_overlays,
    write_run,
)


def report_evaluation(evaluation: Evaluation, inspector: Any, dataset: str | Path, fold: str | None = None,
                      index_folder: str | Path | None = None, run_dir: str | Path | None = None) -> Path:
    """Write run.json, the examples' overlays and report.html into run_dir (default artifacts/runs/<time>);
    returns the report's path."""
    folder = Path(run_dir) if run_dir is not None else default_run_dir()
    run = evaluation_run(evaluation, inspector.index_, dataset, fold,
                         everything=discover_samples(dataset) if fold else None, index_folder=index_folder)
    write_example_overlays(run, evaluation, inspector.threshold_, folder)
    write_run(run, folder)
    return write_report(folder)
