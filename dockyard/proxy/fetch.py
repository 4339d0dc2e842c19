"""Copying what a client asks for from an upstream into the local registry.

Blobs go through the plain upload use case (streamed, hashed, verified, committed and
recorded in the database as a push is, on every storage driver); manifests through the
plain manifest use case, after what they reference, so that the database holds cached
content exactly as it holds pushed content. Concurrent requests for the same content in
one worker share one upstream fetch (:class:`SingleFlight`); across workers and replicas
a blob download also holds a database lease (one of 256, by digest), and a worker that
finds the lease taken waits for the blob to arrive instead of downloading it too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable

from dockyard.metadata.leases import Leases
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import parse_manifest
from dockyard.proxy.routing import Upstream
from dockyard.registry.body import IterableBody
from dockyard.registry.protocols import Manifests, Uploads
from dockyard.registry.settings import RegistrySettings


class SingleFlight:
    """One running task per key; later callers await the same task."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[None]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        # A client that goes away does not cancel the fetch the others wait for.
        await asyncio.shield(task)


LEASE_WAIT = 0.1  # seconds between looks while another worker downloads a blob


def blob_lease(digest: Digest) -> str:
    """One of 256 lease names: few lease files on SQLite, rare needless waits."""
    return f"proxy-fetch-{digest.hex[:2]}"


class Fetcher:
    def __init__(
        self,
        uploads: Uploads,
        manifests: Manifests,
        settings: RegistrySettings,
        leases: Leases,
    ) -> None:
        self._leases = leases
        self._uploads = uploads
        self._manifests = manifests
        self._settings = settings
        self._flights = SingleFlight()
        self.blob_fetches = 0  # upstream blob downloads started by this worker

    async def blob(self, upstream: Upstream, name: str, digest: Digest) -> None:
        await self._flights.run(
            ("blob", name, str(digest)), lambda: self._blob(upstream, name, digest)
        )

    async def _blob(self, upstream: Upstream, name: str, digest: Digest) -> None:
        while True:
            # Stored already (for another repository, or by another worker): a link, no
            # download (one copy, counted by the collector's references like any mount).
            if await self._uploads.mount(name, digest, None) is not None:
                return
            async with self._leases.hold(blob_lease(digest)) as held:
                if held:
                    if await self._uploads.mount(name, digest, None) is None:
                        await self._download(upstream, name, digest)
                    return
            await asyncio.sleep(LEASE_WAIT)

    async def _download(self, upstream: Upstream, name: str, digest: Digest) -> None:
        self.blob_fetches += 1
        upload_id = await self._uploads.start(name)
        try:
            async with upstream.remote.open_blob(upstream.remote_name(name), str(digest)) as data:
                await self._uploads.append(name, upload_id, IterableBody(data), None, None)
            await self._uploads.complete(name, upload_id, digest, None, None, None)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._uploads.cancel(name, upload_id)
            raise

    async def manifest(self, upstream: Upstream, name: str, reference: str, digest: str) -> None:
        """Fetch manifest ``digest`` with everything it references; store it at
        ``reference`` (the tag, or the digest itself)."""
        await self._flights.run(
            ("manifest", name, reference, digest),
            lambda: self._manifest(upstream, name, reference, digest),
        )

    async def _manifest(self, upstream: Upstream, name: str, reference: str, digest: str) -> None:
        fetched = await upstream.remote.get_manifest(upstream.remote_name(name), digest)
        parsed = parse_manifest(
            fetched.body,
            fetched.media_type,
            self._settings.manifest_max_bytes,
            self._settings.url_policy.allows,
        )
        for child in parsed.manifests:
            await self.manifest(upstream, name, str(child.digest), str(child.digest))
        distributable = [ref.digest for ref in parsed.blob_references() if not ref.urls]
        await asyncio.gather(*(self.blob(upstream, name, d) for d in distributable))
        await self._manifests.push(name, reference, fetched.body, fetched.media_type)
