"""The local registry as the copy engine's :class:`~dockyard.sync.protocols.ImageSource`: reads
through the use cases (never over HTTP to itself), blobs streamed from storage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.pagination import Page
from dockyard.registry.protocols import UseCases
from dockyard.remote import FetchedManifest, RemoteError

_ALL = Page(None, None)
_GONE = {errors.MANIFEST_UNKNOWN, errors.NAME_UNKNOWN, errors.BLOB_UNKNOWN}


class ImageGone(RemoteError):
    """What a job was to copy is no longer in the local registry (deleted since)."""


class LocalBlob:
    def __init__(self, use_cases: UseCases, digest: Digest, size: int) -> None:
        self._use_cases = use_cases
        self._digest = digest
        self.size: int | None = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert self.size is not None
        async for chunk in self._use_cases.blobs.stream(self._digest, 0, self.size):
            yield chunk


class LocalSource:
    def __init__(self, use_cases: UseCases) -> None:
        self._use_cases = use_cases

    async def list_repositories(self) -> list[str]:
        return (await self._use_cases.listings.catalog(_ALL)).entries

    async def list_tags(self, repo: str) -> list[str]:
        with _translated(f"tags of {repo}"):
            return (await self._use_cases.tags.list(repo, _ALL)).entries

    async def get_manifest(self, repo: str, reference: str) -> FetchedManifest:
        with _translated(f"{repo}:{reference}"):
            record = await self._use_cases.manifests.get(repo, reference, None)
        return FetchedManifest(record.payload, record.media_type, record.digest)

    @contextlib.asynccontextmanager
    async def open_blob(self, repo: str, digest: str) -> AsyncIterator[LocalBlob]:
        parsed = Digest.parse(digest)
        with _translated(f"blob {repo}@{digest}"):
            location = await self._use_cases.blobs.locate(repo, parsed)
        yield LocalBlob(self._use_cases, parsed, location.size)

    async def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]:
        with _translated(f"referrers of {repo}@{digest}"):
            index = await self._use_cases.listings.referrers(repo, Digest.parse(digest), None)
        return [m for m in index.get("manifests", []) if isinstance(m, dict)]


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """The registry's own errors as the engine's: gone (404s), or another failure."""
    try:
        yield
    except errors.RegistryError as exc:
        if exc.error in _GONE:
            raise ImageGone(f"{what}: no longer in this registry ({exc.error.code})") from exc
        raise RemoteError(f"{what}: {exc.error.code}: {exc.message}") from exc
