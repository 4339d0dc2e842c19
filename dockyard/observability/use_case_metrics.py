"""Metrics that wrap what already exists: the upload use case (uploads in progress), the
failed-login limiter (failed logins, rate-limited clients) and the tag-list cache (hits
and misses)."""

from __future__ import annotations

from datetime import timedelta

from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.metadata.tag_lists import TagListCache
from dockyard.observability import metrics
from dockyard.oci.digest import Digest
from dockyard.oci.ranges import ByteRange
from dockyard.registry.body import Body
from dockyard.registry.protocols import Uploads


class MeasuredUploads:
    """``inner``, with the requests that are receiving an upload's bytes counted in
    ``dockyard_uploads_in_progress``."""

    def __init__(self, inner: Uploads) -> None:
        self._inner = inner
        self._gauge = metrics.UPLOADS_IN_PROGRESS

    async def start(self, name: str) -> str:
        return await self._inner.start(name)

    async def status(self, name: str, upload_id: str) -> int:
        return await self._inner.status(name, upload_id)

    async def cancel(self, name: str, upload_id: str) -> None:
        await self._inner.cancel(name, upload_id)

    async def append(
        self,
        name: str,
        upload_id: str,
        body: Body,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        with self._gauge.track_inprogress():
            return await self._inner.append(name, upload_id, body, content_range, content_length)

    async def complete(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        body: Body | None,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        with self._gauge.track_inprogress():
            return await self._inner.complete(
                name, upload_id, digest, body, content_range, content_length
            )

    async def monolithic(
        self, name: str, digest: Digest, body: Body, content_length: int | None
    ) -> int:
        with self._gauge.track_inprogress():
            return await self._inner.monolithic(name, digest, body, content_length)

    async def mount(self, name: str, digest: Digest, source: str | None) -> int | None:
        return await self._inner.mount(name, digest, source)

    async def purge(self, older_than: timedelta, dry_run: bool = False) -> list[str]:
        return await self._inner.purge(older_than, dry_run)


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
    hit = metrics.CACHE_LOOKUPS.labels(name, "hit")
    miss = metrics.CACHE_LOOKUPS.labels(name, "miss")
    cache.on_lookup = lambda found: (hit if found else miss).inc()
