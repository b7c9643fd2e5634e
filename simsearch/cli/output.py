"""Terminal output for the CLI: rich tables and progress bars on stderr, one-line errors, exit codes."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Iterator, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from simsearch.decide.threshold import Threshold, as_threshold
from simsearch.errors import IndexProblem, InputError, SimsearchError, WeightsError

# Markup off: paths, labels and defect types are the user's text, and `[/]` or `[link=...]` in them must print
# as typed; styles are given as Text objects and style= arguments instead.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

EXIT_ERROR = 1  # unexpected failure; every other code is a SimsearchError's exit_code (simsearch.errors.EXIT_CODES)
EXIT_BAD_INPUT = InputError.exit_code
EXIT_INDEX = IndexProblem.exit_code
EXIT_WEIGHTS = WeightsError.exit_code


class CliFailure(SimsearchError):
    """An error already phrased for the user, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.exit_code = code


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Stop the command with a one-line error."""
    raise CliFailure(message, code)


def flag(parameter: str) -> str:
    """The CLI flag of a library parameter: batch_size -> --batch-size."""
    return "--" + parameter.replace("_", "-")


def _exit_code(error: BaseException) -> int:
    if isinstance(error, SimsearchError):
        return error.exit_code
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return EXIT_BAD_INPUT
    return EXIT_ERROR


def _message(error: BaseException) -> str:
    text = error.render(flag) if isinstance(error, SimsearchError) else str(error)
    lines = text.strip().splitlines()
    return lines[0] if lines else error.__class__.__name__


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn library errors into `error: ...` on stderr and a meaningful exit code, never a traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red", highlight=False)
        raise typer.Exit(130)
    except MemoryError:
        err_console.print("error: out of memory; use a smaller --batch-size or --image-size", highlight=False)
        raise typer.Exit(EXIT_ERROR)
    except Exception as error:  # the last line of defence: one line, no traceback
        code = _exit_code(error)
        message = _message(error)
        if code == EXIT_ERROR:
            message = f"{error.__class__.__name__}: {message} (please report this)"
        err_console.print(f"error: {message}", style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(code)


@contextlib.contextmanager
def progress_bar(label: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields advance(n). Hidden when stderr is not a terminal-like stream."""
    if not enabled or not err_console.is_terminal:
        yield lambda n: None
        return
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def warn(message: str) -> None:
    """One warning line on stderr, never wrapped."""
    err_console.print(f"warning: {message}", style="yellow", highlight=False, markup=False, soft_wrap=True)


class _WarningLines(logging.Handler):
    """The data layer's notes (an animated image scored on its first frame) as `warning:` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


logging.getLogger("simsearch.data").addHandler(_WarningLines(logging.WARNING))


def warn_skip(path: str, reason: str) -> None:
    """One warning line for a file that was skipped."""
    warn(f"skipped {reason}" if reason.startswith(str(path)) else f"skipped {path}: {reason}")


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _short(path: str | None, width: int = 40) -> str:
    """The file name with its folder (e.g. broken_large/003.png), trimmed from the left to fit."""
    if path is None:
        return "-"
    parts = Path(path).parts
    text = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return text if len(text) <= width else "..." + text[-(width - 3):]


def print_score_table(results: Sequence, title: str | None = None, limit: int | None = None) -> None:
    """One row per scored image."""
    table = Table(title=title, show_lines=False)
    table.add_column("image")
    table.add_column("score", justify="right")
    table.add_column("normalised", justify="right")
    table.add_column("verdict")
    table.add_column("nearest good (distance)")
    table.add_column("nearest defect (type, distance)")
    shown = results if limit is None else results[:limit]
    for result in shown:
        verdict = "-" if result.is_anomaly is None else (Text("REJECT", "red") if result.is_anomaly
                                                         else Text("pass", "green"))
        good = result.nearest[0] if result.nearest else None
        defect = result.nearest_defect
        table.add_row(
            _short(result.path), f"{result.score:.4f}",
            "-" if result.normalised_score is None else f"{result.normalised_score:.3f}", verdict,
            f"{_short(good.path, 28)} ({good.distance:.3f})" if good else "-",
            f"{defect.defect_type or '-'}, {defect.distance:.3f}" if defect else "-")
    console.print(table)
    if limit is not None and len(results) > limit:
        console.print(f"... and {len(results) - limit} more (use --json for all)")


def print_info(folder: Path, description: dict) -> None:
    """A readable summary of an index (ExemplarIndex.describe())."""
    table = Table(title=f"index {folder}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    config = description["embedder"]
    counts = description["counts"]
    patch_mode = description.get("coreset_ratio") is not None  # only a patch bank has a coreset
    mode = f"{description['mode']} (k={description['k']}"
    mode += f", coreset ratio {description['coreset_ratio']})" if patch_mode else ")"
    exemplars = f"{counts['good']} good, {counts['defect']} defect"
    grid = description.get("patch_grid")
    rows = [
        ("embedder", describe_embedder(config)),
        ("weights", str(config.get("weights_source", "-"))),
        ("fingerprint", description["fingerprint"]),
        ("mode", mode),
        ("vectors", f"{description['dim']}-d" + (f", patch grid {grid}" if grid else "")),
        ("exemplars", exemplars + (f", {counts['patches']} patches in the bank" if patch_mode else "")),
        ("defect types", ", ".join(f"{k}: {v}" for k, v in description["defect_types"].items()) or "-"),
        *((f"search {role}", kind["summary"]) for role, kind in description.get("index_kinds", {}).items()
          if kind.get("vectors")),
        ("threshold", _threshold_text(description.get("threshold"))),
        ("format", f"version {description['format_version']}, generation {description['generation']}"),
        ("size on disk", "-" if description.get("bytes") is None else human_size(description["bytes"])),
        ("updated", description.get("updated") or "-"),  # the last save, not now
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for exemplar in description.get("exemplars", []):
        console.print(f"{exemplar['id']:>6}  {exemplar['label']:<6}  {exemplar['defect_type'] or '-':<14}  "
                      f"{exemplar['path']}", highlight=False, markup=False)


def describe_embedder(config: dict) -> str:
    """'backbone: resnet18 layer2+layer3', or 'triplet-head: model.pt on backbone: resnet18 ...'."""
    backbone = config.get("backbone")
    if isinstance(backbone, dict):
        return f"{config.get('kind')}: {config.get('weights_path')} on {describe_embedder(backbone)}"
    text = f"{config.get('kind')}: {backbone or config.get('weights_path') or ''}"
    return text + (f" {'+'.join(config['layers'])}" if config.get("layers") else "")


def _threshold_text(record: dict | None) -> str:
    threshold = as_threshold(record)
    if threshold is None:
        return "none (run `simsearch calibrate`)"
    return f"{threshold.value:.6g} ({threshold.policy})"


def print_evaluation(evaluation) -> None:
    """AUROC, confusion matrix and per-type recall of an evaluation."""
    data = evaluation.to_dict()
    auroc = data["image_auroc"]
    console.print(Text.assemble((f"{data['images']} images", "bold"), f" ({data['good']} good, {data['defect']} "
                                f"defect): image AUROC ", (f"{auroc:.4f}", "bold") if auroc is not None
                                else "n/a (one class only)"))
    for key, name in (("pixel_auroc", "pixel AUROC"), ("pixel_pro", "pixel PRO (FPR<=0.3)")):
        if data.get(key) is not None:
            console.print(Text.assemble(f"{name}: ", (f"{data[key]:.4f}", "bold")))
    if data["confusion"] is not None:
        (tn, fp), (fn, tp) = data["confusion"]
        table = Table(title=f"at threshold {data['threshold']:.6g}")
        table.add_column("")
        table.add_column("predicted good", justify="right")
        table.add_column("predicted defect", justify="right")
        table.add_row("good", str(tn), str(fp))
        table.add_row("defect", str(fn), str(tp))
        console.print(table)
        if data["recall_by_type"]:
            console.print("recall by defect type: " + ", ".join(f"{k} {v:.2f}" for k, v in data["recall_by_type"].items()))


def print_calibration(calibration: Threshold, index: Path) -> None:
    """The chosen threshold, why, and its metrics on the calibration set."""
    metrics = calibration.metrics
    console.print(Text.assemble((f"threshold {calibration.value:.6g}", "bold"), f" ({calibration.policy}) stored in {index}"))
    console.print(f"why: {calibration.reason}", highlight=False)

    def percent(value):
        return "n/a" if value is None else f"{value:.3f}"

    table = Table(title="on the calibration set", show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1"),
                      ("balanced accuracy", "balanced_accuracy"), ("false-alarm rate", "false_alarm_rate"),
                      ("image AUROC", "image_auroc")):
        table.add_row(name, percent(metrics.get(key)))
    (tn, fp), (fn, tp) = metrics["confusion"]
    table.add_row("confusion", f"TN {tn}  FP {fp}  FN {fn}  TP {tp}")
    console.print(table)
