"""The pull-through cache as wrappers of the manifest and blob use cases.

Wrapper order: plain → **proxy** → HeadKeepsBlobs, push sessions + immutable tags → metrics →
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
from dockyard.storage.driver import StorageDriver
from dockyard.storage.local import LocalFiles

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

    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
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
            fetched = await self._refresh(upstream, name, canonical, by_digest, accept)
        except RemoteError as exc:
            return await self._stale(upstream, name, canonical, accept, exc)
        if fetched is not None:
            return fetched
        return await self._inner.get(name, canonical, accept)

    async def _refresh(
        self,
        upstream: Upstream,
        name: str,
        reference: str,
        by_digest: bool,
        accept: set[str] | None,
    ) -> ManifestRecord | None:
        """Bring the local copy of ``reference`` up to date with the upstream's. Returns
        the fetched manifest when the client may have it before it is stored (its blobs
        are fetched meanwhile, and the client's requests for them join those fetches);
        None when the stored one is the answer."""
        remote_name = upstream.remote_name(name)
        digest = reference
        if not by_digest:
            info = await upstream.remote.head_manifest(remote_name, reference)
            if info is None:  # the upstream's 404, as registry:2 answers
                raise errors.RegistryError(
                    errors.MANIFEST_UNKNOWN, detail={"name": name, "reference": reference}
                )
            try:
                current: ManifestRecord | None = await self._inner.get(name, reference, None)
            except errors.RegistryError:
                current = None
            if current is not None and current.digest == info.digest:
                return None
            digest = info.digest
        flight = self._fetcher.early_manifest(upstream, name, reference, digest)
        fetched = await flight.early()
        if fetched is None or not (by_digest or accept is None or fetched.media_type in accept):
            # Stored already, or the stored manifests negotiate the answer (an index's
            # linux/amd64 child for a client that does not accept indexes).
            await flight.finished()
            return None
        return ManifestRecord(fetched.digest, fetched.media_type, len(fetched.body), fetched.body)

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
        record = await self._cached(name, reference, accept)
        if record is None:
            # A fetch (in any worker) may still be storing what it read before the
            # upstream went away: a client's pull that just ended, say.
            await self._fetcher.settled(name, reference)
            record = await self._cached(name, reference, accept)
        if record is None:
            raise _unavailable(upstream, exc)
        log.warning(
            "upstream %s failed (%s): serving the cached manifest %s:%s",
            upstream.remote.base_url,
            exc,
            name,
            reference,
        )
        self._on_stale(upstream.label, "manifest")
        return record

    async def _cached(
        self, name: str, reference: str, accept: set[str] | None
    ) -> ManifestRecord | None:
        try:
            return await self._inner.get(name, reference, accept)
        except errors.RegistryError as missing:
            if _is(missing, errors.MANIFEST_UNKNOWN):
                return None
            raise


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
            if method == "HEAD" and not await self._fetcher.linked(name, digest):
                return await self._upstream_head(upstream, name, digest)
            flight = await self._fetcher.streaming_blob(upstream, name, digest)
        except RemoteError as exc:
            if exc.status == 404:
                raise _blob_unknown(digest) from None
            raise _unavailable(upstream, exc) from None
        if flight is None:  # stored now
            return await self._inner.locate(name, digest, method)
        stored = self._inner.stream
        return BlobLocation(
            digest=digest,
            size=flight.size,
            local_path=None,
            redirect_url=None,
            stored=False,
            stream=lambda offset, length: flight.read(offset, length, stored),
        )

    async def _upstream_head(self, upstream: Upstream, name: str, digest: Digest) -> BlobLocation:
        """A ``HEAD`` of a blob not cached: the upstream's answer, nothing downloaded (the
        ``GET`` that usually follows fetches it)."""
        size = await upstream.remote.blob_size(upstream.remote_name(name), str(digest))
        if size is None:
            raise _blob_unknown(digest)
        return BlobLocation(digest, size, None, None, stored=False)

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
    storage: StorageDriver | None = None,
) -> UseCases:
    """``use_cases`` with manifests and blobs read through the upstreams of ``routes``.
    ``storage``: the store's driver; when its files are local, a download is read behind
    its writer there (docs/mirror.md)."""
    local = storage.capability(LocalFiles) if storage is not None else None
    fetcher = Fetcher(use_cases.uploads, use_cases.manifests, settings, leases, local)
    return use_cases.wrapped(
        manifests=ProxyManifests(use_cases.manifests, routes, fetcher, on_stale),
        blobs=ProxyBlobs(use_cases.blobs, routes, fetcher, on_stale),
    )
