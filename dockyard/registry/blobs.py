"""Reading blobs: existence in a repository, size, and where the bytes are.

The database says which blobs exist, but something outside Dockyard can still remove their
bytes (registry:2's ``garbage-collect`` run on a Dockyard store deletes every blob it finds
no link file for). A read that finds the bytes gone marks the blob missing: from then on it
is unknown (404 ``BLOB_UNKNOWN``) everywhere, so that clients upload it again instead of
skipping it, and the next upload makes it whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver
from dockyard.storage.local import LocalFiles

log = logging.getLogger("dockyard.blobs")


@dataclass(frozen=True)
class BlobLocation:
    """Where to read a blob from: a local file (sendfile), a redirect, or a stream.

    ``stored`` is False for a blob the pull-through cache has not stored (yet): a ``HEAD``
    answered by the upstream, or a ``GET`` read from a download in progress (``stream``,
    which replaces :meth:`Blobs.stream <dockyard.registry.protocols.Blobs.stream>`)."""

    digest: Digest
    size: int
    local_path: Path | None
    redirect_url: str | None
    stored: bool = True
    stream: Callable[[int, int], AsyncIterator[bytes]] | None = None


def _blob_unknown(digest: Digest) -> errors.RegistryError:
    return errors.RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})


class BlobReader:
    def __init__(self, metadata: MetadataStore, storage: StorageDriver) -> None:
        self._metadata = metadata
        self._storage = storage
        # A driver with local files lets the handler sendfile them.
        self._local = storage.capability(LocalFiles)

    async def locate(self, name: str, digest: Digest, method: str = "GET") -> BlobLocation:
        stored = await self._metadata.repository_blob(name, str(digest))
        if stored is None:
            raise _blob_unknown(digest)
        size = stored.size
        if stored.pending_path is not None:
            return await self._pending(digest, size, stored.pending_path, method)
        path = paths.blob_data(digest)
        local = self._local.local_path(path) if self._local is not None else None
        # A local file is cheap to check: one stat of a cached entry, inline (a thread hop
        # would cost more than the stat). So a HEAD, which clients use to skip an upload,
        # already finds what a GET finds when it opens the file.
        if method == "HEAD" and local is not None and not os.path.isfile(local):  # noqa: ASYNC240
            raise await self.bytes_missing(name, digest)
        return BlobLocation(
            digest=digest,
            size=size,
            local_path=local,
            redirect_url=await self._storage.redirect_url(path, method),
        )

    async def _pending(self, digest: Digest, size: int, path: str, method: str) -> BlobLocation:
        """A blob whose bytes are still at ``path`` (a deferred copy not made yet): a
        redirect there, or a stream of it. Never a local file: only an object store defers."""
        pending = path

        def stream(offset: int, length: int) -> AsyncIterator[bytes]:
            return self._storage.reader(pending, offset, length)

        return BlobLocation(
            digest=digest,
            size=size,
            local_path=None,
            redirect_url=await self._storage.redirect_url(path, method),
            stream=stream,
        )

    async def bytes_missing(self, name: str, digest: Digest) -> errors.RegistryError:
        """Mark ``digest`` missing after a read found no bytes; the error to answer with."""
        if await self._metadata.mark_blob_missing(str(digest)):
            log.error(
                "blob %s (read through repository %s) has no bytes at %s on storage %s: "
                "marked missing, so clients upload it again. Was registry:2's "
                "garbage-collect run on this store? (docs/migrating-from-registry2.md)",
                digest,
                name,
                paths.blob_data(digest),
                self._storage.name,
            )
        return _blob_unknown(digest)

    async def stream(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        """The blob's bytes, from wherever they are (one query: whether a copy is pending)."""
        path = await self._metadata.blob_pending_path(str(digest)) or paths.blob_data(digest)
        async for chunk in self._storage.reader(path, offset, length):
            yield chunk

    async def delete(self, name: str, digest: Digest) -> None:
        """Unlink a blob from a repository; its bytes stay until garbage collection."""
        if not await self._metadata.unlink_blob(name, str(digest)):
            raise _blob_unknown(digest)
