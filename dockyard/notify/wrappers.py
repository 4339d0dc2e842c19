"""The use cases, wrapped so that everything registry:2 notifies about is recorded:
blob commits and mounts, manifest pushes, manifest and blob pulls (``GET`` and ``HEAD``),
and deletes of manifests, blobs and tags. No handler knows.

A write's events are recorded inside its transaction (the store reports the change, the
wrapper scopes the recording to the call); a read's are written after it succeeded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext

from dockyard.metadata.records import ManifestRecord
from dockyard.notify.notifier import Notifier
from dockyard.oci import errors
from dockyard.oci.digest import Digest, is_digest
from dockyard.oci.pagination import Page
from dockyard.registry.blobs import BlobLocation
from dockyard.registry.forwarding import ForwardingUploads, UploadCall
from dockyard.registry.listing import Listing
from dockyard.registry.manifests import PushedManifest
from dockyard.registry.protocols import Blobs, Manifests, Tags, Uploads, UseCases


def notifying(use_cases: UseCases, notifier: Notifier) -> UseCases:
    """``use_cases`` with uploads, blobs, manifests and tags wrapped."""
    uploads: Uploads = NotifyingUploads(use_cases.uploads, notifier)
    blobs: Blobs = NotifyingBlobs(use_cases.blobs, notifier)
    manifests: Manifests = NotifyingManifests(use_cases.manifests, notifier)
    tags: Tags = NotifyingTags(use_cases.tags, notifier)
    return use_cases.wrapped(uploads=uploads, blobs=blobs, manifests=manifests, tags=tags)


class NotifyingUploads(ForwardingUploads):
    """Blob commits (the final ``PUT``, a monolithic push) and mounts record their events
    inside their transactions."""

    def __init__(self, inner: Uploads, notifier: Notifier) -> None:
        super().__init__(inner)
        self._notifier = notifier

    def around(self, call: UploadCall) -> AbstractContextManager[object]:
        return nullcontext() if call == "append" else self._notifier.recording()


class NotifyingBlobs:
    def __init__(self, inner: Blobs, notifier: Notifier) -> None:
        self._inner = inner
        self._notifier = notifier

    async def locate(self, name: str, digest: Digest, method: str = "GET") -> BlobLocation:
        """A blob ``GET`` or ``HEAD`` that finds the blob is a pull, as in registry:2."""
        location = await self._inner.locate(name, digest, method)
        recorder = self._notifier.recorder
        await self._notifier.read(recorder.blob_pulled(name, str(digest), location.size))
        return location

    async def bytes_missing(self, name: str, digest: Digest) -> errors.RegistryError:
        return await self._inner.bytes_missing(name, digest)

    def stream(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        return self._inner.stream(digest, offset, length)

    async def delete(self, name: str, digest: Digest) -> None:
        with self._notifier.recording():
            await self._inner.delete(name, digest)


class NotifyingManifests:
    def __init__(self, inner: Manifests, notifier: Notifier) -> None:
        self._inner = inner
        self._notifier = notifier

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest:
        with self._notifier.recording():
            return await self._inner.push(name, reference, payload, content_type)

    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
        """A manifest ``GET`` or ``HEAD`` (by tag: the event names the tag)."""
        record = await self._inner.get(name, reference, accept, method)
        tag = None if is_digest(reference) else reference
        await self._notifier.read(self._notifier.recorder.manifest_pulled(name, record, tag))
        return record

    async def delete(self, name: str, digest: str) -> None:
        with self._notifier.recording():
            await self._inner.delete(name, digest)


class NotifyingTags:
    def __init__(self, inner: Tags, notifier: Notifier) -> None:
        self._inner = inner
        self._notifier = notifier

    async def list(self, name: str, page: Page) -> Listing:
        return await self._inner.list(name, page)

    async def delete(self, name: str, tag: str) -> None:
        with self._notifier.recording():
            await self._inner.delete(name, tag)
