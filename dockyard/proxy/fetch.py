"""Copying what a client asks for from an upstream into the local registry.

Blobs go through the plain upload use case (streamed, hashed, verified, committed and
recorded in the database as a push is, on every storage driver); manifests through the
plain manifest use case, after what they reference, so that the database holds cached
content exactly as it holds pushed content.

A fetch runs as a task of its own (:class:`SingleFlight`), which the clients that want the
same content join and which goes on when they go away: so concurrent requests in one
worker share one upstream fetch, and a fetch a client gave up on still ends in the cache.
A fetch announces what its clients may use before it ends: a blob download its
:class:`~dockyard.proxy.flight.BlobFlight` (clients read the blob while it is stored), a
manifest its bytes (clients get it while its blobs are fetched). Across workers and
replicas a blob download also holds a database lease (one of 256, by digest); a worker
that finds the lease taken waits for the blob to arrive instead of downloading it too. A
manifest fetch holds one too (by repository and reference), so that a request that finds
the upstream down while a fetch is still storing what it read waits for it and serves the
cached copy, in any worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from dockyard.metadata.leases import Leases
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import parse_manifest
from dockyard.proxy.flight import BlobFlight
from dockyard.proxy.routing import Upstream
from dockyard.registry.protocols import Manifests, Uploads
from dockyard.registry.settings import RegistrySettings
from dockyard.remote import RemoteError
from dockyard.remote.client import BlobStream, FetchedManifest
from dockyard.storage import paths
from dockyard.storage.layout import gather_bounded
from dockyard.storage.local import LocalFiles

log = logging.getLogger("dockyard.proxy")

T = TypeVar("T")
Announce = Callable[[T], None]

LEASE_WAIT = 0.1  # seconds between looks while another worker downloads a blob
STREAM_MIN = 1024 * 1024  # smaller blobs are stored first, then served (one piece)
MANIFEST_BLOB_FETCHES = 4  # blobs a manifest fetch downloads at once, besides its clients'
SETTLE_WAIT = 30.0  # seconds at most that serve-stale waits for a running manifest fetch


def blob_lease(digest: Digest) -> str:
    """One of 256 lease names: few lease files on SQLite, rare needless waits."""
    return f"proxy-fetch-{digest.hex[:2]}"


def manifest_lease(name: str, reference: str) -> str:
    """Held while a manifest is fetched into ``name:reference``: one of 256 names."""
    key = hashlib.sha256(f"{name}:{reference}".encode()).hexdigest()[:2]
    return f"proxy-manifest-{key}"


@dataclass(frozen=True)
class Flight(Generic[T]):
    """A running fetch: its task, and what it announced to its clients (None: nothing,
    once the task ended without announcing)."""

    task: asyncio.Task[None]
    announced: asyncio.Future[T | None]

    async def early(self) -> T | None:
        """What the fetch announced, as soon as it did; None when it ended without (its
        failure raised). A client that goes away cancels neither."""
        value = await asyncio.shield(self.announced)  # set to None when the task ends
        if value is None:
            await self.finished()
        return value

    async def finished(self) -> None:
        await asyncio.shield(self.task)


class SingleFlight(Generic[T]):
    """One running fetch per key; later callers join it."""

    def __init__(self) -> None:
        self._running: dict[Hashable, Flight[T]] = {}

    def join(self, key: Hashable, work: Callable[[Announce[T]], Awaitable[None]]) -> Flight[T]:
        flight = self._running.get(key)
        if flight is not None:
            return flight
        announced: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()

        def announce(value: T) -> None:
            if not announced.done():
                announced.set_result(value)

        flight = Flight(asyncio.ensure_future(work(announce)), announced)
        self._running[key] = flight
        flight.task.add_done_callback(lambda task: self._ended(key, task, announced))
        return flight

    def find(self, matches: Callable[[Hashable], bool]) -> Flight[T] | None:
        """A running fetch whose key ``matches``."""
        return next((f for key, f in self._running.items() if matches(key)), None)

    def _ended(
        self, key: Hashable, task: asyncio.Task[None], announced: asyncio.Future[T | None]
    ) -> None:
        self._running.pop(key, None)
        taken = announced.done()
        if not taken:
            announced.set_result(None)
        failure = None if task.cancelled() else task.exception()  # retrieved, in any case
        if failure is not None and taken:
            # The clients that took the announcement do not wait for the end: say it here.
            log.warning("proxy fetch %s failed after it began serving: %s", key, failure)


def _failure(upstream: Upstream, digest: Digest, exc: BaseException) -> errors.RegistryError:
    """What a client reading a failed download gets (when its response has not begun)."""
    return errors.RegistryError(
        errors.UNAVAILABLE,
        f"upstream {upstream.remote.base_url} failed while sending blob {digest}: "
        f"{exc or exc.__class__.__name__}; nothing was stored",
    )


def _upstream_fault(digest: Digest, exc: BaseException) -> BaseException:
    """A body the upload refuses (another digest, another size) is the upstream's failure,
    as a lost connection is: served stale, or answered 503, never the client's 400."""
    if isinstance(exc, errors.RegistryError) and exc.error in (
        errors.DIGEST_INVALID,
        errors.SIZE_INVALID,
    ):
        return RemoteError(f"blob {digest}: the upstream's bytes fail verification: {exc}")
    return exc


class _Tee:
    """The upstream's body as the upload reads it, each chunk published to the flight's
    readers on the way, and reported written once the upload is done with it."""

    def __init__(self, data: BlobStream, flight: BlobFlight | None) -> None:
        self._data = data
        self._flight = flight

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._data:
            if self._flight is not None:
                self._flight.publish(chunk)
            yield chunk

    def done(self, chunk: bytes | memoryview) -> None:
        if self._flight is not None:
            self._flight.written(len(chunk))


class Fetcher:
    def __init__(
        self,
        uploads: Uploads,
        manifests: Manifests,
        settings: RegistrySettings,
        leases: Leases,
        local: LocalFiles | None = None,
    ) -> None:
        self._leases = leases
        self._local = local  # the storage's local files, read behind a download's writer
        self._uploads = uploads
        self._manifests = manifests
        self._settings = settings
        self._blobs: SingleFlight[BlobFlight] = SingleFlight()
        self._manifest_flights: SingleFlight[FetchedManifest] = SingleFlight()
        self.blob_fetches = 0  # upstream blob downloads started by this worker

    async def linked(self, name: str, digest: Digest) -> bool:
        """Link ``digest`` into ``name`` when the store holds it (for another repository)."""
        return await self._uploads.mount(name, digest, None) is not None

    def _blob_flight(self, upstream: Upstream, name: str, digest: Digest) -> Flight[BlobFlight]:
        return self._blobs.join(
            ("blob", name, str(digest)),
            lambda announce: self._blob(upstream, name, digest, announce),
        )

    async def blob(self, upstream: Upstream, name: str, digest: Digest) -> None:
        """Fetch ``digest`` into ``name``; return once it is stored."""
        await self._blob_flight(upstream, name, digest).finished()

    async def streaming_blob(
        self, upstream: Upstream, name: str, digest: Digest
    ) -> BlobFlight | None:
        """The download of ``digest`` to read while it is stored, as soon as the upstream
        answered; None once the blob is stored (small, or fetched by another worker)."""
        return await self._blob_flight(upstream, name, digest).early()

    async def _blob(
        self, upstream: Upstream, name: str, digest: Digest, announce: Announce[BlobFlight]
    ) -> None:
        while True:
            # Stored already (for another repository, or by another worker): a link, no
            # download (one copy, counted by the collector's references like any mount).
            if await self._uploads.mount(name, digest, None) is not None:
                return
            async with self._leases.hold(blob_lease(digest)) as held:
                if held:
                    if await self._uploads.mount(name, digest, None) is None:
                        await self._download(upstream, name, digest, announce)
                    return
            await asyncio.sleep(LEASE_WAIT)

    async def _download(
        self, upstream: Upstream, name: str, digest: Digest, announce: Announce[BlobFlight]
    ) -> None:
        self.blob_fetches += 1
        # The upload checks the digest (and the size): no second hash of the download.
        opened = upstream.remote.open_blob(upstream.remote_name(name), str(digest), verify=False)
        async with opened as data:
            flight = None
            if data.size is not None and data.size > STREAM_MIN:
                flight = BlobFlight(digest, data.size)
                announce(flight)
            upload_id = await self._uploads.start(name)
            # A streamed blob is written to its upload (not held in memory as a small
            # one may be): readers behind the memory window read it there.
            length = data.size if flight is None else None
            if flight is not None and self._local is not None:
                flight.writing_to(self._local.upload_file(paths.upload_data(name, upload_id)))
            try:
                await self._uploads.complete(
                    name, upload_id, digest, _Tee(data, flight), None, length
                )
            except BaseException as exc:
                fault = _upstream_fault(digest, exc)
                try:
                    with contextlib.suppress(Exception):
                        await self._uploads.cancel(name, upload_id)
                finally:
                    # Last, so that a client's next request starts a new fetch.
                    if flight is not None:
                        flight.failed(_failure(upstream, digest, fault))
                if fault is not exc:
                    raise fault from exc
                raise
            if flight is not None:
                flight.committed()

    async def manifest(self, upstream: Upstream, name: str, reference: str, digest: str) -> None:
        """Fetch manifest ``digest`` with everything it references; store it at
        ``reference`` (the tag, or the digest itself). Returns once it is stored."""
        await self._manifest_flight(upstream, name, reference, digest).finished()

    def early_manifest(
        self, upstream: Upstream, name: str, reference: str, digest: str
    ) -> Flight[FetchedManifest]:
        """The fetch of manifest ``digest``; its announcement is the manifest's bytes, as
        soon as they are verified (what it references is fetched meanwhile). A request by
        digest joins a running fetch of that digest for a tag (a client that resolved the
        tag a moment ago)."""
        if reference == digest:
            running = self._manifest_flights.find(
                lambda key: isinstance(key, tuple) and key[1] == name and key[3] == digest
            )
            if running is not None:
                return running
        return self._manifest_flight(upstream, name, reference, digest)

    async def settled(self, name: str, reference: str, patience: float = SETTLE_WAIT) -> None:
        """Return once no worker is fetching a manifest into ``name:reference`` (or after
        ``patience`` seconds): what such a fetch read before the upstream went away is
        stored by then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            async with self._leases.hold(manifest_lease(name, reference)) as free:
                if free:
                    return
            if loop.time() >= deadline:
                return
            await asyncio.sleep(LEASE_WAIT)

    def _manifest_flight(
        self, upstream: Upstream, name: str, reference: str, digest: str
    ) -> Flight[FetchedManifest]:
        async def work(announce: Announce[FetchedManifest]) -> None:
            # Held or not (another fetch into the same name), the fetch goes on: the lease
            # only tells a serve-stale request in another worker that it is being stored.
            async with self._leases.hold(manifest_lease(name, reference)):
                await self._manifest(upstream, name, reference, digest, announce)

        return self._manifest_flights.join(("manifest", name, reference, digest), work)

    async def _manifest(
        self,
        upstream: Upstream,
        name: str,
        reference: str,
        digest: str,
        announce: Announce[FetchedManifest],
    ) -> None:
        fetched = await upstream.remote.get_manifest(upstream.remote_name(name), digest)
        parsed = parse_manifest(
            fetched.body,
            fetched.media_type,
            self._settings.manifest_max_bytes,
            self._settings.url_policy.allows,
        )
        announce(fetched)
        for child in parsed.manifests:
            await self.manifest(upstream, name, str(child.digest), str(child.digest))
        distributable = [ref.digest for ref in parsed.blob_references() if not ref.urls]
        # A few at a time: on PostgreSQL each download holds a pooled connection for its
        # lease and takes another to commit; a client's own requests start the rest sooner.
        await gather_bounded(
            (self.blob(upstream, name, d) for d in distributable), MANIFEST_BLOB_FETCHES
        )
        await self._manifests.push(name, reference, fetched.body, fetched.media_type)
