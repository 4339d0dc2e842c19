"""Push sessions, noted by the requests of a push: the review delay counts from the last one.

Every request that pushes into a repository (a blob ``HEAD``, an upload's start, chunks and
end, a mount, a manifest push) notes the repository's session before it runs
(:mod:`dockyard.metadata.push_sessions`), so that what the push wanted earlier stays while
it goes on: the children of an index while the client pushes the other children, a layer
found by a ``HEAD`` while the client uploads the others. To spare the database a write per
request, a worker notes a repository at most once per :func:`head_refresh` of the delay;
the collector's window already allows for that lag (:func:`review_window`). A request that
takes longer (a big upload, a push waiting for a lock) notes its repository again every
refresh and a half until it ends, so that a push in flight is never taken for a rest: a
heartbeat that lives as long as the worker (started by the first push, stopped by
:meth:`PushSessions.close`) looks at the requests in flight every half refresh, and a
request only counts itself in and out (no task of its own: on a quiet worker nearly every
request would start and cancel one).

A ``HEAD`` of a manifest by digest keeps that manifest as a blob's ``HEAD`` keeps the blob
(a client that finds an index's child skips pushing it), recorded as seldom.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from datetime import timedelta

from dockyard.gc.review import REMEMBERED, HeadKeepsBlobs, head_refresh, review_window
from dockyard.metadata.records import ManifestRecord
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import utc_now
from dockyard.oci import errors
from dockyard.oci.digest import Digest, is_digest
from dockyard.oci.ranges import ByteRange
from dockyard.registry.blobs import BlobLocation
from dockyard.registry.body import Body
from dockyard.registry.forwarding import ForwardingUploads
from dockyard.registry.manifests import PushedManifest
from dockyard.registry.protocols import Blobs, Manifests, Uploads

log = logging.getLogger("dockyard.gc")


#: the heartbeat's shortest period, in seconds (a review delay of zero has no refresh)
SHORTEST_BEAT = 0.05


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
        #: "repository@digest" -> time.monotonic() of this process's last keep of a manifest
        self._kept: OrderedDict[str, float] = OrderedDict()
        #: repository -> requests in flight that push into it (noted by the heartbeat)
        self._in_flight: Counter[str] = Counter()
        self._heartbeat: asyncio.Task[None] | None = None
        self._beat_every = max(self._refresh / 2, SHORTEST_BEAT)

    def pushing(self, name: str) -> _Pushing:
        """Around a request that pushes into ``name``: noted now, and at least every
        refresh and a half until the request ends."""
        return _Pushing(self, name)

    async def _count_in(self, name: str) -> None:
        await self.note(name)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        self._in_flight[name] += 1

    def _count_out(self, name: str) -> None:
        self._in_flight[name] -= 1
        if self._in_flight[name] <= 0:
            del self._in_flight[name]

    async def close(self) -> None:
        """Stop the heartbeat (at shutdown, once no request runs)."""
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _beat(self) -> None:
        """Note the repositories of requests in flight, every half refresh: :meth:`note`
        writes one at most once a refresh, so a request's repository goes at most a
        refresh and a half without a note (well within the window the collector allows:
        the delay and a refresh). Idle, a beat looks at an empty counter."""
        while True:
            await asyncio.sleep(self._beat_every)
            for name in list(self._in_flight):
                try:
                    await self.note(name)
                except Exception:  # the next beat tries again; the request goes on
                    log.warning("push session of %s not noted", name, exc_info=True)

    async def note(self, name: str) -> None:
        now = time.monotonic()
        noted = self._noted.get(name)
        if noted is not None and now - noted < self._refresh:
            return
        await self._metadata.note_push(name, utc_now(), self._window)
        _remember(self._noted, name, now)

    async def keep_manifest(self, name: str, digest: str) -> bool:
        """Record that a ``HEAD`` found manifest ``digest`` of ``name`` (at most once per
        refresh in this process); False if it is gone."""
        key = f"{name}@{digest}"
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and now - kept < self._refresh:
            return True
        if not await self._metadata.want_manifest(name, digest):
            self._kept.pop(key, None)
            return False
        _remember(self._kept, key, now)
        return True

    def uploads(self, inner: Uploads) -> Uploads:
        return _UploadsInSession(inner, self)

    def blobs(self, inner: Blobs) -> Blobs:
        """``inner`` with a ``HEAD`` that notes the session and keeps the blob it finds
        (:class:`~dockyard.gc.review.HeadKeepsBlobs`)."""
        return _HeadInSession(inner, self._metadata, self._review_after, self)

    def manifests(self, inner: Manifests) -> Manifests:
        return _ManifestsInSession(inner, self)


class _Pushing:
    """:meth:`PushSessions.pushing`: a class, not an ``asynccontextmanager``, which costs
    an async generator and its throw per request (about 2 µs of each blob ``HEAD``)."""

    __slots__ = ("_name", "_sessions")

    def __init__(self, sessions: PushSessions, name: str) -> None:
        self._sessions = sessions
        self._name = name

    async def __aenter__(self) -> None:
        await self._sessions._count_in(self._name)

    async def __aexit__(self, *_exc: object) -> None:
        self._sessions._count_out(self._name)


def _remember(times: OrderedDict[str, float], key: str, now: float) -> None:
    times[key] = now
    times.move_to_end(key)
    if len(times) > REMEMBERED:
        times.popitem(last=False)


class _UploadsInSession(ForwardingUploads):
    def __init__(self, inner: Uploads, sessions: PushSessions) -> None:
        super().__init__(inner)
        self._sessions = sessions

    async def start(self, name: str) -> str:
        async with self._sessions.pushing(name):
            return await super().start(name)

    async def append(
        self,
        name: str,
        upload_id: str,
        body: Body,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        async with self._sessions.pushing(name):
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
        async with self._sessions.pushing(name):
            return await super().complete(
                name, upload_id, digest, body, content_range, content_length
            )

    async def monolithic(
        self, name: str, digest: Digest, body: Body, content_length: int | None
    ) -> int:
        async with self._sessions.pushing(name):
            return await super().monolithic(name, digest, body, content_length)

    async def mount(self, name: str, digest: Digest, source: str | None) -> int | None:
        async with self._sessions.pushing(name):
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
        if method != "HEAD":
            return await super().locate(name, digest, method)
        async with self._sessions.pushing(name):
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
        async with self._sessions.pushing(name):
            return await self._inner.push(name, reference, payload, content_type)

    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
        """A ``HEAD`` by digest keeps the manifest it finds, as a blob's does: a client
        that finds an index's child skips pushing it and then pushes the index."""
        record = await self._inner.get(name, reference, accept, method)
        headed = method == "HEAD" and is_digest(reference)
        if headed and not await self._sessions.keep_manifest(name, record.digest):
            detail = {"name": name, "reference": reference}
            raise errors.RegistryError(errors.MANIFEST_UNKNOWN, detail=detail)
        return record

    async def delete(self, name: str, digest: str) -> None:
        await self._inner.delete(name, digest)
