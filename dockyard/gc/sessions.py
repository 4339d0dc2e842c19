"""Push sessions, noted by the requests of a push: the review delay counts from the last one.

Every request that pushes into a repository (a blob ``HEAD``, an upload's start, chunks and
end, a mount, a manifest push) notes the repository's session before it runs
(:mod:`dockyard.metadata.push_sessions`), so that what the push wanted earlier stays while
it goes on: the children of an index while the client pushes the other children, a layer
found by a ``HEAD`` while the client uploads the others. To spare the database a write per
request, a worker notes a repository at most once per :func:`head_refresh` of the delay;
the collector's window already allows for that lag (:func:`review_window`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import timedelta

from dockyard.gc.review import REMEMBERED, HeadKeepsBlobs, head_refresh, review_window
from dockyard.metadata.records import ManifestRecord
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import utc_now
from dockyard.oci.digest import Digest
from dockyard.oci.ranges import ByteRange
from dockyard.registry.blobs import BlobLocation
from dockyard.registry.body import Body
from dockyard.registry.forwarding import ForwardingUploads
from dockyard.registry.manifests import PushedManifest
from dockyard.registry.protocols import Blobs, Manifests, Uploads


class PushSessions:
    """Notes pushes per repository, at most once per refresh in this process; makes the
    wrappers of the use cases whose requests push."""

    def __init__(self, metadata: MetadataStore, review_after: timedelta) -> None:
        self._metadata = metadata
        self._review_after = review_after
        self._window = review_window(review_after)
        self._refresh = head_refresh(review_after).total_seconds()
        #: repository -> time.monotonic() of this process's last note
        self._noted: OrderedDict[str, float] = OrderedDict()

    async def note(self, name: str) -> None:
        now = time.monotonic()
        noted = self._noted.get(name)
        if noted is not None and now - noted < self._refresh:
            return
        await self._metadata.note_push(name, utc_now(), self._window)
        self._noted[name] = now
        self._noted.move_to_end(name)
        if len(self._noted) > REMEMBERED:
            self._noted.popitem(last=False)

    def uploads(self, inner: Uploads) -> Uploads:
        return _UploadsInSession(inner, self)

    def blobs(self, inner: Blobs) -> Blobs:
        """``inner`` with a ``HEAD`` that notes the session and keeps the blob it finds
        (:class:`~dockyard.gc.review.HeadKeepsBlobs`)."""
        return _HeadInSession(inner, self._metadata, self._review_after, self)

    def manifests(self, inner: Manifests) -> Manifests:
        return _ManifestsInSession(inner, self)


class _UploadsInSession(ForwardingUploads):
    def __init__(self, inner: Uploads, sessions: PushSessions) -> None:
        super().__init__(inner)
        self._sessions = sessions

    async def start(self, name: str) -> str:
        await self._sessions.note(name)
        return await super().start(name)

    async def append(
        self,
        name: str,
        upload_id: str,
        body: Body,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        await self._sessions.note(name)
        return await super().append(name, upload_id, body, content_range, content_length)

    async def complete(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        body: Body | None,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        await self._sessions.note(name)
        return await super().complete(name, upload_id, digest, body, content_range, content_length)

    async def monolithic(
        self, name: str, digest: Digest, body: Body, content_length: int | None
    ) -> int:
        await self._sessions.note(name)
        return await super().monolithic(name, digest, body, content_length)

    async def mount(self, name: str, digest: Digest, source: str | None) -> int | None:
        await self._sessions.note(name)
        return await super().mount(name, digest, source)


class _HeadInSession(HeadKeepsBlobs):
    """A ``HEAD`` is how a push asks whether to upload: it notes the session, then keeps
    the blob it finds."""

    def __init__(
        self,
        inner: Blobs,
        metadata: MetadataStore,
        review_after: timedelta,
        sessions: PushSessions,
    ) -> None:
        super().__init__(inner, metadata, review_after)
        self._sessions = sessions

    async def locate(self, name: str, digest: Digest, method: str = "GET") -> BlobLocation:
        if method == "HEAD":
            await self._sessions.note(name)
        return await super().locate(name, digest, method)


class _ManifestsInSession:
    """A manifest push notes the session before its references are checked: what the
    push wanted earlier (an index's children, a manifest's layers) stays until then."""

    def __init__(self, inner: Manifests, sessions: PushSessions) -> None:
        self._inner = inner
        self._sessions = sessions

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest:
        await self._sessions.note(name)
        return await self._inner.push(name, reference, payload, content_type)

    async def get(self, name: str, reference: str, accept: set[str] | None) -> ManifestRecord:
        return await self._inner.get(name, reference, accept)

    async def delete(self, name: str, digest: str) -> None:
        await self._inner.delete(name, digest)
