"""registry:2's HTTP families, counted by one aiohttp middleware around every request.

The ``handler`` label is the route's name as Distribution spells it (``blob``,
``blob_upload``, ``blob_upload_chunk``, ``manifest``, ``tags``, ``catalog``, ``base``),
given by the wiring's ``classify``; anything else is ``other``. The metric children are
looked up once per label set and kept, and updated in the process (:mod:`.batch`), so a
request costs a few additions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.observability import batch, metrics


class _Series:
    """The batched children that requests of one handler and method update."""

    __slots__ = ("duration", "handler", "in_flight", "method", "request_size", "requests",
                 "response_size")  # fmt: skip

    def __init__(self, handler: str, method: str, shared: tuple[Any, Any, Any]) -> None:
        self.handler = handler
        self.method = method
        self.in_flight, self.request_size, self.response_size = shared
        self.duration = batch.histogram(metrics.HTTP_DURATION.labels(handler, method))
        self.requests: dict[int, Any] = {}

    def count(self, status: int) -> None:
        counter = self.requests.get(status)
        if counter is None:
            child = metrics.HTTP_REQUESTS.labels(self.handler, str(status), self.method)
            counter = self.requests[status] = batch.counter(child)
        counter.inc()


class _Children:
    """The series of each handler and method, made on first use."""

    def __init__(self) -> None:
        self._per_handler: dict[str, tuple[Any, Any, Any]] = {}
        self._series: dict[tuple[str, str], _Series] = {}

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


def response_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """Bytes of the response body (HEAD sends none; sendfile's are its Content-Length)."""
    if request.method == "HEAD":
        return 0
    length = response.content_length
    return length if length is not None else response.body_length


def metrics_middleware(classify: Callable[[str], str]) -> Middleware:
    """Counts every request with registry:2's families; ``classify(path)`` names the
    handler."""
    children = _Children()
    received = batch.counter(metrics.BYTES_RECEIVED)
    sent = batch.counter(metrics.BYTES_SENT)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        series = children.series(classify(request.path), request.method)
        series.in_flight.inc()
        started = time.perf_counter()
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
            series.duration.observe(time.perf_counter() - started)
            series.in_flight.dec()
            series.count(status)
            body = request.content_length or 0
            series.request_size.observe(body)
            if body:
                received.inc(body)
            if response is not None:
                out = response_bytes(request, response)
                series.response_size.observe(out)
                if out:
                    sent.inc(out)

    return middleware
