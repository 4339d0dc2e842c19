"""registry:2's HTTP families, counted by one middleware around every request (bound to
each route's handler of the registry port, :mod:`dockyard.api.front`).

The ``handler`` label is the route's name as Distribution spells it (``blob``,
``blob_upload``, ``blob_upload_chunk``, ``manifest``, ``tags``, ``catalog``, ``base``),
given by the wiring's ``classify``; anything else is ``other``. The metric children are
looked up once per label set and kept, and updated in the process (:mod:`.batch`); the
series of a path is remembered too (a bounded map), so a request costs a dictionary
lookup and a few additions.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from time import perf_counter
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.observability import batch, metrics

# Paths whose series are remembered; the map starts over when full (blob and upload
# paths are all different, manifest and tag paths repeat).
KNOWN_PATHS = 4096
# Methods whose requests are counted as bodiless (registry clients send none with them).
BODYLESS = frozenset({"GET", "HEAD"})


class _Series:
    """The batched children that requests of one handler and method update."""

    __slots__ = ("duration", "handler", "in_flight", "method", "request_size", "requests",
                 "response_size")  # fmt: skip

    def __init__(self, handler: str, method: str, shared: tuple[Any, Any, Any]) -> None:
        self.handler = handler
        self.method = method
        self.in_flight: batch.LiveGauge = shared[0]
        self.request_size: batch.BatchedHistogram = shared[1]
        self.response_size: batch.BatchedHistogram = shared[2]
        self.duration = batch.histogram(metrics.HTTP_DURATION.labels(handler, method))
        self.requests: dict[int, batch.BatchedCounter] = {}

    def finish(
        self,
        status: int,
        seconds: float,
        received: int,
        sent: int | None,
        received_total: batch.BatchedCounter,
        sent_total: batch.BatchedCounter,
    ) -> None:
        """One request ended: ``sent`` is None when no response was made (an error).
        The byte totals of every handler are added to as well.

        The histograms and counters are added to inline: this runs for every request."""
        duration = self.duration
        duration.counts[bisect_left(duration.bounds, seconds)] += 1
        duration.sum += seconds
        counter = self.requests.get(status)
        if counter is None:
            child = metrics.HTTP_REQUESTS.labels(self.handler, str(status), self.method)
            counter = self.requests[status] = batch.counter(child)
        counter.pending += 1
        size = self.request_size
        if received:
            size.counts[bisect_left(size.bounds, received)] += 1
            size.sum += received
            received_total.pending += received
        else:
            size.counts[0] += 1
        if sent is not None:
            size = self.response_size
            if sent:
                size.counts[bisect_left(size.bounds, sent)] += 1
                size.sum += sent
                sent_total.pending += sent
            else:
                size.counts[0] += 1


class _Children:
    """The series of each handler and method, made on first use."""

    def __init__(self, classify: Callable[[str], str]) -> None:
        self._classify = classify
        self._per_handler: dict[str, tuple[Any, Any, Any]] = {}
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
                shared = self._per_handler[handler] = (
                    batch.gauge(metrics.HTTP_IN_FLIGHT.labels(handler)),
                    batch.histogram(metrics.HTTP_REQUEST_SIZE.labels(handler)),
                    batch.histogram(metrics.HTTP_RESPONSE_SIZE.labels(handler)),
                )
            found = self._series[(handler, method)] = _Series(handler, method, shared)
        return found


def body_bytes(response: web.StreamResponse) -> int:
    """Bytes of a response's body (sendfile's are its Content-Length); a HEAD sends none.

    A plain ``web.Response`` with bytes, the usual small answer, is measured directly:
    its ``content_length`` property costs twice as much (an abstract-class check)."""
    if type(response) is web.Response and not response.chunked:
        body = response.body
        if type(body) is bytes:
            return len(body)
    length = response.content_length
    return length if length is not None else response.body_length


def metrics_middleware(classify: Callable[[str], str]) -> Middleware:
    """Counts every request with registry:2's families; ``classify(path)`` names the
    handler.

    This runs for every request, so it is written for few calls: the series is looked up
    in the path map directly, a ``GET`` or ``HEAD`` is taken to have no body (its
    ``Content-Length`` is not parsed), and the series' :meth:`_Series.finish` does the
    rest in one call."""
    children = _Children(classify)
    by_path = children.by_path
    received = batch.counter(metrics.BYTES_RECEIVED)
    sent = batch.counter(metrics.BYTES_SENT)

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
            body = 0 if method in BODYLESS else request.content_length or 0
            out = None
            if response is not None:
                out = 0 if method == "HEAD" else body_bytes(response)
            series.finish(status, seconds, body, out, received, sent)

    return middleware
