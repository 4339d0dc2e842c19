"""The pull-through cache as wrappers of the manifest and blob use cases.

Wrapper order: plain → **proxy** → HeadKeepsBlobs + immutable tags → metrics →
notifications. The proxy wraps the plain use cases directly, so what it fetches is stored
through them (no notification, no immutability check, not counted as a client request),
and every outer wrapper sees a mirrored repository as an ordinary one.

A tag is checked upstream on every request (a ``HEAD``; the client falls back to a ``GET``
when the digest header is missing), as registry:2 does; content is fetched only when the
tag moved or is new. When the upstream is down, times out, or answers 429/5xx (or any other
error), what is cached is served (serve-stale), counted through ``on_stale`` and logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from dockyard.metadata.leases import Leases
from dockyard.metadata.records import ManifestRecord
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.proxy.fetch import Fetcher
from dockyard.proxy.routing import ProxyRoutes, Upstream
from dockyard.registry.blobs import BlobLocation
from dockyard.registry.manifests import PushedManifest, parse_reference
from dockyard.registry.protocols import Blobs, Manifests, UseCases
from dockyard.registry.settings import RegistrySettings
from dockyard.remote import RemoteError

log = logging.getLogger("dockyard.proxy")

StaleCounter = Callable[[str, str], None]  # (upstream label, "manifest" or "blob")


def _unavailable(upstream: Upstream, exc: RemoteError) -> errors.RegistryError:
    return errors.RegistryError(
        errors.UNAVAILABLE,
        f"upstream {upstream.remote.base_url} failed and nothing is cached: {exc}",
    )


def _blob_unknown(digest: Digest) -> errors.RegistryError:
    return errors.RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})


def _is(exc: errors.RegistryError, code: errors.ErrorCode) -> bool:
    return exc.error is code


class ProxyManifests:
    def __init__(
        self, inner: Manifests, routes: ProxyRoutes, fetcher: Fetcher, on_stale: StaleCounter
    ) -> None:
        self._inner = inner
        self._routes = routes
        self._fetcher = fetcher
        self._on_stale = on_stale

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest:
        self._routes.check_writable(name)
        return await self._inner.push(name, reference, payload, content_type)

    async def delete(self, name: str, digest: str) -> None:
        self._routes.check_writable(name)
        await self._inner.delete(name, digest)

    async def get(self, name: str, reference: str, accept: set[str] | None) -> ManifestRecord:
        upstream = self._routes.find(name)
        if upstream is None:
            return await self._inner.get(name, reference, accept)
        canonical, by_digest = parse_reference(reference)
        if by_digest:
            try:
                return await self._inner.get(name, canonical, accept)
            except errors.RegistryError as exc:
                if not _is(exc, errors.MANIFEST_UNKNOWN):
                    raise
        try:
            await self._refresh(upstream, name, canonical, by_digest)
        except RemoteError as exc:
            return await self._stale(upstream, name, canonical, accept, exc)
        return await self._inner.get(name, canonical, accept)

    async def _refresh(
        self, upstream: Upstream, name: str, reference: str, by_digest: bool
    ) -> None:
        """Bring the local copy of ``reference`` up to date with the upstream's."""
        remote_name = upstream.remote_name(name)
        if by_digest:
            await self._fetcher.manifest(upstream, name, reference, reference)
            return
        info = await upstream.remote.head_manifest(remote_name, reference)
        if info is None:  # the upstream's 404, as registry:2 answers
            raise errors.RegistryError(
                errors.MANIFEST_UNKNOWN, detail={"name": name, "reference": reference}
            )
        try:
            current: ManifestRecord | None = await self._inner.get(name, reference, None)
        except errors.RegistryError:
            current = None
        if current is None or current.digest != info.digest:
            await self._fetcher.manifest(upstream, name, reference, info.digest)

    async def _stale(
        self,
        upstream: Upstream,
        name: str,
        reference: str,
        accept: set[str] | None,
        exc: RemoteError,
    ) -> ManifestRecord:
        if exc.status == 404:
            raise errors.RegistryError(
                errors.MANIFEST_UNKNOWN, detail={"name": name, "reference": reference}
            ) from None
        try:
            record = await self._inner.get(name, reference, accept)
        except errors.RegistryError as missing:
            if _is(missing, errors.MANIFEST_UNKNOWN):
                raise _unavailable(upstream, exc) from None
            raise
        log.warning(
            "upstream %s failed (%s): serving the cached manifest %s:%s",
            upstream.remote.base_url,
            exc,
            name,
            reference,
        )
        self._on_stale(upstream.label, "manifest")
        return record


class ProxyBlobs:
    def __init__(
        self, inner: Blobs, routes: ProxyRoutes, fetcher: Fetcher, on_stale: StaleCounter
    ) -> None:
        self._inner = inner
        self._routes = routes
        self._fetcher = fetcher
        self._on_stale = on_stale

    async def locate(self, name: str, digest: Digest, method: str = "GET") -> BlobLocation:
        upstream = self._routes.find(name)
        if upstream is None:
            return await self._inner.locate(name, digest, method)
        try:
            return await self._inner.locate(name, digest, method)
        except errors.RegistryError as exc:
            if not _is(exc, errors.BLOB_UNKNOWN):
                raise
        try:
            # A HEAD fetches too: the collector's HEAD rule (HeadKeepsBlobs, outside)
            # answers only for stored blobs, and a GET usually follows.
            await self._fetcher.blob(upstream, name, digest)
        except RemoteError as exc:
            if exc.status == 404:
                raise _blob_unknown(digest) from None
            raise _unavailable(upstream, exc) from None
        return await self._inner.locate(name, digest, method)

    async def bytes_missing(self, name: str, digest: Digest) -> errors.RegistryError:
        return await self._inner.bytes_missing(name, digest)

    def stream(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        return self._inner.stream(digest, offset, length)

    async def delete(self, name: str, digest: Digest) -> None:
        self._routes.check_writable(name)
        await self._inner.delete(name, digest)


def _uncounted(upstream: str, kind: str) -> None:
    pass


def proxied(
    use_cases: UseCases,
    routes: ProxyRoutes,
    settings: RegistrySettings,
    leases: Leases,
    on_stale: StaleCounter = _uncounted,
) -> UseCases:
    """``use_cases`` with manifests and blobs read through the upstreams of ``routes``."""
    fetcher = Fetcher(use_cases.uploads, use_cases.manifests, settings, leases)
    return use_cases.wrapped(
        manifests=ProxyManifests(use_cases.manifests, routes, fetcher, on_stale),
        blobs=ProxyBlobs(use_cases.blobs, routes, fetcher, on_stale),
    )
