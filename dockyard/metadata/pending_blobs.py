"""Blobs whose bytes are not at their Distribution path yet (``storage.s3.deferredcopy``).

A row's ``pending_path`` names the storage path holding the bytes (the completed upload)
while ``moved_at`` is NULL; the mover copies them to the blob's path and sets ``moved_at``
(reads go there from then on); after a grace period it deletes the upload's object and
clears both. Each step is one short transaction, so a mover killed anywhere leaves a state
the next one finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from dockyard.metadata import schema as t
from dockyard.metadata.transactions import StoreBase, as_utc, utc_now

_b = t.blobs


@dataclass(frozen=True)
class PendingBlob:
    digest: str
    path: str
    moved_at: datetime | None


class PendingBlobQueries(StoreBase):
    async def pending_blobs(self, limit: int | None = 1000) -> list[PendingBlob]:
        """Blobs still holding bytes at another path than their own, oldest first (all of
        them with ``limit`` None)."""
        query = (
            select(_b.c.digest, _b.c.pending_path, _b.c.moved_at)
            .where(_b.c.pending_path.is_not(None))
            .order_by(_b.c.created_at)
            .limit(limit)
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return [
            PendingBlob(r.digest, r.pending_path, as_utc(r.moved_at) if r.moved_at else None)
            for r in rows
        ]

    async def blob_pending_path(self, digest: str) -> str | None:
        """The path holding the bytes of ``digest`` when it is not the blob's own yet."""
        query = select(_b.c.pending_path).where(_b.c.digest == digest, _b.c.moved_at.is_(None))
        async with self._read() as connection:
            return (await connection.execute(query)).scalar_one_or_none()

    async def mark_blob_moved(self, digest: str, path: str) -> bool:
        """The bytes at ``path`` are at the blob's own path now: reads go there (every
        process's read cache is invalidated by the write)."""
        async with self._write(served=False) as connection:
            result = await connection.execute(
                update(_b)
                .where(_b.c.digest == digest, _b.c.pending_path == path, _b.c.moved_at.is_(None))
                .values(moved_at=utc_now())
            )
            return bool(result.rowcount)

    async def forget_pending_path(self, digest: str, path: str) -> bool:
        """The moved bytes' old object at ``path`` is deleted."""
        async with self._write(served=False) as connection:
            result = await connection.execute(
                update(_b)
                .where(_b.c.digest == digest, _b.c.pending_path == path)
                .values(pending_path=None, moved_at=None)
            )
            return bool(result.rowcount)
