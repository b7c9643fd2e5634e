"""Terminal output for the CLI: rich tables and progress bars on stderr, one-line errors, exit codes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from simsearch.decide.threshold import Threshold, as_threshold
from simsearch.errors import EXIT_SKIPPED, IndexProblem, InputError, SimsearchError, WeightsError

# C0 and C1 control characters but newline and tab, and DEL: an ESC in a file name would drive the terminal
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` (the user's: a path, a label) with its control characters written as escapes (`\\x1b`), so that
    ANSI or OSC sequences in a file name print as text and never reach the terminal raw."""
    return _CONTROL.sub(lambda match: ascii(match.group())[1:-1], str(text))


# Markup off: paths, labels and defect types are the user's text, and `[/]` or `[link=...]` in them must print
# as typed; styles are given as Text objects and style= arguments instead.
class _Console(Console):
    def on_broken_pipe(self) -> None:  # rich's own exits 1; a closed pipe is not a failure of the command
        self.quiet = True
        quiet_broken_pipe()

    def render(self, renderable, options=None) -> Iterator[Segment]:
        # the last line of defence for user text `printable` did not see first (rich's own control codes pass)
        for segment in super().render(renderable, options):
            yield segment if segment.control or not _CONTROL.search(segment.text) else \
                Segment(printable(segment.text), segment.style, segment.control)


console = _Console(markup=False)
err_console = _Console(stderr=True, markup=False)

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
    """The CLI flag of a library parameter: batch_size -> --batch-size; a switch's value picks its form:
    pretrained=False -> --no-pretrained."""
    name, _, value = parameter.partition("=")
    return ("--no-" if value == "False" else "--") + name.replace("_", "-")


def _exit_code(error: BaseException) -> int:
    if isinstance(error, SimsearchError):
        return error.exit_code
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return EXIT_BAD_INPUT
    return EXIT_ERROR


def _message(error: BaseException) -> str:
    text = printable(error.render(flag) if isinstance(error, SimsearchError) else str(error))
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
        raise typer.Exit(130) from None
    except BrokenPipeError:
        quiet_broken_pipe()
    except MemoryError:
        err_console.print("error: out of memory; use a smaller --batch-size or --image-size", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
    except Exception as error:  # the last line of defence: one line, no traceback
        code = _exit_code(error)
        message = _message(error)
        if isinstance(error, ModuleNotFoundError) and error.name in ("torch", "torchvision"):
            # the scoring-only install (requirements-score.txt) has no torch: only the compiled copy runs there
            code, message = EXIT_BAD_INPUT, (f"this needs {error.name}, which the scoring-only install leaves out; "
                                             "score with the index's compiled copy (no --no-compiled, no other "
                                             "--weights), or install the full package (pip install -e .)")
        if code == EXIT_ERROR:
            message = f"{error.__class__.__name__}: {message} (please report this)"
        err_console.print(f"error: {message}", style="red", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(code) from None


EXIT_BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE: `simsearch score --json | head -2`


def quiet_broken_pipe() -> None:
    """The reader of stdout went away (`| head`): stop quietly, as Unix tools do, with exit code 141. Standard
    output is pointed at /dev/null first, so that Python's flush at exit does not print a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test runner's buffer)
        pass
    raise typer.Exit(EXIT_BROKEN_PIPE)


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
            try:
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
                sys.stdout.flush()  # a pipe closed early fails here, not in Python's flush at exit
            except BrokenPipeError:
                quiet_broken_pipe()
        except typer.Exit as done:
            sys.exit(done.exit_code)
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


PROGRESS_FIRST_LINE_S = 1.0  # piped progress: a stage quicker than this prints nothing
PROGRESS_EVERY_S = 10.0  # then a line this often while it runs


class _ProgressLines:
    """Progress where stderr is a pipe or a file (no bar can redraw there): for a stage that runs longer than
    PROGRESS_FIRST_LINE_S, a line then, one every PROGRESS_EVERY_S and one when it ends (none when it fails:
    the error line says so). Quicker stages stay quiet."""

    def __init__(self, label: str, total: int | None):
        self.label, self.total, self.done = label, total, 0
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name=f"progress {label}", daemon=True)

    def _line(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self.start
        count = f"{self.done}/{self.total}" if self.total is not None else (str(self.done) if self.done else "")
        text = f"{self.label}: " + ("done, " if final else "") + (f"{count} " if count else "")
        text += f"in {elapsed:.1f} s" if final else f"{elapsed:.0f} s"
        err_console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _tick(self) -> None:
        wait = PROGRESS_FIRST_LINE_S
        while not self._stop.wait(wait):
            self._line()
            wait = PROGRESS_EVERY_S

    def advance(self, n: int) -> None:
        self.done += n

    def __enter__(self) -> Callable[[int], None]:
        self._thread.start()
        return self.advance

    def __exit__(self, kind, error, traceback) -> None:
        self._stop.set()
        self._thread.join()
        if kind is None and time.monotonic() - self.start >= PROGRESS_FIRST_LINE_S:
            self._line(final=True)


@contextlib.contextmanager
def progress_bar(label: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields advance(n). Where stderr is not a terminal (piped, redirected to
    a log), lines instead: one when the stage ends, and while it runs one every few seconds."""
    if not enabled:
        yield lambda n: None
        return
    if not err_console.is_terminal:
        with _ProgressLines(label, total) as advance:
            yield advance
        return
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


DEFAULT_INDEX = Path("artifacts/index")


def chosen_index(index: Path | None) -> Path:
    """The index a command reads: --index, else artifacts/index with a note saying so (never silently); a
    missing default is an error naming --index."""
    if index is not None:
        return index
    if not DEFAULT_INDEX.exists():
        fail(f"no --index given, and no index at the default {DEFAULT_INDEX}: give --index FOLDER (build one with "
             "`simsearch build-index`)")
    err_console.print(f"index: {DEFAULT_INDEX} (the default; --index names another)", highlight=False,
                      markup=False, soft_wrap=True)
    return DEFAULT_INDEX


def warn(message: str) -> None:
    """One warning line on stderr, never wrapped."""
    err_console.print(f"warning: {printable(message)}", style="yellow", highlight=False, markup=False, soft_wrap=True)


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


def distinct_tails(paths: Sequence[str]) -> list[tuple[str, ...]]:
    """Each path's last parts: its folder and name, and as many folders more as tell it apart from the other
    paths (lineA/good/1.bmp beside lineB/good/1.bmp)."""
    split = [Path(path).parts for path in paths]
    tails = [parts[-2:] for parts in split]
    for _ in range(max((len(parts) for parts in split), default=0)):
        counts: dict[tuple[str, ...], int] = {}
        for tail in tails:
            counts[tail] = counts.get(tail, 0) + 1
        longer = [parts[-(len(tail) + 1):] if counts[tail] > 1 and len(tail) < len(parts) else tail
                  for tail, parts in zip(tails, split)]
        if longer == tails:
            break
        tails = longer
    return tails


def fit_path(parts: Sequence[str], width: int) -> str:
    """Folders and a file name as at most width characters: whole where it fits; else folders dropped, from
    the second on ('lineA/…/003.png') or from the first ('…/good/003.png'), so the name stays whole; the name
    is cut in its middle only when it alone does not fit."""
    parts = list(parts)
    text = "/".join(parts)
    if len(text) <= width:
        return text
    name, folders = parts[-1], parts[:-1]
    # the first folder of a distinct tail is the one that tells the rows apart: kept while anything fits
    candidates = [folders[0] + "/…/" + "/".join(folders[start:] + [name]) for start in range(2, len(folders) + 1)]
    candidates += ["…/" + "/".join(folders[start:] + [name]) for start in range(1, len(folders) + 1)]
    for candidate in candidates:
        if len(candidate) <= width:
            return candidate
    return shorten_middle(name, width)


# Score table columns after the image: score (6), normalised (5), verdict (7); a rich table adds 3 characters
# per column and 1. What is left of the console's width goes to the image first (its name whole), then to its
# nearest exemplars; the nearest-defect column only where the index holds defects.
_SCORE_COLUMNS_WIDTH = 6 + 5 + 7 + 1
_NEAREST_GOOD_MIN = 13  # "00.png 0.123"


EXEMPLAR_MARK = " *"
SAME_VECTOR = 1e-6  # a nearest exemplar this close is the image itself (the same vector)


def exemplars_scored(results: Sequence, exemplars: dict | None) -> dict[str, int]:
    """The scored images that are themselves exemplars of the index: path -> exemplar id, by the file's sha256
    (`exemplars`: the index's exemplars by id) or a nearest exemplar at distance 0. An exemplar is scored
    against itself: its score says nothing of it."""
    from simsearch.files import file_sha256

    by_sha = {e.sha256: e.id for _, e in sorted((exemplars or {}).items(), reverse=True) if e.sha256}  # lowest id
    held: dict[str, int] = {}
    for result in results:
        if result.path is None:
            continue
        try:
            sha = file_sha256(result.path) if by_sha else None
        except OSError:
            sha = None
        same = [n for n in [*result.nearest[:1], result.nearest_defect] if n is not None and n.distance <= SAME_VECTOR]
        if sha in by_sha:
            held[result.path] = by_sha[sha]
        elif same:
            held[result.path] = same[0].id
    return held


def print_score_table(results: Sequence, title: str | None = None, limit: int | None = None,
                      exemplars: dict | None = None, image_mode: bool = False) -> None:
    """One row per scored image, fitted to the console's width (80 columns and up): an image is shown by its
    name and as many folders as tell it apart from the others and fit; folders are dropped before any of
    the name is. `exemplars` (the index's, by id): images that are exemplars themselves are marked; with
    `image_mode` the score is a whole-image distance, as the nearest exemplars' are (else patch-level)."""
    shown = results if limit is None else results[:limit]
    held = exemplars_scored(shown, exemplars)
    names = distinct_tails([printable(result.path) for result in shown])
    with_defects = any(result.nearest_defect is not None for result in shown)
    free = max(43, console.width - _SCORE_COLUMNS_WIDTH - 3 * (6 if with_defects else 5))
    defect_width = max(14, int(free * 0.2)) if with_defects else 0  # "nearest defect" and "type 0.123"
    rest = free - defect_width
    needed = max((len("/".join(name)) for name in names), default=5)
    image_width = max(5, min(needed, max(rest - _NEAREST_GOOD_MIN, rest // 2)))
    good_width = rest - image_width
    table = Table(title=title, show_lines=False)
    table.add_column("image", no_wrap=True, max_width=image_width)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("norm.", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("nearest good", no_wrap=True, max_width=good_width)
    if with_defects:
        table.add_column("nearest defect", no_wrap=True, max_width=defect_width)
    for result, name in zip(shown, names):
        verdict = "-" if result.is_anomaly is None else (Text("REJECT", "red") if result.is_anomaly
                                                         else Text("pass", "green"))
        good = result.nearest[0] if result.nearest else None
        defect = result.nearest_defect
        good_text = "-"
        if good:
            distance = f" {good.distance:.3f}"
            good_name = printable(Path(good.path).name)
            good_text = shorten_middle(good_name, good_width - len(distance), head_share=0) + distance
        defect_text = "-"
        if defect:
            distance = f" {defect.distance:.3f}"
            defect_name = printable(defect.defect_type or "untyped")
            defect_text = shorten_middle(defect_name, defect_width - len(distance)) + distance
        mark = EXEMPLAR_MARK if result.path in held else ""
        table.add_row(fit_path(name, image_width - len(mark)) + mark, f"{result.score:.4f}",
                      "-" if result.normalised_score is None else f"{result.normalised_score:.3f}", verdict,
                      good_text, *((defect_text,) if with_defects else ()))
    console.print(table)
    # the score and the nearest exemplars' distances are on different scales unless the mode scores whole images
    console.print("score: " + ("mean distance to the nearest good exemplars, by whole-image vector"
                               if image_mode else "anomaly score (patch level; higher = more anomalous)"),
                  highlight=False)
    console.print("norm.: the score normalised, threshold at 0.5", highlight=False)
    console.print("nearest: exemplar file, whole-image vector distance"
                  + ("" if image_mode else " (not the score's scale)"), highlight=False)
    if held:
        ids = sorted(set(held.values()))
        console.print(f"*: is exemplar {_id_list(ids)} of the index (same file or vector): scored against "
                      "itself, its score says nothing", highlight=False)
    if shown and all(result.is_anomaly is None for result in shown):
        console.print("not calibrated: run simsearch calibrate for verdicts and normalised scores")
    if limit is not None and len(results) > limit:
        console.print(f"... and {len(results) - limit} more (use --json for all)")


def _id_list(ids: Sequence[int]) -> str:
    return ", ".join(map(str, ids)) if len(ids) <= 4 else f"{', '.join(map(str, ids[:3]))} and {len(ids) - 3} more"


def print_info(folder: Path, description: dict) -> None:
    """A readable summary of an index (ExemplarIndex.describe())."""
    table = Table(title=f"index {printable(folder)}", show_header=False)
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
        ("defect types", ", ".join(f"{printable(k)}: {v}" for k, v in description["defect_types"].items()) or "-"),
        *((("defect coherence", f"{description['defect_coherence']:.2f} (weight of the contrast ratio)"),)
          if "defect_coherence" in description else ()),
        *((("defect weight", f"{description['defect_weight']['weight']:g}: {description['defect_weight']['reason']}"),)
          if "defect_weight" in description else ()),
        *((f"search {role}", kind["summary"]) for role, kind in description.get("index_kinds", {}).items()
          if kind.get("vectors")),
        ("threshold", _threshold_text(description.get("threshold"), description.get("generation"))),
        ("format", f"version {description['format_version']}, generation {description['generation']}"),
        ("data root", description.get("data_root") or "-"),  # where the exemplars' files are (paths follow it)
        ("size on disk", "-" if description.get("bytes") is None else human_size(description["bytes"])),
        ("updated", description.get("updated") or "-"),  # the last save, not now
    ]
    for row in rows:
        table.add_row(*(printable(cell) for cell in row))
    console.print(table)
    for exemplar in description.get("exemplars", []):
        defect_type = printable(exemplar["defect_type"] or "-")
        console.print(f"{exemplar['id']:>6}  {exemplar['label']:<6}  {defect_type:<14}  {printable(exemplar['path'])}",
                      highlight=False, markup=False)


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
    text += f" {'+'.join(config['layers'])}" if config.get("layers") else ""
    size = config.get("image_size")
    if isinstance(size, list) and len(size) == 2:  # a kept aspect ratio: say the input is not square
        text += f", input {size[0]}x{size[1]} px"
    elif isinstance(size, int):
        text += f", input {size} px"
    return text


def _threshold_text(record: dict | None, generation: int | None = None) -> str:
    threshold = as_threshold(record)
    if threshold is None:
        return "none (run `simsearch calibrate`)"
    text = f"{threshold.value:.6g} ({threshold.policy})"
    if threshold.generation is not None and generation is not None and threshold.generation < generation:
        text += (f"; calibrated on generation {threshold.generation}, the index is at {generation}: exemplars "
                 "added or removed since are not in it (run `simsearch calibrate` again)")
    return text


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
            console.print("recall by defect type: "
                          + ", ".join(f"{printable(k)} {v:.2f}" for k, v in data["recall_by_type"].items()))
    for line in type_accuracy_lines(data):
        console.print(line, highlight=False)


def type_accuracy_lines(data: dict) -> list[str]:
    """The predicted defect type's accuracy in words: over which defects, and which were not counted and why."""
    counts = data.get("type_counts")
    if not counts:
        return []
    if counts["predicted"]:
        lines = [f"defect type named right: {data['type_accuracy']:.3f} ({counts['right']}/{counts['predicted']} "
                 "defects given a type)"]
    else:
        lines = ["defect type named right: n/a (no defect of a type the index holds was given a type)"]
    if counts["no_prediction"]:
        lines.append(f"  not counted: {counts['no_prediction']} defect(s) given no type (nearer a good exemplar "
                     "than any defect exemplar)")
    if counts["type_not_in_index"]:
        types = ", ".join(printable(name) for name in data.get("unknown_types", []))
        lines.append(f"  not counted: {counts['type_not_in_index']} defect(s) of types the index holds no "
                     f"exemplar of ({types})")
    return lines


def _ratio(part: int, whole: int) -> str:
    """'0.950 (19/20)', or 'n/a (0/0)'."""
    return f"{part / whole:.3f} ({part}/{whole})" if whole else f"n/a ({part}/{whole})"


def print_calibration(calibration: Threshold, index: Path) -> None:
    """The chosen threshold, why, and its metrics on the calibration set."""
    metrics = calibration.metrics
    console.print(Text.assemble((f"threshold {calibration.value:.6g}", "bold"),
                                f" ({calibration.policy}) stored in {index}"))
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
