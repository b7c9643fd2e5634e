"""`simsearch report RUN`: render a run folder (or run.json) as one self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from simsearch.cli.app import app
from simsearch.cli.options import JsonObjectOption
from simsearch.cli.output import console, handle_errors


@app.command()
def report(
    run: Path = typer.Argument(..., help="Run folder (with run.json) or a run.json file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default: "
                                                                 "report.html in the run folder)."),
    as_json: bool = JsonObjectOption,
) -> None:
    """Render a run (evaluate, compare, train) as one self-contained HTML page."""
    with handle_errors():
        from simsearch.report import write_report

        written = write_report(run, out)
        if as_json:
            typer.echo(json.dumps({"report": str(written), "bytes": written.stat().st_size}))
        else:
            console.print(f"report: {written} ({written.stat().st_size / 1e6:.1f} MB)")
