"""Metrics that wrap what already exists: the upload use case (uploads in progress), the
failed-login limiter (failed logins, rate-limited clients) and the tag-list cache (hits
and misses)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.metadata.tag_lists import TagListCache
from dockyard.observability import batch, metrics
from dockyard.registry.forwarding import ForwardingUploads, UploadCall
from dockyard.registry.protocols import Uploads


class MeasuredUploads(ForwardingUploads):
    """``inner``, with the requests that are receiving an upload's bytes counted in
    ``dockyard_uploads_in_progress``."""

    def __init__(self, inner: Uploads) -> None:
        super().__init__(inner)
        self._gauge = batch.gauge(metrics.UPLOADS_IN_PROGRESS)

    def around(self, call: UploadCall) -> AbstractContextManager[object]:
        return nullcontext() if call == "mount" else self._gauge


class CountedLoginLimiter(FailedLoginLimiter):
    """The shared failed-login limiter, counting failures and refusals."""

    async def failed(self, client: str) -> None:
        metrics.FAILED_LOGINS.inc()
        await super().failed(client)

    async def retry_after(self, client: str) -> int:
        wait = await super().retry_after(client)
        if wait:
            metrics.RATE_LIMITED.inc()
        return wait


def count_cache_lookups(cache: TagListCache, name: str = "tag_lists") -> None:
    """Count ``cache``'s hits and misses in ``dockyard_cache_lookups_total{cache=name}``."""
    hit = batch.counter(metrics.CACHE_LOOKUPS.labels(name, "hit"))
    miss = batch.counter(metrics.CACHE_LOOKUPS.labels(name, "miss"))
    cache.on_lookup = lambda found: (hit if found else miss).inc()
