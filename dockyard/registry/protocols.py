"""The use cases the API calls, as protocols: what a handler may ask of the registry.

:class:`~dockyard.registry.service.Registry` receives one implementation of each
(:class:`UseCases`). A cross-cutting feature (metrics, notifications, a pull-through cache,
tag immutability) is a wrapper that implements the same protocol around the inner one and
replaces it in :class:`UseCases`, as Distribution's notifications and proxy wrap its
repository: no handler changes, and the wrappers compose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from dockyard.metadata.records import ManifestRecord
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.pagination import Page
from dockyard.oci.ranges import ByteRange
from dockyard.registry.blobs import BlobLocation
from dockyard.registry.body import Body
from dockyard.registry.listing import Listing
from dockyard.registry.manifests import PushedManifest


class Uploads(Protocol):
    """Blob upload sessions, from the first request to the committed blob."""

    async def start(self, name: str) -> str: ...
    async def status(self, name: str, upload_id: str) -> int: ...
    async def cancel(self, name: str, upload_id: str) -> None: ...
    async def append(
        self,
        name: str,
        upload_id: str,
        body: Body,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int: ...
    async def complete(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        body: Body | None,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int: ...
    async def monolithic(
        self, name: str, digest: Digest, body: Body, content_length: int | None
    ) -> int: ...
    async def mount(self, name: str, digest: Digest, source: str | None) -> int | None: ...
    async def purge(self, older_than: timedelta, dry_run: bool = False) -> list[str]: ...


class Blobs(Protocol):
    """Reading and unlinking committed blobs."""

    async def locate(self, name: str, digest: Digest, method: str = "GET") -> BlobLocation: ...
    async def bytes_missing(self, name: str, digest: Digest) -> errors.RegistryError: ...
    def stream(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]: ...
    async def delete(self, name: str, digest: Digest) -> None: ...


class Manifests(Protocol):
    """Pushing (and tagging), reading and deleting manifests."""

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest: ...
    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
        """The manifest at a tag or digest; ``method`` (``GET`` or ``HEAD``) is for the
        wrappers that act on a ``HEAD`` (it keeps what it finds, dockyard.gc.sessions),
        which forward it; the plain use case and the pull-through cache ignore it."""
        ...

    async def delete(self, name: str, digest: str) -> None: ...


class Tags(Protocol):
    """A repository's tag list and the deletion of one tag (tags move with pushes)."""

    async def list(self, name: str, page: Page) -> Listing: ...
    async def delete(self, name: str, tag: str) -> None: ...


class Listings(Protocol):
    """The catalog and the referrers of a manifest."""

    async def catalog(
        self, page: Page, visible: Callable[[str], bool] | None = None
    ) -> Listing: ...
    async def referrers(
        self, name: str, subject: Digest, artifact_type: str | None
    ) -> dict[str, Any]: ...


class Usage(Protocol):
    """Storage usage from the database: a repository's figures, the registry's."""

    async def repository(self, name: str) -> dict[str, Any]: ...
    async def registry(self, visible: Callable[[str], bool] | None = None) -> dict[str, Any]: ...


class MirrorRouting(Protocol):
    """The pull-through cache's view of repository names (``dockyard.proxy.routing``),
    which the dispatcher asks before any handler runs."""

    def namespaced(self, name: str, ns: str | None) -> str: ...
    def check_writable(self, name: str) -> None: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class UseCases:
    """One implementation of each use case; :meth:`wrapped` swaps some for wrappers."""

    uploads: Uploads
    blobs: Blobs
    manifests: Manifests
    tags: Tags
    listings: Listings
    usage: Usage

    def wrapped(self, **wrappers: Any) -> UseCases:
        """A copy with the given use cases replaced (``manifests=Wrapper(inner)``)."""
        return replace(self, **wrappers)
