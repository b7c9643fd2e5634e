"""The Ray executor: `Inspector.fit` and `Inspector.iter_score` on a Ray cluster, for sets too large for one machine.

`RayExecutor.map_batches(job, paths)` cuts the paths into the job's batches and hands them, in turn, to a fixed
pool of Ray actors, each holding one copy of the job (its model, and a GPU where the cluster has them); the driver
takes the outputs back in input order. The job is the one this process would run (`simsearch.embed.jobs.EmbedJob`,
`simsearch.inspector.ScoreJob`), so there is no second copy of `fit` here:

- `Inspector(...).fit(good, executor=RayExecutor(...))`: actors embed; the driver adds the vectors to one
  ExemplarIndex in the same chunks and order as in one process, so the patch coreset and every id are the same.
- `inspector.iter_score(paths, executor=RayExecutor(...))`: actors open the saved index and score; results come back
  as `ScoreResult.to_dict` records (`ScoreResult.from_dict`), maps left on the workers.

Images and the index folder must be readable at the same path on every node (a shared file system).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from simsearch.data.executors import Batch, BatchJob, Executor, batch_size_of, read_batch, register_executor
from simsearch.data.images import ImageLike
from simsearch.errors import InputError, SimsearchError

R = TypeVar("R")
CONNECT_TIMEOUT_S = 5.0  # for a cluster's address to answer at all
IN_FLIGHT_PER_WORKER = 2  # batches queued on each actor: one running, one ready (bounds the object store)
INSTALL_HINT = "install it with `pip install simsearch[ray]`, or leave {param} out"


def import_ray() -> Any:
    """The `ray` module, or an InputError saying how to install it."""
    try:
        import ray
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


# -- the executor -------------------------------------------------------------------------------------
class BatchActor:
    """A Ray actor holding one copy of a job: `run` reads a batch of paths and returns the job's encoded output.
    The project's own errors come back as a `failure` record (Ray would pass them on as text only), which the
    driver raises again as the same class."""

    def __init__(self, job: BatchJob, device: str | None = None):
        self.job = job
        if device is not None:
            job.device = device  # else the job's model picks this worker's device (its GPU, if Ray gave one)

    def run(self, start: int, paths: list[str], names: list[str]) -> dict[str, Any]:
        """The batch of `paths` (absolute), numbered from `start`, reported under `names` (the caller's spelling)."""
        try:
            prepare = self.job.prepare if isinstance(self.job, BatchJob) else None
            batch = read_batch(paths, prepare, start)
            spelled = dict(zip(paths, names))
            for item in batch.items:
                item.path = names[item.position - start]
            batch.skipped = [(spelled.get(name, name), reason) for name, reason in batch.skipped]
            output = self.job(batch)
            return {"output": self.job.encode(output) if isinstance(self.job, BatchJob) else output}
        except SimsearchError as error:
            return {"failure": {"module": type(error).__module__, "name": type(error).__qualname__,
                                "message": error.message, "hint": error.hint, "parameter": error.parameter}}


def raise_failure(reply: dict[str, Any]) -> None:
    """Raise the worker's error a reply reports, if any."""
    if reply.get("failure") is not None:
        raise _rebuilt_error(reply["failure"])


def _rebuilt_error(record: dict[str, Any]) -> SimsearchError:
    """The worker's error again, of its class when that is one of simsearch's (else SimsearchError)."""
    cls: type[SimsearchError] = SimsearchError
    if record["module"].split(".")[0] == "simsearch":
        found = getattr(importlib.import_module(record["module"]), record["name"], None)
        if isinstance(found, type) and issubclass(found, SimsearchError):
            cls = found
    error = cls.__new__(cls)
    SimsearchError.__init__(error, record["message"], hint=record["hint"], parameter=record["parameter"])
    return error


@register_executor("ray")
class RayExecutor(Executor):
    """Batches on a pool of Ray actors, outputs in input order. `cluster`: one already joined (`ray_cluster`);
    else the cluster at `address` (None: a local Ray) is joined at first use with `workers` actors, and left at
    `close`. `device`: where the actors' models run (None: each actor's GPU if Ray gave it one, else its CPU).
    Inputs are paths, readable at the same path on every node."""

    def __init__(self, cluster: RayCluster | None = None, device: str | None = None, address: str | None = None,
                 workers: int | None = None):
        self.cluster = cluster
        self.device = device
        self.address, self.workers = address, workers
        self._stack = contextlib.ExitStack()
        self._joined_here = False
        self._pools: dict[str, list[Any]] = {}  # one pool per job: the model is built once per actor

    @classmethod
    def check_options(cls, address: str | None = None, workers: int | None = None, model: bool = False,
                      maps: bool = False) -> None:
        import_ray()  # before any work: a missing Ray is a one-line error with the install command
        if address:
            check_reachable(address)
        if model:
            raise InputError("{param:engine} ray scores an index ({param:index}); score a {param:model} with the "
                             "local engine")
        if maps:
            raise InputError("{param:heatmap} needs the local engine: with {param:engine} ray the maps stay on the "
                             "workers")

    def _cluster(self) -> RayCluster:
        if self.cluster is None:
            self.cluster = self._stack.enter_context(ray_cluster(self.address, self.workers))
            self._joined_here = True
        return self.cluster

    def _pool(self, job: Callable[[Batch], Any], batches: int) -> list[Any]:
        ray = import_ray()
        # equal jobs share their actors (fit embeds chunk after chunk with one pool); any other callable has its own
        key = (type(job).__qualname__ + repr(sorted((job.__getstate__() or {}).items())) if isinstance(job, BatchJob)
               else f"{type(job).__qualname__}:{id(job)}")
        if key not in self._pools:
            cluster = self._cluster()
            actor = ray.remote(num_cpus=cluster.cpus_per_worker, num_gpus=cluster.gpus_per_worker)(BatchActor)
            self._pools[key] = [actor.remote(job, self.device) for _ in range(min(cluster.workers, batches))]
        return self._pools[key]

    def map_batches(self, fn: Callable[[Batch], R], items: Sequence[ImageLike]) -> Iterator[R]:
        ray = import_ray()
        if not all(isinstance(item, (str, Path)) for item in items):
            raise InputError("the ray engine reads images from files: give paths, not images in memory",
                             hint="use the local engine for in-memory images", parameter="engine")
        names = [str(item) for item in items]
        paths = [os.path.abspath(item) for item in items]  # workers may run in another folder, or on another node
        size = batch_size_of(fn)
        starts = list(range(0, len(paths), size))
        if not starts:
            return
        actors = self._pool(fn, len(starts))
        decode = fn.decode if isinstance(fn, BatchJob) else (lambda output: output)
        pending: deque = deque()
        for number, start in enumerate(starts):
            pending.append(actors[number % len(actors)].run.remote(start, paths[start:start + size],
                                                                   names[start:start + size]))
            if len(pending) >= IN_FLIGHT_PER_WORKER * len(actors):
                yield decode(_output(ray.get(pending.popleft())))
        while pending:
            yield decode(_output(ray.get(pending.popleft())))

    def close(self) -> None:
        ray = import_ray()
        for actors in self._pools.values():
            for actor in actors:
                ray.kill(actor)
        self._pools.clear()
        self._stack.close()
        if self._joined_here:
            self.cluster, self._joined_here = None, False  # joined again at the next use


def _output(reply: dict[str, Any]) -> Any:
    raise_failure(reply)
    return reply["output"]


