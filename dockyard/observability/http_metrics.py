"""registry:2's HTTP families, counted by one aiohttp middleware around every request.

The ``handler`` label is the route's name as Distribution spells it (``blob``,
``blob_upload``, ``blob_upload_chunk``, ``manifest``, ``tags``, ``catalog``, ``base``),
given by the wiring's ``classify``; anything else is ``other``. The metric children are
looked up once per label set and kept, so a request costs a few increments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.observability import metrics


class _Children:
    """The metric children of each label set, made on first use."""

    def __init__(self) -> None:
        self._per_handler: dict[str, tuple[Any, Any, Any]] = {}
        self._per_method: dict[tuple[str, str], Any] = {}
        self._per_code: dict[tuple[str, int, str], Any] = {}

    def handler(self, name: str) -> tuple[Any, Any, Any]:
        found = self._per_handler.get(name)
        if found is None:
            found = self._per_handler[name] = (
                metrics.HTTP_IN_FLIGHT.labels(name),
                metrics.HTTP_REQUEST_SIZE.labels(name),
                metrics.HTTP_RESPONSE_SIZE.labels(name),
            )
        return found

    def duration(self, name: str, method: str) -> Any:
        key = (name, method)
        found = self._per_method.get(key)
        if found is None:
            found = self._per_method[key] = metrics.HTTP_DURATION.labels(name, method)
        return found

    def requests(self, name: str, code: int, method: str) -> Any:
        key = (name, code, method)
        found = self._per_code.get(key)
        if found is None:
            found = self._per_code[key] = metrics.HTTP_REQUESTS.labels(name, str(code), method)
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
    received = metrics.BYTES_RECEIVED
    sent = metrics.BYTES_SENT

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = classify(request.path)
        in_flight, request_size, response_size = children.handler(name)
        method = request.method
        in_flight.inc()
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
            children.duration(name, method).observe(time.perf_counter() - started)
            in_flight.dec()
            children.requests(name, status, method).inc()
            body = request.content_length or 0
            request_size.observe(body)
            if body:
                received.inc(body)
            if response is not None:
                out = response_bytes(request, response)
                response_size.observe(out)
                if out:
                    sent.inc(out)

    return middleware
