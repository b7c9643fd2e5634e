"""The micro-batcher: concurrent items share model calls, results keep their order, errors reach callers."""

from __future__ import annotations

import asyncio
import time

import pytest

from simsearch.service.batcher import BatcherUnavailable, MicroBatcher, QueueFullError


def _run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_items_are_batched_and_answered_in_order():
    calls = []

    def double(items):
        calls.append(list(items))
        time.sleep(0.02)
        return [2 * i for i in items]

    async def main():
        batcher = MicroBatcher(double, max_batch=4, max_wait_ms=50)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.stop()
        return results

    assert _run(main()) == [2 * i for i in range(10)]
    assert sum(len(c) for c in calls) == 10 and max(len(c) for c in calls) == 4
    assert len(calls) < 10  # batched, not one call per item


def test_a_lone_request_waits_at_most_max_wait():
    async def main():
        batcher = MicroBatcher(lambda items: list(items), max_batch=16, max_wait_ms=20)
        batcher.start()
        start = time.perf_counter()
        assert await batcher.submit("x") == "x"
        elapsed = time.perf_counter() - start
        await batcher.stop()
        return elapsed

    assert _run(main()) < 1.0


def test_batch_error_goes_to_each_caller_and_the_worker_survives():
    def fail_on_negative(items):
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return list(items)

    async def main():
        batcher = MicroBatcher(fail_on_negative, max_batch=1, max_wait_ms=0)
        batcher.start()
        with pytest.raises(ValueError, match="negative"):
            await batcher.submit(-1)
        assert await batcher.submit(3) == 3
        await batcher.stop()

    _run(main())


def test_full_queue_and_stopped_batcher_refuse():
    async def main():
        batcher = MicroBatcher(lambda items: (time.sleep(0.2), list(items))[1], max_batch=1, max_wait_ms=0,
                               max_queue=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the worker holds item 0; the queue is empty again
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError):
            await batcher.submit(3)
        await batcher.stop()  # finishes what was queued
        assert [await first] + [await q for q in queued] == [0, 1, 2]
        with pytest.raises(BatcherUnavailable):
            await batcher.submit(4)

    _run(main())
