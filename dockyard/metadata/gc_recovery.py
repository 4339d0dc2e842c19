"""What the collector writes when a batch's transaction failed after its bytes may have
gone (:mod:`dockyard.gc.recovery`): each in a transaction of its own, under the locks of
the rows it changes, so that a push of the same digest meanwhile either committed first
(and the caller's look at the storage finds its bytes) or waits and then sees the mark.
On PostgreSQL rows another transaction holds are skipped, not waited for (a manifest push
locks many blob rows in its own order: waiting could deadlock it), and named ``busy`` for
the caller to try again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from dockyard.metadata import schema as t
from dockyard.metadata.engine import DbConnection
from dockyard.metadata.gc_queries import BlobCandidate, Deletion
from dockyard.metadata.transactions import PRESENT, StoreBase, utc_now

_b = t.blobs
_q = t.gc_manifest_bytes


@dataclass
class Marking(Deletion):
    """The rows a marking transaction locked (``candidates``: those not kept are marked
    when the block ends), and the digests whose rows another transaction held (``busy``)."""

    busy: list[str] = field(default_factory=list)


class GcRecoveryQueries(StoreBase):
    """Marks that stop the registry serving rows whose bytes a failed batch deleted."""

    @asynccontextmanager
    async def marking_blobs_missing(self, digests: Sequence[str]) -> AsyncIterator[Marking]:
        """Lock the present rows of ``digests`` and yield them; when the block ends, those
        the caller did not keep (it keeps those whose bytes it still finds) are marked
        missing, as :meth:`~dockyard.metadata.blob_links.BlobQueries.mark_blob_missing`
        does: unknown to every read, mount and reference check until uploaded again. Their
        links, queue entries and rows stay for the next collection to delete (it reviews
        them as before, and reports the deletion then); every read cache is invalidated."""
        async with self._write(served=False) as connection:
            query = select(_b.c.digest, _b.c.size).where(_b.c.digest.in_(list(digests)), PRESENT)
            marking = await self._locked(connection, query)
            yield marking
            marked = [c.digest for c in marking.deleted]
            if marked:
                await connection.execute(
                    update(_b).where(_b.c.digest.in_(marked), PRESENT).values(missing_at=utc_now())
                )

    @asynccontextmanager
    async def marking_manifest_bytes_deleted(
        self, digests: Sequence[str]
    ) -> AsyncIterator[Marking]:
        """As :meth:`marking_blobs_missing`, for queued manifest bytes: the queue rows of
        ``digests`` not yet marked are locked and yielded, and those the caller did not
        keep are marked deleted, as the failed batch would have (a push of the same
        manifest then reads the mark and writes its bytes again)."""
        async with self._write(invalidates=False) as connection:
            query = select(_q.c.digest, _q.c.size).where(
                _q.c.digest.in_(list(digests)), _q.c.deleted_at.is_(None)
            )
            marking = await self._locked(connection, query)
            yield marking
            marked = [c.digest for c in marking.deleted]
            if marked:
                await connection.execute(
                    update(_q).where(_q.c.digest.in_(marked)).values(deleted_at=utc_now())
                )

    async def _locked(self, connection: DbConnection, query: Any) -> Marking:
        """The rows of ``query`` (digest, size), locked; on PostgreSQL those another
        transaction holds are skipped and listed as busy. SQLite's write lock already
        excludes every other writer."""
        if self._dialect != "postgresql":
            rows = (await connection.execute(query)).all()
            return Marking([BlobCandidate(r.digest, r.size) for r in rows])
        rows = (await connection.execute(query.with_for_update(skip_locked=True))).all()
        locked = {r.digest for r in rows}
        found = (await connection.execute(query)).all()
        return Marking(
            [BlobCandidate(r.digest, r.size) for r in rows],
            busy=[r.digest for r in found if r.digest not in locked],
        )
