"""The inspection report: a run folder (run.json + example overlays) and the HTML page that shows it."""

from simsearch.report.html import render_html, write_report
from simsearch.report.run import (
    RunError,
    comparison_run,
    default_run_dir,
    evaluation_run,
    new_run,
    read_run,
    training_run,
    write_example_overlays,
    write_run,
)

__all__ = ["RunError", "comparison_run", "default_run_dir", "evaluation_run", "new_run", "read_run", "render_html",
           "training_run", "write_example_overlays", "write_report", "write_run"]
