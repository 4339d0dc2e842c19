"""The review delay: what was wanted within it is never collected.

Every commit, link, mount and reference records when a blob or manifest was wanted
(``wanted_at``). A ``HEAD`` that finds a blob records it too, since the client may skip the
upload and reference the blob moments later; to spare the database a write per ``HEAD``,
it is recorded at most once per :func:`head_refresh` of the delay, and the collector waits
that much longer, so that nothing found by a ``HEAD`` within the delay is collected.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import utc_now
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.registry.blobs import BlobLocation
from dockyard.registry.protocols import Blobs

#: blobs whose last record this process remembers (an optimisation only)
REMEMBERED = 100_000
#: how many review delays a push session keeps what it wanted, at the most ...
SESSION_DELAYS = 32
#: ... and how much longer than the delay, at the most (for long delays)
SESSION_EXTRA = timedelta(hours=1)


def head_refresh(review_after: timedelta) -> timedelta:
    """How old a blob's ``wanted_at`` may be before a ``HEAD`` records it again."""
    return review_after / 8


def review_window(review_after: timedelta) -> timedelta:
    """The review delay, and the refresh by which a recorded want may lag the request."""
    return review_after + head_refresh(review_after)


def collectable_before(now: datetime, review_after: timedelta) -> datetime:
    """The collector's cutoff: only what was last wanted before it may go."""
    return now - review_window(review_after)


def sessions_keep_since(now: datetime, review_after: timedelta) -> datetime:
    """The oldest want that a push session which still runs keeps
    (:mod:`dockyard.gc.sessions`): :data:`SESSION_DELAYS` review delays back, and never
    more than :data:`SESSION_EXTRA` beyond the delay, so that what a repository that
    never rests leaves behind is still collected."""
    return now - min(review_after * SESSION_DELAYS, review_after + SESSION_EXTRA)


class HeadKeepsBlobs:
    """The ``Blobs`` use case, with a ``HEAD`` that keeps the blob it finds (a wrapper:
    every other call goes to the inner implementation)."""

    def __init__(self, inner: Blobs, metadata: MetadataStore, review_after: timedelta) -> None:
        self._inner = inner
        self._metadata = metadata
        self._refresh = head_refresh(review_after).total_seconds()
        #: digest -> time.monotonic() of the wanted_at this process last knew of
        self._known: OrderedDict[str, float] = OrderedDict()

    async def locate(self, name: str, digest: Digest, method: str = "GET") -> BlobLocation:
        location = await self._inner.locate(name, digest, method)
        # (A blob not stored yet, which a pull-through cache answers for, has nothing to keep.)
        if method == "HEAD" and location.stored and not await self._keep(str(digest)):
            # Collected between the look and the record: the client must upload it.
            raise errors.RegistryError(errors.BLOB_UNKNOWN, detail={"digest": str(digest)})
        return location

    async def _keep(self, digest: str) -> bool:
        """Make sure the blob stays through the delay; False if it is gone already. A
        ``wanted_at`` younger than the refresh needs no write: no collector takes the
        blob before the delay has passed since then."""
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and now - known < self._refresh:
            return True
        wanted = await self._metadata.blob_wanted_at(digest)
        age = None if wanted is None else (utc_now() - wanted).total_seconds()
        if age is None or age >= self._refresh:
            if not await self._metadata.want_blob(digest):
                self._known.pop(digest, None)
                return False
            age = 0.0
        self._known[digest] = now - age
        self._known.move_to_end(digest)
        if len(self._known) > REMEMBERED:
            self._known.popitem(last=False)
        return True

    async def bytes_missing(self, name: str, digest: Digest) -> errors.RegistryError:
        return await self._inner.bytes_missing(name, digest)

    def stream(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        return self._inner.stream(digest, offset, length)

    async def delete(self, name: str, digest: Digest) -> None:
        await self._inner.delete(name, digest)
