"""Where batches run: an executor maps a batch function over inputs and yields its outputs in input order.

`Inspector.fit` and `Inspector.iter_score` take one (`executor=`); the work they hand it is a `BatchJob`
(`simsearch.embed.jobs.EmbedJob`, `simsearch.inspector.ScoreJob`). The executor reads the inputs, in the job's
batches and with the job's `prepare` step; the job does the rest (embed, score) and, where its output crosses a
process, `encode`s it there and `decode`s it here.

- `LocalExecutor`: this process; loader threads read and prepare the next batches while the job runs.
- `RayExecutor` (`simsearch.engines.ray_engine`): a pool of Ray actors, each holding a copy of the job.

A new way to run beyond one process is one `Executor` class with `@register_executor(name)`; `get_executor(name)`
finds it (and imports the modules named in `EXECUTOR_MODULES` for those registered outside this one). Its
classmethods `check_options` (refuse at once what it cannot run) and `from_options` (built from a command's
options) are all a face needs: no face branches on an executor's name.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar

import numpy as np

from simsearch.data.callbacks import Callbacks
from simsearch.data.images import ImageError, ImageLike, input_name
from simsearch.data.inputs import Item, iter_batches, read_item
from simsearch.errors import InputError, UnknownComponentError
from simsearch.runtime import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, check_batch_size

R = TypeVar("R")


@dataclass
class Batch:
    """One batch as an executor hands it to a job: the readable inputs, read (and prepared), and the unreadable
    ones as (name, reason), both in input order."""

    items: list[Item]
    skipped: list[tuple[str, str]] = field(default_factory=list)


class BatchJob(ABC, Generic[R]):
    """What an executor maps over inputs: `__call__(batch) -> R`, once per batch.

    A job must pickle (an executor beyond this process ships it to its workers once, and each worker calls its
    copy for many batches): hold what it needs to rebuild its model (`__getstate__` leaves out the live one) and
    build it on the first call. `encode` turns an output into plain values where it crosses a process and
    `decode` turns them back (by default, the output as it is)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    device: str | None = None  # where a copy in another process runs (None: that worker's GPU if it has one)

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """Per-image work done on the loader's threads (e.g. resizing); by default none."""
        return pixels

    @abstractmethod
    def __call__(self, batch: Batch) -> R:
        """The output for one batch."""

    def stages(self) -> tuple[Callable[[Batch], Any], Callable[[Any], R]] | None:
        """(first, then) where `__call__` is then(first(batch)) and `then` may run beside the next batch's
        `first` (e.g. the search beside the next forward pass: FAISS and NumPy release the GIL); None: one stage."""
        return None

    def encode(self, output: R) -> Any:
        return output

    def decode(self, encoded: Any) -> R:
        return encoded


class Executor(ABC):
    """Runs a batch function over inputs: `map_batches(fn, items)` yields fn's output for each batch of `items`,
    in input order. `fn` is a `BatchJob` (its batch size and prepare step) or any callable taking a `Batch`."""

    name: str = ""

    @abstractmethod
    def map_batches(self, fn: Callable[[Batch], R], items: Sequence[ImageLike]) -> Iterator[R]:
        """fn(batch) for each batch of `items`, in input order."""

    @classmethod  # noqa: B027 (most executors take every option)
    def check_options(cls, address: str | None = None, workers: int | None = None, model: bool = False,
                      maps: bool = False) -> None:
        """Refuse at once, before any work, what this executor cannot run: a cluster `address` or a count of
        `workers` (None: not given), scoring an in-memory `model` (not an index), every score's `maps` brought
        back here; or a cluster it cannot reach. By default it takes them all."""

    @classmethod
    def from_options(cls, address: str | None = None, workers: int | None = None,
                     device: str | None = None) -> "Executor | None":
        """The executor a command runs on, from the command's options (None: the caller's own, in this process)."""
        return cls(address=address, workers=workers, device=device)

    def close(self) -> None:  # noqa: B027 (most executors hold nothing)
        """Let go of what the executor holds (workers, threads); it may be used again after."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


EXECUTORS: dict[str, type[Executor]] = {}
# executors registered outside this module: imported the first time their name is asked for
EXECUTOR_MODULES = {"ray": "simsearch.engines.ray_engine"}


def register_executor(name: str) -> Callable[[type[Executor]], type[Executor]]:
    """Class decorator: make an executor available by `name` (`get_executor`, the CLI's --engine)."""
    def decorate(cls: type[Executor]) -> type[Executor]:
        cls.name = name
        EXECUTORS[name] = cls
        return cls
    return decorate


def executor_names() -> list[str]:
    """The names executors are registered (or will be, on first use) under."""
    return sorted(set(EXECUTORS) | set(EXECUTOR_MODULES))


def executor_class(name: str) -> type[Executor]:
    """The executor class registered as `name`; an UnknownComponentError names the known ones."""
    if name not in EXECUTORS and name in EXECUTOR_MODULES:
        importlib.import_module(EXECUTOR_MODULES[name])
    if name not in EXECUTORS:
        raise UnknownComponentError(f"unknown executor {name!r}",
                                    hint=f"use one of {', '.join(executor_names())} in {{param}}", parameter="engine")
    return EXECUTORS[name]


def get_executor(name: str, **options: Any) -> Executor:
    """The executor registered as `name`, built with `options`; an UnknownComponentError names the known ones."""
    return executor_class(name)(**options)


def batch_size_of(fn: Callable[[Batch], Any]) -> int:
    """The batch size a job asks for (a plain callable gets the default)."""
    return check_batch_size(getattr(fn, "batch_size", DEFAULT_BATCH_SIZE))


def prepare_of(fn: Callable[[Batch], Any]) -> Callable[[np.ndarray], np.ndarray] | None:
    return getattr(fn, "prepare", None)


def read_batch(sources: Sequence[ImageLike], prepare: Callable[[np.ndarray], np.ndarray] | None = None,
               start: int = 0) -> Batch:
    """A batch read in this thread (in a worker of another process), its items numbered from `start`: every
    unreadable input is skipped with its reason, none is an error here (the driver decides: `check_readable`)."""
    batch = Batch([])
    for offset in range(len(sources)):
        try:
            item = read_item(sources, offset, prepare)
        except ImageError as error:
            batch.skipped.append((input_name(sources[offset], start + offset), str(error)))
            continue
        item.position = start + offset
        batch.items.append(item)
    return batch


def check_readable(count: int, readable: int, first_reason: str | None) -> None:
    """The rule every executor keeps (that of `iter_readable_images`): a single unreadable input is an error with
    its reason, and so is a list where none is readable."""
    if count == 1 and readable == 0 and first_reason is not None:
        raise ImageError(first_reason)
    if count and not readable:
        raise ImageError(f"none of the {count} inputs could be read as an image")


@register_executor("local")
class LocalExecutor(Executor):
    """This process: `workers` loader threads read and prepare the next batches while the job runs on the
    current one (0: everything in the calling thread). Batches are filled with readable inputs."""

    def __init__(self, workers: int = DEFAULT_WORKERS):
        self.workers = int(workers)

    @classmethod
    def check_options(cls, address: str | None = None, workers: int | None = None, model: bool = False,
                      maps: bool = False) -> None:
        if address is not None or workers is not None:  # a cluster's options: this process has no cluster
            others = " or ".join(name for name in executor_names() if name != cls.name)
            raise InputError(f"{{param:address}} and {{param:workers}} are for {{param:engine}} {others}")

    @classmethod
    def from_options(cls, address: str | None = None, workers: int | None = None,
                     device: str | None = None) -> None:
        return None  # the caller's own: its runtime sizes the loader threads and the device

    def map_batches(self, fn: Callable[[Batch], R], items: Sequence[ImageLike]) -> Iterator[R]:
        skipped: list[tuple[str, str]] = []
        skips = Callbacks(skip=lambda name, reason: skipped.append((name, reason)))
        batches = iter_batches(items, batch_size_of(fn), skips, prepare_of(fn), self.workers)
        stages = fn.stages() if isinstance(fn, BatchJob) and self.workers > 0 else None
        if stages is None:
            for batch in _with_skips(batches, skipped):
                yield fn(batch)
            return
        first, then = stages
        # `then` of one batch runs in a second thread while `first` runs on the next: outputs keep their input
        # order, errors surface here
        with ThreadPoolExecutor(1, thread_name_prefix="simsearch-then") as pool:
            pending: Future | None = None
            for batch in _with_skips(batches, skipped):
                ready = pool.submit(then, first(batch))
                if pending is not None:
                    yield pending.result()
                pending = ready
            if pending is not None:
                yield pending.result()


def _with_skips(batches: Iterator[list[Item]], skipped: list[tuple[str, str]]) -> Iterator[Batch]:
    """Batches with the inputs skipped since the last one (`skipped` is filled by the loader as it reads)."""
    for loaded in batches:
        batch = Batch(loaded, skipped[:])
        skipped.clear()
        yield batch
    if skipped:  # unreadable inputs after the last readable one
        yield Batch([], skipped[:])


__all__ = ["EXECUTORS", "Batch", "BatchJob", "Executor", "LocalExecutor", "check_readable", "executor_class",
           "executor_names", "get_executor", "read_batch", "register_executor"]
