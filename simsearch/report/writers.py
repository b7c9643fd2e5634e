"""Jobs that fill a run folder and render its report: the evaluation of an index on a labelled set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simsearch.data.datasets import discover_samples
from simsearch.evaluate.evaluation import Evaluation
from simsearch.report.html import write_report
from simsearch.report.run import (
    data_section,
    default_run_dir,
    evaluation_run,
    new_run,
    result_record,
    write_example_overlays,
    write_run,
)


def report_evaluation(evaluation: Evaluation, scorer: Any, dataset: str | Path, fold: str | None = None,
                      index_folder: str | Path | None = None, run_dir: str | Path | None = None) -> Path:
    """Write run.json, the examples' overlays and report.html into run_dir (default artifacts/runs/<time>);
    returns the report's path. scorer: the kNN Inspector or any Scorer (a baseline: set-up from its config)."""
    folder = Path(run_dir) if run_dir is not None else default_run_dir()
    everything = discover_samples(dataset) if fold else None
    index = getattr(scorer, "index_", None)
    if index is not None:
        run = evaluation_run(evaluation, index, dataset, fold, everything=everything, index_folder=index_folder)
    else:  # a baseline: no exemplars to count; its set-up is what it describes of itself
        run = new_run("evaluate", f"evaluation of {scorer.name} on {Path(dataset).name}"
                      + (f" (fold {fold})" if fold else ""),
                      data=data_section(dataset, evaluation.samples, everything, fold),
                      setup={"model": None if index_folder is None else str(index_folder), **scorer.describe()},
                      results=[result_record(s, r) for s, r in zip(evaluation.samples, evaluation.results)],
                      metrics=evaluation.to_dict())
    write_example_overlays(run, evaluation, getattr(scorer, "heatmap_scale_", scorer.threshold_), folder)
    write_run(run, folder)
    return write_report(folder)
