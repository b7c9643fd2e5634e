"""Embedding and scoring as Ray Data jobs, for sets too large for one machine.

The driver lists the files and cuts them into the embedder's batches; a Ray Data job hands each batch to one
of a fixed pool of actors (each holds the model, and a GPU where the cluster has them), and the driver
streams the actors' rows back in input order:

- `build_index`: actors embed; the driver adds the vectors to one ExemplarIndex in the same chunks, in the
  same order, as `Inspector.fit`, so the patch coreset and every id come out as in one process.
- `iter_score`: actors load the saved index and score; the driver gets ScoreResults (maps left on the
  workers; scores, verdicts, nearest exemplars and boxes come back).

Images and the index folder must be readable at the same path on every node (a shared file system).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from simsearch.data.datasets import Sample
from simsearch.data.images import ImageError
from simsearch.data.inputs import OnSkip, Progress, iter_items
from simsearch.embed import Embedder, embedder_from_config
from simsearch.errors import InputError, SimsearchError
from simsearch.index.exemplar_index import ExemplarIndex, NewExemplar
from simsearch.inspector import FIT_CHUNK, Inspector
from simsearch.runtime import check_batch_size
from simsearch.score.modes import get_scoring_mode
from simsearch.score.results import Box, Neighbour, ScoreResult

if TYPE_CHECKING:
    import pyarrow

CONNECT_TIMEOUT_S = 5.0  # for a cluster's address to answer at all
MAX_BLOCKS = 1000  # blocks of the list of batches (more only add scheduling overhead)
INSTALL_HINT = "install it with `pip install simsearch[ray]`, or leave {param} out"


def import_ray() -> Any:
    """The `ray` module (with Ray Data), or an InputError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError("the ray engine needs Ray, which is not installed", hint=INSTALL_HINT,
                         parameter="engine") from None
    return ray


@dataclass(frozen=True)
class RayCluster:
    """The Ray cluster a job runs on and how its actor pool is sized."""

    workers: int  # actors, each holding one copy of the model
    cpus_per_worker: float
    gpus_per_worker: float  # 0 on a cluster without GPUs
    address: str | None  # None: a local Ray started for this job


@contextlib.contextmanager
def ray_cluster(address: str | None = None, workers: int | None = None, num_cpus: int | None = None,
                object_store_memory: int | None = None) -> Iterator[RayCluster]:
    """Join the Ray cluster at `address`, or (None) start a local one for the time of the block, with
    `num_cpus` CPUs (default: this machine's, and at least `workers`) and `object_store_memory` bytes
    (default: Ray's). `workers` actors (default: one per GPU, else one per CPU) will hold the model; on a
    cluster with GPUs each gets a GPU (or a share of one when there are more workers than GPUs)."""
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, not {workers}", hint="pass a positive {param}",
                         parameter="workers")
    ray = import_ray()
    started_here = False
    if not ray.is_initialized():
        options: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        try:
            if address:
                check_reachable(address)
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=num_cpus or max(workers or 1, os.cpu_count() or 1),
                         object_store_memory=object_store_memory, **options)
        except InputError:
            raise
        except Exception as error:  # Ray raises ConnectionError, RuntimeError or ValueError here
            where = f"join the Ray cluster at {address}" if address else "start a local Ray"
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise InputError(f"cannot {where}: {reason}",
                             hint="start one with `ray start --head` and pass its address in {param}"
                             if address else "check that this machine can start Ray (`ray start --head`)",
                             parameter="address") from None
        started_here = True
    try:
        yield _size_pool(ray.cluster_resources(), workers, address)
    finally:
        if started_here:
            ray.shutdown()


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse at once a HOST:PORT (or ray://HOST:PORT) where nothing answers: Ray would retry for minutes."""
    if address in ("auto", "local"):
        return  # Ray looks for the cluster this node belongs to, and says so when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} is not auto, HOST:PORT or ray://HOST:PORT",
                         hint="give the head node's address in {param}, e.g. 10.0.0.5:6379", parameter="address")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise InputError(f"cannot join the Ray cluster at {address}: nothing answers there ({error.strerror or error})",
                         hint="start one with `ray start --head` and pass its address in {param}",
                         parameter="address") from None


def _size_pool(resources: dict[str, float], workers: int | None, address: str | None) -> RayCluster:
    gpus = float(resources.get("GPU", 0.0))
    cpus = float(resources.get("CPU", 0.0))
    count = workers or max(1, int(gpus) if gpus >= 1 else int(cpus))
    if gpus >= 1:
        return RayCluster(count, 1.0, min(1.0, gpus / count), address)
    if count > cpus:
        # actors that cannot be placed would wait forever: refuse instead
        raise InputError(f"{count} workers need {count} CPUs and the Ray cluster has {cpus:g}",
                         hint="ask for fewer in {param} or add nodes", parameter="workers")
    return RayCluster(count, 1.0, 0.0, address)


# -- the job ------------------------------------------------------------------------------------------
def _run_job(files: Sequence[str], batch_size: int, worker: type["Worker"], settings: dict[str, Any],
             cluster: RayCluster) -> Iterator["pyarrow.Table"]:
    """Stream the workers' output tables, in input order. Each input row is one batch of paths, so each
    worker call embeds exactly the batch the single-process path would. A worker's own error (a missing
    weights file, a damaged index) is raised here as the same error."""
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the coreset continues in input order, as in one process
    context.enable_progress_bars = False  # the caller shows one bar for the whole job
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes are for Ray's own progress bars
    batches = [{"start": start, "paths": [str(p) for p in files[start:start + batch_size]]}
               for start in range(0, len(files), batch_size)]
    if not batches:
        return
    # blocks of a few batches each, so that every worker gets some; no more workers than batches
    dataset = ray.data.from_items(batches, override_num_blocks=min(len(batches), MAX_BLOCKS)).map_batches(
        worker, fn_constructor_kwargs={"settings": settings}, batch_size=1, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=min(cluster.workers, len(batches))),
        num_cpus=cluster.cpus_per_worker,
        **({"num_gpus": cluster.gpus_per_worker} if cluster.gpus_per_worker else {}))
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        _raise_failure(table)
        yield table


class Worker:
    """A Ray actor: `setup` once, then `rows` for each batch of paths. The project's own errors come back as
    a `failure` row (Ray would pass them on as text only), which `_run_job` raises again as the same class."""

    def __init__(self, settings: dict[str, Any]):
        self.failure: SimsearchError | None = None
        try:
            self.setup(settings)
        except SimsearchError as error:  # reported with the first batch: Ray gives a failed start as text
            self.failure = error

    @staticmethod
    def columns() -> list[tuple[str, Any]]:
        """(name, pyarrow type) of each output column besides `failure`."""
        raise NotImplementedError

    def setup(self, settings: dict[str, Any]) -> None:
        raise NotImplementedError

    def rows(self, start: int, paths: list[str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def __call__(self, batch: "pyarrow.Table") -> "pyarrow.Table":
        import pyarrow as pa

        schema = pa.schema(self.columns() + [("failure", pa.string())])
        try:
            if self.failure is not None:
                raise self.failure
            rows = [row for start, paths in zip(batch.column("start").to_pylist(), batch.column("paths").to_pylist())
                    for row in self.rows(start, paths)]
        except SimsearchError as error:
            rows = [{"failure": json.dumps({"module": type(error).__module__, "name": type(error).__qualname__,
                                            "message": error.message, "hint": error.hint,
                                            "parameter": error.parameter})}]
        return pa.Table.from_pylist(rows, schema=schema)


def _raise_failure(table: "pyarrow.Table") -> None:
    """Raise the first worker error that `table` reports, if any."""
    failures = [f for f in table.column("failure").to_pylist() if f is not None]
    if failures:
        raise _rebuilt_error(failures[0])


def _rebuilt_error(failure: str) -> SimsearchError:
    """The worker's error again, of its class when that is one of simsearch's (else SimsearchError)."""
    record = json.loads(failure)
    cls: type[SimsearchError] = SimsearchError
    if record["module"].split(".")[0] == "simsearch":
        found = getattr(importlib.import_module(record["module"]), record["name"], None)
        if isinstance(found, type) and issubclass(found, SimsearchError):
            cls = found
    error = cls.__new__(cls)
    SimsearchError.__init__(error, record["message"], hint=record["hint"], parameter=record["parameter"])
    return error


def _read_batch(paths: Sequence[str]) -> tuple[list, dict[int, str]]:
    """The readable items of a batch, and for each unreadable one its position and the reason."""
    reasons: dict[str, str] = {}
    items = list(iter_items(list(paths), on_skip=lambda path, reason: reasons.setdefault(str(path), reason)))
    readable = {item.position for item in items}
    return items, {n: reasons.get(p, "unreadable") for n, p in enumerate(paths) if n not in readable}


def _absolute(path: str | Path | None) -> str | None:
    # workers may run in another folder (or on another node): give them the path from the root
    return None if path is None else str(Path(path).resolve())


def _runtime(embedder: Embedder, device: str | None) -> dict[str, Any]:
    # without a device the workers pick their own (the GPU Ray gave them, if any); the driver cuts the batches
    return {"batch_size": embedder.batch_size, **({"device": device} if device else {})}


# -- building -----------------------------------------------------------------------------------------
class EmbeddingWorker(Worker):
    """Holds one embedder: a batch of paths in, one row per path out (vectors as bytes, or why the file
    was skipped)."""

    @staticmethod
    def columns() -> list[tuple[str, Any]]:
        import pyarrow as pa
        return [("position", pa.int64()), ("error", pa.string()), ("sha256", pa.string()),
                ("image", pa.large_binary()), ("patches", pa.large_binary()), ("grid", pa.list_(pa.int32()))]

    def setup(self, settings: dict[str, Any]) -> None:  # config, weights, runtime
        self.embedder = embedder_from_config(settings["config"], weights=settings["weights"], **settings["runtime"])

    def rows(self, start: int, paths: list[str]) -> list[dict[str, Any]]:
        items, unreadable = _read_batch(paths)
        embeddings = self.embedder.embed([item.pixels for item in items]) if items else None
        by_position = {item.position: row for row, item in enumerate(items)}
        rows = []
        for offset in range(len(paths)):
            row = by_position.get(offset)
            if row is None:
                rows.append({"position": start + offset, "error": unreadable.get(offset)})
                continue
            patches = None if embeddings.patches is None else embeddings.patches[row]
            rows.append({"position": start + offset, "sha256": items[row].sha256(),
                         "image": embeddings.image[row].tobytes(),
                         "patches": None if patches is None else patches.tobytes(),
                         "grid": None if patches is None else list(patches.shape)})
        return rows


def embed_files(files: Sequence[str | Path], embedder: Embedder, cluster: RayCluster, device: str | None = None,
                on_progress: Progress | None = None,
                on_skip: OnSkip | None = None) -> Iterator[tuple[int, str, np.ndarray, np.ndarray | None]]:
    """(position, sha256, image vector, patch grid or None) of each readable file, in input order, embedded
    by the cluster's workers with a copy of `embedder` on `device` (None: each worker's GPU if Ray gave it
    one, else its CPU); unreadable files go to `on_skip`."""
    files = [str(f) for f in files]
    settings = {"config": embedder.config, "weights": _absolute(embedder.config.get("weights_path")),
                "runtime": _runtime(embedder, device)}
    names = ("position", "error", "sha256", "image", "patches", "grid")
    for table in _run_job(files, check_batch_size(embedder.batch_size), EmbeddingWorker, settings, cluster):
        for position, error, sha, image, patches, grid in zip(*(table.column(n).to_pylist() for n in names)):
            if error is not None:
                if on_skip:
                    on_skip(files[position], error)
            else:
                yield (position, sha, np.frombuffer(image, np.float32),
                       None if patches is None else np.frombuffer(patches, np.float32).reshape(grid))
        if on_progress:
            on_progress(table.num_rows)


def build_index(good: Sequence[str | Path], defects: Sequence[Sample], embedder: Embedder, cluster: RayCluster,
                mode: str = "patch", k: int = 1, coreset_ratio: float = 0.1, device: str | None = None,
                on_progress: Progress | None = None, on_skip: OnSkip | None = None,
                index_kind: Any = None) -> Inspector:
    """An Inspector fitted on good image files and typed defect samples, embedded on the cluster; the index is
    the one `Inspector(embedder, mode, k, coreset_ratio, index_kind).fit(good, defects)` builds."""
    scoring_mode = get_scoring_mode(mode)
    if scoring_mode.needs_patches and not embedder.supports_patches:
        raise InputError("this embedder gives no patch vectors: use mode='image'")
    if not good:
        raise ImageError("no good images found to build the index from")
    index = ExemplarIndex(embedder.dim, embedder.config, embedder.fingerprint, mode, k, coreset_ratio,
                          index_kind=index_kind)
    sources = [(str(p), "good", None) for p in good] + [(str(s.path), "defect", s.defect_type) for s in defects]
    chunk: list[tuple[NewExemplar, np.ndarray, np.ndarray | None]] = []
    chunk_key = None

    def flush() -> None:
        if chunk:
            patches = None if chunk[0][2] is None else np.stack([c[2] for c in chunk])
            index.add([c[0] for c in chunk], np.stack([c[1] for c in chunk]), patches)
            chunk.clear()

    for position, sha, image, patches in embed_files([s[0] for s in sources], embedder, cluster, device,
                                                     on_progress, on_skip):
        # the single-process fit adds good images FIT_CHUNK inputs at a time, then all the defects at once
        key = position // FIT_CHUNK if position < len(good) else "defect"
        if key != chunk_key:
            flush()
            chunk_key = key
        path, label, defect_type = sources[position]
        # a defect's patches too: those least like the good bank join the defect patch bank
        chunk.append((NewExemplar(path, label, defect_type, sha), image, patches))
    flush()
    counts = index.counts()
    if counts["good"] == 0:
        raise ImageError(f"none of the {len(good)} good inputs could be read as an image")
    if defects and counts["defect"] == 0:
        raise ImageError("nothing to add: no readable defect image")
    index.apply_index_kinds()  # trained once on the whole bank, as the single-process fit does
    inspector = Inspector(embedder, mode, k, coreset_ratio, index_kind=index_kind)
    inspector.index_ = index
    if scoring_mode.needs_patches:  # the heatmaps' fixed scale, as the single-process fit sets it
        index.map_scale = inspector._map_scale()
    return inspector


# -- scoring ------------------------------------------------------------------------------------------
class ScoringWorker(Worker):
    """Holds one Inspector loaded from the index folder: a batch of paths in, one row per path out (the
    `score --json` record, the exact score and normalised score, or why the file was skipped)."""

    @staticmethod
    def columns() -> list[tuple[str, Any]]:
        import pyarrow as pa
        return [("position", pa.int64()), ("error", pa.string()), ("score", pa.float64()),
                ("normalised_score", pa.float64()), ("record", pa.string())]

    def setup(self, settings: dict[str, Any]) -> None:  # index, weights, runtime, n_nearest
        self.inspector = Inspector.load(settings["index"], weights=settings["weights"],
                                        n_nearest=settings["n_nearest"], **settings["runtime"])

    def rows(self, start: int, paths: list[str]) -> list[dict[str, Any]]:
        reasons: dict[str, str] = {}
        # the records carry boxes, not maps: only the rejects' maps are made (for their boxes)
        results = iter(self.inspector.score(paths, on_skip=lambda path, reason: reasons.setdefault(str(path), reason),
                                            maps="needed"))
        rows = []
        for offset, path in enumerate(paths):
            if path in reasons:
                rows.append({"position": start + offset, "error": reasons[path]})
                continue
            result = next(results)
            rows.append({"position": start + offset, "score": result.score,
                         "normalised_score": result.normalised_score,
                         "record": json.dumps(result.to_dict(), ensure_ascii=False)})
        return rows


def iter_score(inspector: Inspector, index: str | Path, files: Sequence[str | Path], cluster: RayCluster,
               weights: str | Path | None = None, device: str | None = None, on_progress: Progress | None = None,
               on_skip: OnSkip | None = None) -> Iterator[ScoreResult]:
    """Score files on the cluster against the index saved in `index` (already opened here as `inspector`,
    which sets the batch size, the embedder and n_nearest), one ScoreResult per readable file in input
    order, on `device` as in `embed_files`. Results carry no maps (boxes, verdicts and neighbours are there).
    The index folder, `weights` and the files must be readable at the same paths on every node."""
    files = [str(f) for f in files]
    embedder = inspector.embedder
    settings = {"index": str(Path(index).resolve()), "weights": _absolute(weights),
                "runtime": _runtime(embedder, device), "n_nearest": inspector.n_nearest}
    for table in _run_job(files, check_batch_size(embedder.batch_size), ScoringWorker, settings, cluster):
        columns = (table.column(n).to_pylist() for n in ("position", "error", "score", "normalised_score", "record"))
        for position, error, score, normalised, record in zip(*columns):
            if error is not None:
                if on_skip:
                    on_skip(files[position], error)
                continue
            yield _result_from_record(json.loads(record), score, normalised)
        if on_progress:
            on_progress(table.num_rows)


def _neighbour(record: dict[str, Any]) -> Neighbour:
    return Neighbour(record["id"], record["path"], record["label"], record["type"], record["distance"])


def _result_from_record(record: dict[str, Any], score: float, normalised: float | None) -> ScoreResult:
    """A ScoreResult from a worker's `to_dict` record, with the score and normalised score unrounded."""
    return ScoreResult(path=record["path"], score=score, nearest=[_neighbour(n) for n in record["nearest"]],
                       nearest_defect=_neighbour(record["nearest_defect"]) if record["nearest_defect"] else None,
                       normalised_score=normalised, is_anomaly=record["is_anomaly"],
                       boxes=[Box(**box) for box in record["boxes"]], predicted_type=record["predicted_type"])
