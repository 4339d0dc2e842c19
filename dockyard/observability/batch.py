"""Metric updates gathered in the process, written to the shared value files once a second.

In multiprocess mode every update of a prometheus-client value writes its file (under a
lock): about 1 µs per value, a dozen values per request. On the request path Dockyard only
adds to plain numbers here (a bisect and two additions for a histogram), and
:func:`flushing` writes them out every :data:`FLUSH_INTERVAL` and when the worker stops;
the worker that answers a scrape flushes first. A scrape therefore sees the other workers'
counts at most a second late. Everything runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_left
from collections.abc import AsyncIterator
from typing import Any, Protocol

FLUSH_INTERVAL = 1.0


class BatchedHistogram:
    """Observations of one histogram child, kept as bucket counts until flushed.

    ``counts`` and ``sum`` are public so that a hot path can add to them inline
    (``counts[bisect_left(bounds, value)] += 1``) instead of calling :meth:`observe`."""

    __slots__ = ("_child", "bounds", "counts", "sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        # prometheus-client keeps a child's upper bounds (ending with +Inf), one value per
        # bucket (not cumulative) and the sum: the same layout, added to in one go.
        self.bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def drop(self) -> None:
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def flush(self) -> None:
        counts = self.counts
        if not any(counts):
            return
        buckets = self._child._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
                counts[index] = 0
        self._child._sum.inc(self.sum)
        self.sum = 0.0


class BatchedCounter:
    """Increments of one counter child; a hot path may add to ``pending`` itself."""

    __slots__ = ("_child", "pending")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.pending += amount

    def drop(self) -> None:
        self.pending = 0.0

    def flush(self) -> None:
        if self.pending:
            self._child.inc(self.pending)
            self.pending = 0.0


class LiveGauge:
    """A gauge this process moves up and down (requests in flight), written when flushed;
    ``with gauge:`` counts what runs inside, and a hot path may add to ``value`` itself."""

    __slots__ = ("_child", "_written", "value")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.value = 0.0
        self._written = 0.0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def __enter__(self) -> None:
        self.value += 1

    def __exit__(self, *_exc: object) -> None:
        self.value -= 1

    def drop(self) -> None:
        self.value = self._written = 0.0

    def flush(self) -> None:
        if self.value != self._written:
            self._child.set(self.value)
            self._written = self.value


class Flushable(Protocol):
    def flush(self) -> None: ...

    def drop(self) -> None:
        """Forget what was gathered since the last flush, without writing it."""


_pending: list[Flushable] = []


def register(batched: Flushable) -> None:
    """Flush ``batched`` with the others (an object that keeps several children's counts)."""
    _pending.append(batched)


def histogram(child: Any) -> BatchedHistogram:
    batched = BatchedHistogram(child)
    _pending.append(batched)
    return batched


def counter(child: Any) -> BatchedCounter:
    batched = BatchedCounter(child)
    _pending.append(batched)
    return batched


def gauge(child: Any) -> LiveGauge:
    batched = LiveGauge(child)
    _pending.append(batched)
    return batched


def flush() -> None:
    """Write everything gathered so far to the metric values."""
    for batched in _pending:
        batched.flush()


def drop_pending() -> None:
    """Forget everything gathered so far (``serve``'s warm-up in the parent: the workers
    inherit these objects and must not each write what the parent measured)."""
    for batched in _pending:
        batched.drop()


async def flushing(_app: object) -> AsyncIterator[None]:
    """An aiohttp cleanup context: flush every second while the app runs, and at its end."""

    async def repeat() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            flush()

    task = asyncio.create_task(repeat())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    flush()
