"""Reading blobs: existence in a repository, size, and where the bytes are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver


@dataclass(frozen=True)
class BlobLocation:
    """Where to read a blob from: a local file (sendfile), a redirect, or a stream."""

    digest: Digest
    size: int
    local_path: Path | None
    redirect_url: str | None


class BlobReader:
    def __init__(self, metadata: MetadataStore, storage: StorageDriver) -> None:
        self._metadata = metadata
        self._storage = storage

    async def locate(self, name: str, digest: Digest, method: str = "GET") -> BlobLocation:
        size = await self._metadata.repository_blob_size(name, str(digest))
        if size is None:
            raise errors.RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})
        path = paths.blob_data(digest)
        return BlobLocation(
            digest=digest,
            size=size,
            local_path=self._storage.local_path(path),
            redirect_url=await self._storage.redirect_url(path, method),
        )

    def stream(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        return self._storage.reader(paths.blob_data(digest), offset, length)

    async def delete(self, name: str, digest: Digest) -> None:
        """Unlink a blob from a repository; its bytes stay until garbage collection."""
        if not await self._metadata.unlink_blob(name, str(digest)):
            raise errors.RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})
