"""registry:2's HTTP families, counted by one middleware around every request (bound to
each route's handler of the registry port, :mod:`dockyard.api.front`).

The ``handler`` label is the route's name as Distribution spells it (``blob``,
``blob_upload``, ``blob_upload_chunk``, ``manifest``, ``tags``, ``catalog``, ``base``),
given by the wiring's ``classify``; anything else is ``other``. The series of a path is
remembered (a bounded map). A request only appends its status, duration and sizes to its
series' list; the series adds the list up when :mod:`.batch` flushes (once a second, and
before a scrape): the histograms' buckets from the sorted values, the status counts with
a ``Counter``, loops that run in C. Done per request, the same additions cost some 5,000
instructions more per request (``bench.metrics_instructions``; docs/performance.md,
"metricscut").
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.observability import batch, metrics

# Paths whose series are remembered; the map starts over when full (blob and upload
# paths are all different, manifest and tag paths repeat).
KNOWN_PATHS = 4096
# Methods whose requests are counted as bodiless (registry clients send none with them).
BODYLESS = frozenset({"GET", "HEAD"})
# What a request that made no response (an error) gives as the bytes it sent.
NO_RESPONSE = -1


def add_up(histogram: batch.BatchedHistogram, values: Sequence[float]) -> None:
    """Observe ``values`` in ``histogram``: each bucket's count from the sorted values."""
    ordered = sorted(values)
    counts = histogram.counts
    below = 0
    for index, bound in enumerate(histogram.bounds):
        upto = bisect_right(ordered, bound)
        counts[index] += upto - below
        below = upto
    histogram.sum += sum(ordered)


class _Shared:
    """The children that the series of one handler share (whatever the method), and the
    byte totals that every series adds to."""

    def __init__(
        self, handler: str, received: batch.BatchedCounter, sent: batch.BatchedCounter
    ) -> None:
        self.in_flight = batch.gauge(metrics.HTTP_IN_FLIGHT.labels(handler))
        self.request_size = batch.BatchedHistogram(metrics.HTTP_REQUEST_SIZE.labels(handler))
        self.response_size = batch.BatchedHistogram(metrics.HTTP_RESPONSE_SIZE.labels(handler))
        self.received = received
        self.sent = sent


class _Series:
    """The requests of one handler and method: what each ended with, until flushed."""

    __slots__ = ("duration", "ended", "handler", "in_flight", "method", "requests", "shared")

    def __init__(self, handler: str, method: str, shared: _Shared) -> None:
        self.handler = handler
        self.method = method
        self.shared = shared
        self.in_flight: batch.LiveGauge = shared.in_flight
        self.duration = batch.BatchedHistogram(metrics.HTTP_DURATION.labels(handler, method))
        self.requests: dict[int, batch.BatchedCounter] = {}
        # (status, seconds, bytes received, bytes sent or NO_RESPONSE), one per request
        self.ended: list[tuple[int, float, int, int]] = []
        batch.register(self)

    def _counter(self, status: int) -> batch.BatchedCounter:
        counter = self.requests.get(status)
        if counter is None:
            child = metrics.HTTP_REQUESTS.labels(self.handler, str(status), self.method)
            counter = self.requests[status] = batch.BatchedCounter(child)
        return counter

    def flush(self) -> None:
        ended, self.ended = self.ended, []
        if ended:
            statuses, seconds, received, sent = zip(*ended, strict=True)
            for status, count in Counter(statuses).items():
                self._counter(status).pending += count
            add_up(self.duration, seconds)
            shared = self.shared
            add_up(shared.request_size, received)
            shared.received.pending += sum(received)
            answered = [size for size in sent if size != NO_RESPONSE]
            add_up(shared.response_size, answered)
            shared.sent.pending += sum(answered)
        for owned in self._owned():
            owned.flush()

    def drop(self) -> None:
        self.ended = []
        for owned in self._owned():
            owned.drop()

    def _owned(self) -> list[batch.Flushable]:
        """What this series adds to and writes out (the shared ones too: flushing them
        twice writes nothing twice)."""
        shared = self.shared
        return [
            self.duration,
            *self.requests.values(),
            shared.request_size,
            shared.response_size,
            shared.received,
            shared.sent,
        ]


class _Children:
    """The series of each handler and method, made on first use."""

    def __init__(self, classify: Callable[[str], str]) -> None:
        self._classify = classify
        self._received = batch.BatchedCounter(metrics.BYTES_RECEIVED)
        self._sent = batch.BatchedCounter(metrics.BYTES_SENT)
        self._per_handler: dict[str, _Shared] = {}
        self._series: dict[tuple[str, str], _Series] = {}
        # (path, method) -> series: the middleware reads it directly.
        self.by_path: dict[tuple[str, str], _Series] = {}

    def of_path(self, key: tuple[str, str]) -> _Series:
        """The series of a (path, method) not yet in :attr:`by_path`, remembered there."""
        path, method = key
        found = self.series(self._classify(path), method)
        if len(self.by_path) >= KNOWN_PATHS:
            self.by_path.clear()
        self.by_path[key] = found
        return found

    def series(self, handler: str, method: str) -> _Series:
        found = self._series.get((handler, method))
        if found is None:
            shared = self._per_handler.get(handler)
            if shared is None:
                shared = self._per_handler[handler] = _Shared(handler, self._received, self._sent)
            found = self._series[(handler, method)] = _Series(handler, method, shared)
        return found


def _fields_readable() -> bool:
    """Whether this aiohttp keeps a plain response's body and chunking in ``_body`` and
    ``_chunked`` (all 3.x releases do), which :func:`body_bytes` then reads directly."""
    probe = web.Response(body=b"ab")
    return getattr(probe, "_body", None) == b"ab" and getattr(probe, "_chunked", None) is False


FIELDS_READABLE = _fields_readable()


def body_bytes(response: web.StreamResponse) -> int:
    """Bytes of a response's body (sendfile's are its Content-Length); a HEAD sends none.

    A plain ``web.Response`` with bytes, the usual small answer, is measured from its
    fields: its ``body`` and ``chunked`` properties cost twice as much (some 130 ns of a
    ``GET /v2/``), its ``content_length`` four times (an abstract-class check)."""
    if type(response) is web.Response:
        if FIELDS_READABLE:
            body = response._body
            if type(body) is bytes and not response._chunked:
                return len(body)
        elif not response.chunked and type(response.body) is bytes:
            return len(response.body)
    length = response.content_length
    return length if length is not None else response.body_length


def metrics_middleware(classify: Callable[[str], str]) -> Middleware:
    """Counts every request with registry:2's families; ``classify(path)`` names the
    handler.

    This runs for every request, so it is written for few calls: the series is looked up
    in the path map directly, a ``GET`` or ``HEAD`` is taken to have no body (its
    ``Content-Length`` is not parsed), and what the request ended with is appended to
    the series' list, added up when flushed."""
    children = _Children(classify)
    by_path = children.by_path

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        method = request.method
        key = (request.path, method)
        series = by_path.get(key) or children.of_path(key)
        in_flight = series.in_flight
        in_flight.value += 1
        started = perf_counter()
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            seconds = perf_counter() - started
            in_flight.value -= 1
            received = 0 if method in BODYLESS else request.content_length or 0
            if response is None:
                sent = NO_RESPONSE
            else:
                sent = 0 if method == "HEAD" else body_bytes(response)
            series.ended.append((status, seconds, received, sent))

    return middleware
