"""The `simsearch` command: parses arguments, calls the library, prints tables or JSON."""

from __future__ import annotations

import contextlib
import importlib
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from simsearch.cli.app import app
from simsearch.cli.options import (
    AddressOption,
    AspectOption,
    BatchSizeOption,
    DataRootOption,
    DeviceOption,
    EngineOption,
    FoldOption,
    IndexArgument,
    IndexBatchSizeOption,
    IndexOption,
    JsonOption,
    ModelOption,
    WaitOption,
    WeightsOption,
    WorkersOption,
    WriterIndexOption,
)
from simsearch.cli.output import (
    DEFAULT_INDEX,
    SkippedInputs,
    chosen_index,
    console,
    err_console,
    fail,
    handle_errors,
    human_size,
    print_score_table,
    progress_bar,
    warn,
)


def _wait(wait: Optional[float]) -> dict:
    return {} if wait is None else {"wait": wait}




def _check_engine(engine: str, address: Optional[str], workers: Optional[int], model: bool = False,
                  maps: bool = False) -> None:
    from simsearch.data.executors import executor_class, executor_names

    known = executor_names()
    if engine not in known:
        fail(f"--engine must be {', '.join(known[:-1])} or {known[-1]}, not {engine!r}")
    executor_class(engine).check_options(address=address, workers=workers, model=model, maps=maps)


def _executor(engine: str, address: Optional[str], workers: Optional[int],
              device: Optional[str]) -> contextlib.AbstractContextManager:
    """The executor --engine names (with --engine ray: its cluster, actors and device), or None: this process;
    closed after the command's work."""
    from simsearch.data.executors import executor_class

    return executor_class(engine).from_options(address=address, workers=workers, device=device) \
        or contextlib.nullcontext()


def _load_inspector(index: Path, weights: Optional[Path], batch_size: Optional[int] = None,
                    device: Optional[str] = None, compiled: Optional[bool] = None, data_root: Optional[Path] = None):
    from simsearch.inspector import Inspector
    from simsearch.runtime import Runtime
    return Inspector.load(index, weights=weights, data_root=data_root,
                          runtime=Runtime.of(batch_size=batch_size, device=device, compiled=compiled))


def _load_model(model: Path, weights: Optional[Path], batch_size: Optional[int] = None,
                device: Optional[str] = None):
    """Any saved Scorer: a baseline folder or an index folder."""
    from simsearch.loading import load
    from simsearch.runtime import Runtime
    return load(model, weights=weights, **Runtime.of(batch_size=batch_size, device=device).embedder_options())




def _drop_non_utf8_names(files: list, skips: SkippedInputs) -> list:
    """Files an index can hold: a name that is not UTF-8 is skipped with a warning (the catalogue stores names
    as UTF-8 text), and the command ends with exit code 6 after the others are added."""
    from simsearch.data.images import has_utf8_name, shown_path
    kept = []
    for item in files:
        path = getattr(item, "path", item)
        if has_utf8_name(path):
            kept.append(item)
        else:
            skips(shown_path(path), "the file name is not valid UTF-8, which an index stores; rename the file "
                                    "(e.g. convmv -f latin1 -t utf8)")
    return kept




def _labelled_samples(dataset: Path, fold: Optional[str]):
    from simsearch.data.datasets import discover_samples
    from simsearch.data.splits import parse_fold, select_fold
    samples = discover_samples(dataset)
    return select_fold(samples, *parse_fold(fold)) if fold else samples


def _exemplar_inputs(good: List[Path], fold: Optional[str], as_json: bool) -> tuple[list, list, list]:
    """build-index's good files, labelled defect samples and what was left out (said unless --json)."""
    from simsearch.data.datasets import exemplar_selection

    if fold:
        if len(good) != 1:
            fail("--fold takes one labelled folder")
        return [s.path for s in _labelled_samples(good[0], fold) if not s.is_defect], [], []
    # a labelled folder (good/ + defect/, a labels CSV) gives defect exemplars too, never good ones;
    # masks, and in a labelled folder what is neither good nor defect (extra/, uncertain/), are left out
    found, left_out = exemplar_selection(good)
    for skipped in left_out if not as_json else []:
        warn(f"left out {skipped.count} image(s) under {skipped.where}: {skipped.reason}")
    return [s.path for s in found if not s.is_defect], [s for s in found if s.is_defect], left_out


@app.command("build-index")
def build_index(
    good: List[Path] = typer.Argument(..., help="Folders or files of good images (an MVTec category: train/good)."),
    defects: Optional[Path] = typer.Option(None, "--defects",
                                           help="Folder of defect images; subfolders name types."),
    out: Path = typer.Option(DEFAULT_INDEX, "--out", "-o", help="Index folder to write."),
    mode: Optional[str] = typer.Option(None, "--mode", help="patch (PatchCore-style), open-set (patch, weighed by "
                                       "the labelled defects where they help out of fold), image (whole-image "
                                       "vectors) or contrast. Default: open-set with defects, else patch."),
    backbone: str = typer.Option("resnet18", "--backbone", help="Any torchvision classification model (resnet18, "
                                 "wide_resnet50_2, efficientnet_b0, convnext_tiny, vit_b_16...), or KIND:ARG."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Comma-separated graph node names to take patch "
                                         "features from (default: the family's, e.g. layer2,layer3 for ResNets)."),
    embedder: Optional[str] = typer.Option(None, "--embedder", help="KIND:ARG, e.g. triplet-ae:CHECKPOINT "
                                           "(overrides --backbone)."),
    weights: Optional[Path] = WeightsOption,
    no_pretrained: bool = typer.Option(False, "--no-pretrained", help="Random weights (for tests and demos only)."),
    image_size: int = typer.Option(224, "--image-size", help="Input size in pixels: the short side with --aspect "
                                   "keep, else the square's side."),
    aspect: str = AspectOption,
    k: int = typer.Option(1, "--k", help="Neighbours averaged into a score."),
    coreset_ratio: float = typer.Option(0.1, "--coreset-ratio", help="Fraction of good patches kept (patch mode)."),
    fold: Optional[str] = typer.Option(None, "--fold", help="DIR is a labelled set: index the good images of "
                                                            "this stratified part, I/N (e.g. 1/3)."),
    batch_size: int = BatchSizeOption,
    device: Optional[str] = DeviceOption,
    force: bool = typer.Option(False, "--force", help="Replace an index already in --out (its ids are not reused)."),
    compile_copy: bool = typer.Option(True, "--compile/--no-compile", help="Keep a compiled copy of the embedder "
                                      "with the index (ONNX: scoring on a CPU needs no torch; `simsearch export` "
                                      "makes one later)."),
    index_kind: List[str] = typer.Option([], "--index-kind", help="FAISS index for the vectors: auto (exact up to "
                                         "200k vectors, IVF above, IVF-PQ from 5M), or a factory string (Flat, HNSW32, "
                                         "IVF4096,Flat, IVF65536,PQ48); ROLE=KIND for one store (good, defect, "
                                         "patches). Repeatable."),
    wait: Optional[float] = WaitOption,
    engine: str = EngineOption,
    address: Optional[str] = AddressOption,
    workers: Optional[int] = WorkersOption,
    as_json: bool = JsonOption,
) -> None:
    """Build an index of good exemplars (and optional defect exemplars) from image folders."""
    with handle_errors():
        from simsearch.data.callbacks import Callbacks
        from simsearch.inspector import build_index as build
        from simsearch.runtime import Runtime
        from simsearch.score.modes import SCORING_MODES

        if mode is not None and mode not in SCORING_MODES:
            fail(f"--mode must be one of {', '.join(sorted(SCORING_MODES))}, not {mode!r}")
        _check_engine(engine, address, workers)
        skips = SkippedInputs()
        good_files, defect_samples, left_out = _build_inputs(good, defects, out, fold, as_json, skips)
        backbone = embedder or backbone
        with _executor(engine, address, workers, device) as executor:
            summary = build(good_files, out, defect_samples, mode=mode, weights=weights, pretrained=not no_pretrained,
                            embedder=backbone if ":" in backbone else f"backbone:{backbone}",
                            image_size=image_size, aspect=aspect, k=k, coreset_ratio=coreset_ratio,
                            layers=[n.strip() for n in layers.split(",") if n.strip()] if layers else None,
                            index_kind=index_kind, runtime=Runtime.of(batch_size=batch_size, device=device),
                            force=force, compile=compile_copy, executor=executor,
                            callbacks=Callbacks(skip=skips, stage=progress_bar), **_wait(wait))
        summary |= {"skipped": skips.records,
                    "left_out": [{"where": e.where, "count": e.count, "reason": e.reason} for e in left_out]}
        if as_json:
            typer.echo(json.dumps(summary))
        else:
            _print_built(summary, out, show_reason=bool(defect_samples))
        skips.finish()


def _build_inputs(good: List[Path], defects: Optional[Path], out: Path, fold: Optional[str], as_json: bool,
                  skips: SkippedInputs) -> tuple[list, list, list]:
    """build-index's good image files, defect samples (labelled among `good`, and under --defects) and what was
    left out; a missing folder, or no good image, is refused here."""
    from simsearch.data.datasets import typed_defect_samples

    for path in good + ([defects] if defects else []):
        if not path.exists():
            fail(f"{path}: no such file or folder")
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file; choose a folder for --out")
    good_files, labelled_defects, left_out = _exemplar_inputs(good, fold, as_json)
    good_files = _drop_non_utf8_names(good_files, skips)
    if not good_files:
        fail(f"no good images found in {', '.join(map(str, good))} (looked for .bmp .png .jpg .jpeg .tif "
             ".tiff outside defect/ng/bad/anomaly folders)")
    extra_defects = typed_defect_samples([defects]) if defects else []
    if defects and not extra_defects:
        fail(f"no images found in {defects}")
    return good_files, _drop_non_utf8_names(labelled_defects + extra_defects, skips), left_out


def _print_built(summary: dict, out: Path, show_reason: bool) -> None:
    from simsearch.data.transforms import size_text

    types = ", ".join(f"{kind} {count}" for kind, count in sorted(summary["defect_types"].items()))
    size = summary["embedder"].get("image_size")
    console.print(f"built {out}: {summary['good']} good, {summary['defect']} defect exemplars"
                  + (f" (types: {types})" if types else "") + ", "
                  f"{summary['dim']}-d vectors, mode {summary['mode']}"
                  + (f", input {size_text(tuple(size))}" if isinstance(size, list) else "")
                  + (f", {summary['patches']} patches in the bank" if summary.get("patches") else "")
                  + f", in {summary['seconds']:.1f} s, {human_size(summary['bytes'])} on disk")
    if summary["mode_reason"] and show_reason:  # a mode chosen for the user's labels: say which and why
        err_console.print(f"mode {summary['mode']}: {summary['mode_reason']}", highlight=False, markup=False,
                          soft_wrap=True)
    for role, kind in summary["index_kinds"].items():
        if kind["vectors"] and (kind["kind"] != "Flat" or kind.get("note")):
            console.print(f"search {role}: {escape(kind['summary'])}")


@app.command()
def score(
    paths: List[Path] = typer.Argument(..., help="Images or folders to score."),
    index: Optional[Path] = IndexOption,
    weights: Optional[Path] = WeightsOption,
    as_json: bool = JsonOption,
    heatmap: Optional[Path] = typer.Option(None, "--heatmap", help="Write an overlay PNG per image to this folder."),
    batch_size: Optional[int] = IndexBatchSizeOption,
    device: Optional[str] = DeviceOption,
    model: Optional[Path] = ModelOption,
    engine: str = EngineOption,
    address: Optional[str] = AddressOption,
    workers: Optional[int] = WorkersOption,
    results_path: Optional[Path] = typer.Option(None, "--results", help="Write every result to this file (then "
                                                "no table is printed)."),
    results_format: str = typer.Option("jsonl", "--results-format", help="jsonl (the --json records) or parquet "
                                       "(the same keys as columns; needs pyarrow)."),
    compiled: Optional[bool] = typer.Option(None, "--compiled/--no-compiled", help="Run the index's compiled "
                                            "embedder (ONNX Runtime, no torch to load: the same vectors). Default: "
                                            "on a CPU, where the index has one."),
    data_root: Optional[Path] = DataRootOption,
) -> None:
    """Score images against an index (or a saved baseline): anomaly score, verdict, nearest exemplars."""
    with handle_errors():
        from simsearch.data.callbacks import Callbacks
        from simsearch.data.images import list_image_files
        from simsearch.engines.results import ResultsWriter
        from simsearch.report.overlay import write_overlays

        _check_score_options(engine, address, workers, model, heatmap, results_path, results_format)
        writer = ResultsWriter(results_path, results_format) if results_path else None  # checked before the work
        files = list_image_files(paths)
        if not files:
            fail(f"no images found in {', '.join(map(str, paths))}")
        index = chosen_index(index) if model is None else None
        inspector = _load_model(model, weights, batch_size, device) if model is not None \
            else _load_inspector(index, weights, batch_size, device, compiled, data_root)
        _check_heatmap(inspector, heatmap, index)
        skips = SkippedInputs(stream_json=as_json)  # a {"path", "error"} line per unreadable input
        with contextlib.ExitStack() as stack:
            if writer is not None:
                stack.enter_context(writer)
            advance = stack.enter_context(progress_bar("scoring", len(files), enabled=len(files) > 1))
            executor = stack.enter_context(_executor(engine, address, workers, device))
            # maps for every image only where overlays are drawn; else the rejects' boxes need theirs
            # a baseline from --model scores in this process (the Scorer contract has no executor)
            scored = inspector.iter_score(files, Callbacks(progress=advance, skip=skips),
                                          maps="all" if heatmap is not None else "needed",
                                          **({"executor": executor} if executor is not None else {}))
            if heatmap is not None:
                scored = write_overlays(scored, heatmap, inspector.heatmap_scale_)
            results = _emit(scored, as_json, writer)
        if writer is not None:
            if not as_json:
                console.print(f"wrote {writer.count} result(s) to {results_path} ({results_format})")
        elif not as_json:
            index_ = getattr(inspector, "index_", None)  # a baseline (--model) has no exemplars
            print_score_table(results, exemplars=None if index_ is None else index_.exemplars,
                              image_mode=index_ is not None and index_.mode == "image")
        skips.finish()


def _check_heatmap(inspector, heatmap: Optional[Path], index: Optional[Path]) -> None:
    if heatmap is None:
        return
    if getattr(inspector, "index_", None) is None:
        fail("--heatmap needs an index; a --model baseline gives CAM boxes in the JSON instead")
    if inspector.heatmap_scale_ is None:
        warn(f"{index} has no heatmap scale (built before it was stored) and no threshold: each heatmap is "
             "stretched on its own, so a good part looks red too; run `simsearch calibrate`")


def _emit(scored, as_json: bool, writer) -> list:
    """Each result as a JSON line (--json) and into --results' file (kept on disk, not in memory: a Ray job may
    score millions); without --results, the results for the table."""
    results = []
    for result in scored:
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        if writer is not None:
            writer.write(result)
        else:
            results.append(result)
    return results


def _check_score_options(engine: str, address: Optional[str], workers: Optional[int], model: Optional[Path],
                         heatmap: Optional[Path], results_path: Optional[Path], results_format: str) -> None:
    from simsearch.engines.results import check_results_format

    _check_engine(engine, address, workers, model=model is not None, maps=heatmap is not None)
    check_results_format(results_format)
    if results_path is None and results_format != "jsonl":
        fail("--results-format is for --results: name the file to write")


@app.command()
def add(
    paths: List[Path] = typer.Argument(..., help="Images or folders to add (without --index: the index folder "
                                                 "first, as before)."),
    index: Optional[Path] = WriterIndexOption,
    label: str = typer.Option("good", "--label", help="good or defect."),
    defect_type: Optional[str] = typer.Option(None, "--type", help="Defect type (with --label defect)."),
    weights: Optional[Path] = WeightsOption,
    allow_duplicates: bool = typer.Option(False, "--allow-duplicates", help="Add files the index already holds "
                                                                           "(same sha256) again."),
    wait: Optional[float] = WaitOption,
    as_json: bool = JsonOption,
) -> None:
    """Add exemplars to an index without rebuilding it (saved atomically; a failure changes nothing)."""
    with handle_errors():
        from simsearch.data.callbacks import Callbacks
        from simsearch.data.images import list_image_files, shown_path
        from simsearch.inspector import describe_label, held_otherwise

        index, paths = _index_and_rest(index, paths, "images or folders to add")
        label, defect_type = _label_and_type(label, defect_type)
        skips = SkippedInputs()
        files = _drop_non_utf8_names(list_image_files(paths), skips)
        if not files:
            fail(f"no images found in {', '.join(map(shown_path, paths))}"
                 + (" with UTF-8 names" if skips.records else ""))
        inspector = _load_inspector(index, weights)
        with progress_bar("embedding", len(files), enabled=len(files) > 1) as advance:
            ids, skipped = inspector.add_saved(index, files, label, defect_type=defect_type,
                                               allow_duplicates=allow_duplicates,
                                               callbacks=Callbacks(progress=advance, skip=skips), **_wait(wait))
        relabels = held_otherwise(inspector.index_, skipped, label)
        same = [path for path in skipped if path not in relabels]
        if same and not as_json:
            warn(f"skipped {len(same)} file(s) the index already holds (same sha256), e.g. {same[0]}; "
                 "--allow-duplicates adds them again")
        for path, held in list(relabels.items())[:5] if not as_json else []:
            kind = f"{label}" + (f" --type {defect_type}" if defect_type else "")
            warn(f"skipped {path}: the index holds it as exemplar {held.id} ({describe_label(held)}); to hold it "
                 f"as {label} instead: simsearch relabel {held.id} --label {kind} --index {index}")
        if len(relabels) > 5 and not as_json:
            warn(f"... and {len(relabels) - 5} more file(s) held under another label (see --json)")
        if as_json:
            typer.echo(json.dumps({"added": ids, "label": label, "type": defect_type, "skipped_duplicates": skipped,
                                   "skipped": skips.records}
                                  | ({"held_otherwise": [{"path": path, **held.to_dict()}  # only where some are
                                                         for path, held in relabels.items()]} if relabels else {})))
        else:
            console.print(f"added {len(ids)} {label} exemplar(s) to {index}"
                          + (f": ids {_id_ranges(ids)}" if ids else ""))
        skips.finish()


def _label_and_type(label: str, defect_type: Optional[str]) -> tuple[str, Optional[str]]:
    """--label as stored (good or defect) and --type, checked before any image is embedded."""
    from simsearch.data.datasets import check_defect_type, normalise_label

    label = normalise_label(label)
    if defect_type and label != "defect":
        fail("--type is only for --label defect")
    return label, check_defect_type(defect_type, "type")


@app.command()
def relabel(
    exemplar_id: int = typer.Argument(..., help="The exemplar's id (see `simsearch info --exemplars`)."),
    label: str = typer.Option(..., "--label", help="The new label: good or defect."),
    defect_type: Optional[str] = typer.Option(None, "--type", help="Defect type (with --label defect)."),
    index: Optional[Path] = WriterIndexOption,
    weights: Optional[Path] = WeightsOption,
    wait: Optional[float] = WaitOption,
    as_json: bool = JsonOption,
) -> None:
    """Change an exemplar's label (and type): its file is embedded again and added back with a new id, in one
    transaction under the index lock."""
    with handle_errors():
        from simsearch.inspector import describe_label

        if index is None:
            fail("name the index with --index FOLDER")
        label, defect_type = _label_and_type(label, defect_type)
        inspector = _load_inspector(index, weights)
        old, new = inspector.relabel_saved(index, exemplar_id, label, defect_type, **_wait(wait))
        if as_json:
            typer.echo(json.dumps({"old": old.to_dict(), "new": new.to_dict(), "changed": old.id != new.id}))
        elif old.id == new.id:
            console.print(f"exemplar {old.id} is already {escape(describe_label(old))}; nothing changed")
        else:
            console.print(f"relabelled exemplar {old.id} ({escape(describe_label(old))}) as "
                          f"{escape(describe_label(new))}: id {old.id} -> {new.id}")


def _index_and_rest(index: Optional[Path], arguments: list, what: str) -> tuple[Path, list]:
    """--index and the arguments, or (the old form, kept working) the first argument as the index."""
    if index is not None:
        return index, list(arguments)
    if len(arguments) < 2:
        fail(f"name the index with --index FOLDER, then the {what}")
    return Path(arguments[0]), list(arguments[1:])


def _id_ranges(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) if len(ids) <= 6 else f"{ids[0]}..{ids[-1]}"


@app.command()
def remove(
    arguments: List[str] = typer.Argument(None, help="Exemplar ids (see `simsearch info --exemplars`); without "
                                                     "--index, the index folder first, as before.", metavar="[IDS]..."),
    index: Optional[Path] = WriterIndexOption,
    path: Optional[List[str]] = typer.Option(None, "--path", help="Remove exemplars added from this path."),
    data_root: Optional[Path] = DataRootOption,
    wait: Optional[float] = WaitOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove exemplars by id or source path (saved atomically)."""
    with handle_errors():
        from simsearch.index.persist import remove_saved

        arguments = list(arguments or [])
        if index is None and arguments:
            index, arguments = Path(arguments[0]), arguments[1:]
        if index is None:
            fail("name the index with --index FOLDER, then the exemplars to remove: ids, or --path")
        bad = [text for text in arguments if not text.strip().lstrip("-").isdigit()]
        if bad:
            fail(f"{bad[0]!r} is not an exemplar id (a whole number, see `simsearch info --exemplars`)")
        ids = [int(text) for text in arguments]
        if not ids and not path:
            fail("name the exemplars to remove: ids, or --path")
        chosen = remove_saved(index, ids, path or [], data_root=data_root, **_wait(wait))
        if as_json:
            typer.echo(json.dumps({"removed": chosen}))
        else:
            console.print(f"removed {len(chosen)} exemplar(s) from {index}")


def _argument_or_option(folder: Optional[Path], index: Optional[Path]) -> Path:
    """The index named as the argument or by --index (the same one if both), else the default."""
    if folder is not None and index is not None and folder != index:
        fail(f"two indexes named: {folder} and --index {index}; give one")
    return chosen_index(index or folder)


@app.command()
def info(
    folder: Optional[Path] = IndexArgument,
    index: Optional[Path] = WriterIndexOption,
    exemplars: bool = typer.Option(False, "--exemplars", help="List every exemplar."),
    data_root: Optional[Path] = DataRootOption,
    as_json: bool = JsonOption,
) -> None:
    """Describe an index: embedder, mode, counts, threshold, size."""
    with handle_errors():
        from simsearch.cli.output import print_info
        from simsearch.index import ExemplarIndex
        from simsearch.score.modes import describe_index

        index = _argument_or_option(folder, index)
        store = ExemplarIndex.load(index, data_root=data_root)
        description = {"index": str(index), **describe_index(store)}  # the mode's own fields included
        if exemplars:
            description["exemplars"] = [e.to_dict() for e in sorted(store.exemplars.values(), key=lambda e: e.id)]
        if as_json:
            typer.echo(json.dumps(description, ensure_ascii=False))
        else:
            print_info(index, description)


@app.command()
def export(
    folder: Optional[Path] = IndexArgument,
    index: Optional[Path] = WriterIndexOption,
    weights: Optional[Path] = WeightsOption,
    wait: Optional[float] = WaitOption,
    as_json: bool = JsonOption,
) -> None:
    """Keep a compiled copy (ONNX) of the index's embedder with it: scoring on a CPU then needs no torch."""
    with handle_errors():
        from simsearch.inspector import export_compiled

        index = _argument_or_option(folder, index)
        record = export_compiled(index, weights=weights, **_wait(wait))
        if as_json:
            typer.echo(json.dumps({"index": str(index), **record}))
        else:
            console.print(f"{escape(str(index))}: compiled copy ({record['format']}, largest difference from torch "
                          f"{record['max_difference']:.2g})")


@app.command()
def calibrate(
    valdir: Optional[Path] = typer.Argument(None, help="Labelled folder or MVTec tree; none: the index's own "
                                                       "good exemplars, left out one at a time."),
    index: Optional[Path] = IndexOption,
    policy: Optional[str] = typer.Option(None, "--policy", help="f1 (default with 5+ defects; fewer: good-only at "
                                                                "1% false alarms, or the strictest rate under 99 "
                                                                "goods), target-recall, max-false-alarm, good-only."),
    target_recall: Optional[float] = typer.Option(None, "--target-recall", help="Catch at least this share of "
                                                                               "defects, e.g. 0.99."),
    max_false_alarm: Optional[float] = typer.Option(None, "--max-false-alarm", help="Reject at most this share "
                                                                                   "of good parts, e.g. 0.01."),
    fold: Optional[str] = FoldOption,
    weights: Optional[Path] = WeightsOption,
    data_root: Optional[Path] = DataRootOption,
    wait: Optional[float] = WaitOption,
    as_json: bool = JsonOption,
) -> None:
    """Choose and store the reject threshold, and show what it gives."""
    with handle_errors():
        from simsearch.cli.output import print_calibration
        from simsearch.data.callbacks import Callbacks
        from simsearch.decide.policies import policy_for_target
        from simsearch.inspector import calibrate_index

        if target_recall is not None and max_false_alarm is not None:
            fail("give --target-recall or --max-false-alarm, not both")
        chosen_policy, target = policy_for_target(policy, {"target_recall": target_recall,
                                                           "max_false_alarm": max_false_alarm})
        samples = _labelled_samples(valdir, fold) if valdir is not None else None
        index = chosen_index(index)
        inspector = _load_inspector(index, weights, data_root=data_root)
        total = len(samples) if samples is not None else inspector.index_.counts()["good"]
        skips = SkippedInputs()
        with progress_bar("scoring", total) as advance:
            calibration = calibrate_index(inspector, samples, chosen_policy, target,
                                          source=f"{valdir}" + (f" fold {fold}" if fold else "") if valdir else "",
                                          callbacks=Callbacks(progress=advance, skip=skips, note=warn))
        if max_false_alarm is not None and calibration.target is not None and calibration.target > max_false_alarm:
            warn(f"--max-false-alarm {max_false_alarm:g} needs more good images than the set holds: the strictest "
                 f"rate they allow, {calibration.target:.3g}, was used (add good images for a stricter one)")
        if inspector.save_threshold(index, **_wait(wait)):
            warn(f"{index} was changed by another writer while calibrating; the threshold was chosen on the "
                 "exemplars read before: calibrate again to include the change")
        if as_json:
            typer.echo(json.dumps({**calibration.to_record(), "skipped": skips.records}))
        else:
            print_calibration(calibration, index)
        skips.finish()


@app.command()
def evaluate(
    dataset: Path = typer.Argument(..., help="Labelled folder (good/defect) or MVTec category / test tree."),
    index: Optional[Path] = IndexOption,
    fold: Optional[str] = FoldOption,
    weights: Optional[Path] = WeightsOption,
    as_json: bool = JsonOption,
    batch_size: Optional[int] = IndexBatchSizeOption,
    device: Optional[str] = DeviceOption,
    report: bool = typer.Option(False, "--report", help="Also write run.json and report.html to --run-dir."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default artifacts/runs/<time>)."),
    model: Optional[Path] = ModelOption,
) -> None:
    """Score a labelled set and report image AUROC, the confusion at the threshold (and pixel AUROC where masks
    exist), for an index or a saved baseline (--model)."""
    with handle_errors():
        from simsearch.cli.output import print_evaluation
        from simsearch.data.callbacks import Callbacks
        from simsearch.evaluate.evaluation import evaluate_dataset

        samples = _labelled_samples(dataset, fold)
        if model is None:
            index = chosen_index(index)
        scorer = _load_model(model, weights, batch_size, device) if model is not None \
            else _load_inspector(index, weights, batch_size, device)
        skips = SkippedInputs()
        with progress_bar("scoring", len(samples)) as advance:
            evaluation = evaluate_dataset(scorer, samples, Callbacks(progress=advance, skip=skips, note=warn))
        written = None
        if report or run_dir is not None:
            from simsearch.report.writers import report_evaluation
            written = report_evaluation(evaluation, scorer, dataset, fold, model or index, run_dir)
        if as_json:
            typer.echo(json.dumps({**evaluation.to_dict(), "skipped": skips.records,
                                   **({"report": str(written)} if written else {})}))
        else:
            print_evaluation(evaluation)
            if written:
                console.print(f"report: {written}")
        skips.finish()


@app.command()
def demo(
    out: Path = typer.Option(Path("artifacts/demo"), "--out", help="Where the demo's images and index go."),
    as_json: bool = JsonOption,
) -> None:
    """No set-up: make a small synthetic inspection set, index it, score it, print the AUROC."""
    with handle_errors():
        from simsearch.cli.demo import run_demo
        from simsearch.cli.output import print_evaluation
        from simsearch.data.callbacks import Callbacks

        with progress_bar("demo", None) as advance:
            evaluation = run_demo(out, Callbacks(progress=advance))
        if as_json:
            typer.echo(json.dumps(evaluation.to_dict()))
            return
        print_score_table(evaluation.results, title="demo: synthetic test images")
        print_evaluation(evaluation)
        console.print(f"index and images under {out}")


# the other command modules add theirs to `app` as they are imported (in this order in --help)
for _module in ("serve", "report", "train", "compare", "verify"):
    importlib.import_module(f"simsearch.cli.{_module}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
