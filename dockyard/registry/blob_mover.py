"""The mover: puts the bytes of deferred commits (``storage.s3.deferredcopy``) at their
blob's Distribution path, so that the bucket's layout is Distribution's again.

One mover runs at a time across workers and replicas (the ``blob-move`` lease). Every worker
runs the loop: a deferred commit wakes its own worker's at once, and each also looks every
``poll`` for rows a dead process left. For each pending blob it copies the upload's object
to the blob's path (a multipart copy above the threshold), then marks the row moved in one
transaction: reads go to the blob's path from then on, and every read cache is invalidated.
The upload's object is deleted only after ``grace`` (longer than a redirect's expiry, so a
presigned URL handed out before the move still works), and then the row forgets it.

A mover killed anywhere leaves a state the next one finishes: a copy made but not marked is
made again; a mark without a delete waits out its grace again; a delete whose row was not
cleared finds nothing to delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from dockyard.metadata.leases import Leases
from dockyard.metadata.pending_blobs import PendingBlob
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.storage import paths
from dockyard.storage.deferred import DeferredCopies
from dockyard.storage.driver import PathNotFoundError, StorageDriver

log = logging.getLogger("dockyard.blob_mover")

LEASE: Final = "blob-move"
#: Added to the redirect expiry: the grace before an upload's moved object is deleted.
GRACE_MARGIN: Final = timedelta(minutes=5)
DEFAULT_POLL: Final = timedelta(seconds=30)
# How soon a wake-up that found the lease held tries again.
_BUSY_RETRY: Final = 1.0


def grace_after(redirect_expiry: timedelta | None) -> timedelta:
    """How long a moved upload's object stays: past any redirect to it, and past any
    read cache (invalidated at once on PostgreSQL; a cached answer lives no longer)."""
    return (redirect_expiry or timedelta(0)) + GRACE_MARGIN


class BlobMover:
    def __init__(
        self,
        metadata: MetadataStore,
        storage: StorageDriver,
        leases: Leases,
        grace: timedelta,
        poll: timedelta = DEFAULT_POLL,
    ) -> None:
        self._metadata = metadata
        self._storage = storage
        self._copies = storage.capability(DeferredCopies)
        self._leases = leases
        self.grace = grace
        self.poll = poll

    async def run_once(self, finish_only: bool = False) -> bool | None:
        """One pass over the pending blobs under the lease: copies every one not moved,
        and (unless ``finish_only``) deletes the old objects whose grace is over. None when
        another process holds the lease; else whether anything is left for later."""
        async with self._leases.hold(LEASE) as held:
            if not held:
                return None
            return await self._pass(finish_only)

    async def finish_moves(self) -> None:
        """Copy every pending blob to its own path (waiting for another mover if one
        runs): for ``dockyard export`` and the offline ``garbage-collect``, which read the
        store in Distribution's layout. The old objects stay until their grace is over."""
        while True:
            outcome = await self.run_once(finish_only=True)
            if outcome is not None:
                pending = await self._metadata.pending_blobs()
                if not any(blob.moved_at is None for blob in pending):
                    return
            await asyncio.sleep(_BUSY_RETRY)

    async def _pass(self, finish_only: bool) -> bool:
        if self._copies is None:
            return False
        left = False
        moved = deleted = 0
        started = time.monotonic()
        for blob in await self._metadata.pending_blobs():
            if blob.moved_at is None:
                moved += await self._move(blob)
                left = True
            elif finish_only:
                continue
            elif datetime.now(UTC) - blob.moved_at >= self.grace:
                deleted += await self._forget(blob)
            else:
                left = True
        if moved or deleted:
            log.info(
                "blob mover: %d blobs copied to their own path, %d old objects deleted (%.1f s)",
                moved,
                deleted,
                time.monotonic() - started,
            )
        return left

    async def _move(self, blob: PendingBlob) -> int:
        assert self._copies is not None
        target = paths.blob_data(Digest.parse(blob.digest))
        started = time.monotonic()
        try:
            await self._copies.copy(blob.path, target)
        except PathNotFoundError:
            # Gone from under the row (removed behind Dockyard's back): as for any read
            # that finds a blob's bytes gone, the blob is unknown until pushed again.
            if await self._metadata.mark_blob_missing(blob.digest):
                log.error(
                    "blob mover: %s has no bytes at %s: marked missing", blob.digest, blob.path
                )
            return 0
        if not await self._metadata.mark_blob_moved(blob.digest, blob.path):
            return 0  # committed again meanwhile from elsewhere: the row says where
        log.info(
            "blob mover: %s copied from %s (%.1f s)",
            blob.digest,
            blob.path,
            time.monotonic() - started,
        )
        return 1

    async def _forget(self, blob: PendingBlob) -> int:
        with contextlib.suppress(PathNotFoundError):
            await self._storage.delete(blob.path)
        return int(await self._metadata.forget_pending_path(blob.digest, blob.path))

    async def run_forever(self) -> None:
        """Pass whenever a deferred commit of this process wakes the mover, and every
        ``poll``; sooner again while work is left or another process holds the lease."""
        wake = self._copies.moves_waiting() if self._copies is not None else asyncio.Event()
        while True:
            wake.clear()
            try:
                outcome = await self.run_once()
            except Exception:
                log.exception("blob mover failed")
                outcome = True
            wait = self.poll.total_seconds()
            if outcome is None:
                wait = min(wait, _BUSY_RETRY)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(wait, 0.05))


async def finish_moves(metadata: MetadataStore, storage: StorageDriver) -> None:
    """:meth:`BlobMover.finish_moves` for a command (nothing to do on a driver that never
    defers a copy)."""
    if storage.capability(DeferredCopies) is None:
        return
    mover = BlobMover(metadata, storage, Leases(metadata.engine), grace=timedelta.max)
    await mover.finish_moves()
