"""Micro-batching: concurrent score requests are queued and run through the model together, one batch at a
time in a worker thread, which raises throughput under load and adds at most max_wait_ms when idle."""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

from simsearch.errors import SimsearchError

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatcherUnavailable(SimsearchError):
    """The batcher takes no more work now: stopped, or its queue is full (the service answers 503)."""

    category = "unavailable"


class QueueFullError(BatcherUnavailable):
    """More requests are waiting than the batcher accepts."""


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future


class MicroBatcher(Generic[Item, Result]):
    """Feeds `run(items) -> results` (one result per item, same order) with batches of queued items."""

    def __init__(self, run: Callable[[Sequence[Item]], Sequence[Result]], max_batch: int = 16,
                 max_wait_ms: float = 2.0, max_queue: int = 256,
                 on_batch: Callable[[int, float], None] | None = None):
        self._run = run
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max_queue
        # called with (batch size, seconds) after each model call: the service's metrics, not a Callbacks hook
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._accepting = False
        # One model thread: batches run one after another, so they never compete for the cores.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsearch-model")

    @property
    def running(self) -> bool:
        return self._accepting and self._worker is not None and not self._worker.done()

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._accepting = True
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="simsearch-batcher")

    async def submit(self, item: Item) -> Result:
        """Queue one item and wait for its result (or its batch's exception)."""
        if not self.running:
            raise BatcherUnavailable("the server is not accepting scores (starting or shutting down)")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFullError(f"{self._queue.qsize()} requests are already waiting for the model")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(item, future))
        return await future

    async def _collect(self) -> tuple[list[_Pending], bool]:
        """The next batch, and whether stop() was asked for (the stop marker is None in the queue)."""
        first = await self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            try:  # everything already queued joins at once; then wait briefly for stragglers
                pending = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if pending is None:
                return batch, True
            batch.append(pending)
        return batch, False

    async def _work(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = await self._collect()
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        live = [p for p in batch if not p.future.done()]  # a cancelled request needs no model time
        if not live:
            return
        start = loop.time()
        try:
            results = await loop.run_in_executor(self._executor, self._run, [p.item for p in live])
            if len(results) != len(live):
                raise RuntimeError(f"the model gave {len(results)} results for {len(live)} inputs")
        except Exception as error:  # every request of the batch gets the error; the worker lives on
            for pending in live:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        if self._on_batch is not None:
            self._on_batch(len(live), loop.time() - start)
        for pending, result in zip(live, results):
            if not pending.future.done():
                pending.future.set_result(result)

    async def stop(self) -> None:
        """Score everything already queued, then stop the worker and its thread."""
        if self.running:
            self._accepting = False
            await self._queue.put(None)
            await self._worker
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
