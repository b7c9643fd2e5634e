"""Terminal output for the CLI: rich tables and progress bars on stderr, one-line errors, exit codes."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from simsearch.decide.threshold import Threshold, as_threshold
from simsearch.errors import EXIT_SKIPPED, IndexProblem, InputError, SimsearchError, WeightsError

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


# Click's usage-error root, wherever this Typer takes Click from (its own vendored copy, or the click package):
# found from the one Click exception Typer exports.
_CLICK_EXCEPTION = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


class OneLineErrorsGroup(TyperGroup):
    """The root command group: usage errors (an unknown option, a missing argument, a bad value) as one
    `error:` line on stderr naming the command's --help, exit 2, instead of Click's multi-line box; --help and
    every other exit are unchanged."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _CLICK_EXCEPTION as error:
            where = f"`{error.ctx.command_path} --help`" if getattr(error, "ctx", None) else "--help"
            message = " ".join(error.format_message().split())
            if not message:  # no arguments at all: the help was printed, as asked (no_args_is_help)
                sys.exit(error.exit_code)
            err_console.print(f"error: {message} (see {where})", style="red", highlight=False, markup=False,
                              soft_wrap=True)
            sys.exit(error.exit_code)
        except typer.Abort:
            err_console.print("aborted", style="red", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


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


class SkippedInputs:
    """The on_skip callback of a command: a warning line per unreadable input, a `{"path", "error"}` record
    for --json (streamed as its own line with `stream_json`, else in `records` for the command's object), and
    exit code 6 (EXIT_SKIPPED) at `finish()` when any input was skipped."""

    def __init__(self, stream_json: bool = False):
        self.stream_json = stream_json
        self.records: list[dict[str, str]] = []

    def __call__(self, path: str, reason: str) -> None:
        warn_skip(path, reason)
        record = {"path": str(path), "error": reason}
        self.records.append(record)
        if self.stream_json:
            typer.echo(json.dumps(record, ensure_ascii=False))

    def finish(self) -> None:
        """Exit with EXIT_SKIPPED when any input was skipped (after the command's output)."""
        if self.records:
            warn(f"{len(self.records)} input(s) skipped as unreadable (exit code {EXIT_SKIPPED})")
            raise typer.Exit(EXIT_SKIPPED)


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def shorten_middle(text: str, width: int, head_share: float = 1 / 3) -> str:
    """text cut in the middle to at most width characters ('broken_l…/003.png'), head_share of them from its
    start: the end of an image name tells images apart, so it is kept whole where it can be."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[-width:] if width > 0 else ""
    head = int((width - 1) * head_share)
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _short(path: str | None) -> str:
    """The file name with its folder (e.g. broken_large/003.png)."""
    if path is None:
        return "-"
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else path


# Score table columns after the image: score (6), normalised (5), verdict (7); a rich table adds 3 characters
# per column and 1. What is left of the console's width is shared by the image and its nearest exemplars.
_FIXED_WIDTH = 6 + 5 + 7 + 3 * 6 + 1


def print_score_table(results: Sequence, title: str | None = None, limit: int | None = None) -> None:
    """One row per scored image, fitted to the console's width (80 columns and up): image names are cut in
    the middle, never at their end."""
    free = max(43, console.width - _FIXED_WIDTH)
    defect_width = max(14, int(free * 0.25))  # "nearest defect" and "type 0.123"
    image_width = (free - defect_width) // 2
    good_width = free - defect_width - image_width
    table = Table(title=title, show_lines=False)
    table.add_column("image", no_wrap=True, max_width=image_width)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("norm.", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("nearest good", no_wrap=True, max_width=good_width)
    table.add_column("nearest defect", no_wrap=True, max_width=defect_width)
    shown = results if limit is None else results[:limit]
    for result in shown:
        verdict = "-" if result.is_anomaly is None else (Text("REJECT", "red") if result.is_anomaly
                                                         else Text("pass", "green"))
        good = result.nearest[0] if result.nearest else None
        defect = result.nearest_defect
        good_text = "-"
        if good:
            distance = f" {good.distance:.3f}"
            good_text = shorten_middle(Path(good.path).name, good_width - len(distance), head_share=0) + distance
        defect_text = "-"
        if defect:
            distance = f" {defect.distance:.3f}"
            defect_text = shorten_middle(defect.defect_type or "untyped", defect_width - len(distance)) + distance
        table.add_row(shorten_middle(_short(result.path), image_width), f"{result.score:.4f}",
                      "-" if result.normalised_score is None else f"{result.normalised_score:.3f}", verdict,
                      good_text, defect_text)
    console.print(table)
    console.print("norm.: normalised score, threshold at 0.5; nearest: exemplar file, distance",
                  highlight=False)
    if shown and all(result.is_anomaly is None for result in shown):
        console.print("not calibrated: run simsearch calibrate for verdicts and normalised scores")
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
        ("compiled copy", _compiled_text(description.get("compiled_embedder"))),
        ("fingerprint", description["fingerprint"]),
        ("mode", mode),
        ("vectors", f"{description['dim']}-d" + (f", patch grid {grid}" if grid else "")),
        ("exemplars", exemplars + (f", {counts['patches']} patches in the bank" if "patches" in counts else "")),
        ("defect types", ", ".join(f"{k}: {v}" for k, v in description["defect_types"].items()) or "-"),
        *((("defect coherence", f"{description['defect_coherence']:.2f} (weight of the contrast ratio)"),)
          if "defect_coherence" in description else ()),
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


def _compiled_text(record: dict | None) -> str:
    """The compiled embedder an index keeps (runs on a CPU without torch), or why there is none."""
    if not record:
        return "none (torch runs the embedder; adding to, calibrating or saving the index makes one where it can)"
    difference = record.get("max_difference")
    return f"{record.get('format')}, within {difference:.1g} of torch's vectors" if isinstance(difference, float) \
        else str(record.get("format"))


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
    if data.get("left_out_exemplars"):
        console.print(f"left out {data['left_out_exemplars']} image(s) that are exemplars of the index")
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
        console.print("recall " + _ratio(tp, tp + fn) + ", false-alarm rate " + _ratio(fp, fp + tn)
                      + ", precision " + _ratio(tp, tp + fp))
        if data["recall_by_type"]:
            console.print("recall by defect type: " + ", ".join(f"{k} {v:.2f}" for k, v in data["recall_by_type"].items()))


def _ratio(part: int, whole: int) -> str:
    """'0.950 (19/20)', or 'n/a (0/0)'."""
    return f"{part / whole:.3f} ({part}/{whole})" if whole else f"n/a ({part}/{whole})"


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
