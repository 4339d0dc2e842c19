"""What the copy engine needs from the two ends. :class:`dockyard.remote.RemoteRegistry`
is both; a local registry can be a source (replication inside the server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from dockyard.remote import FetchedManifest, ManifestInfo


class BlobChunks(Protocol):
    size: int | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class ImageSource(Protocol):
    async def list_repositories(self) -> list[str]: ...

    async def list_tags(self, repo: str) -> list[str]: ...

    async def get_manifest(self, repo: str, reference: str) -> FetchedManifest: ...

    def open_blob(self, repo: str, digest: str) -> AbstractAsyncContextManager[BlobChunks]: ...

    async def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]: ...


class ImageDestination(Protocol):
    async def blob_size(self, repo: str, digest: str) -> int | None: ...

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool: ...

    async def push_blob(
        self, repo: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None: ...

    async def head_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = ...
    ) -> ManifestInfo | None: ...

    async def put_manifest(
        self, repo: str, reference: str, body: bytes, media_type: str
    ) -> str: ...

    async def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]: ...
