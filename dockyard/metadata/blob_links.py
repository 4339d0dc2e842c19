"""Blobs: committed blobs, their links into repositories, mounts, and blobs whose bytes
were found missing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, bindparam, delete, func, select, update

from dockyard.metadata import schema as t
from dockyard.metadata.changes import BlobDeleted, BlobMounted, BlobPushed, record_change
from dockyard.metadata.engine import (
    DbConnection,
    prepared,
)
from dockyard.metadata.generation import MISS
from dockyard.metadata.transactions import PRESENT, StoreBase, utc_now
from dockyard.metadata.upload_queries import DELETE_UPLOAD

_BLOB_SIZE = prepared(
    select(t.blobs.c.size).where(t.blobs.c.digest == bindparam("digest"), PRESENT)
)
_REPOSITORY_BLOB_SIZE = prepared(
    select(t.blobs.c.size, t.blobs.c.pending_path, t.blobs.c.moved_at)
    .select_from(
        t.repositories.join(
            t.repository_blobs, t.repository_blobs.c.repository_id == t.repositories.c.id
        ).join(t.blobs, t.blobs.c.digest == t.repository_blobs.c.digest)
    )
    .where(
        t.repositories.c.name == bindparam("name"),
        t.repository_blobs.c.digest == bindparam("digest"),
        PRESENT,
    )
)
# Whether a blob's row is there and present, read under its lock by a commit (PostgreSQL:
# ``FOR UPDATE``; SQLite's write lock covers it).
_BLOB_MISSING_AT = prepared(
    select(t.blobs.c.missing_at).where(t.blobs.c.digest == bindparam("digest"))
)
_BLOB_MISSING_AT_LOCKED = prepared(
    select(t.blobs.c.missing_at).where(t.blobs.c.digest == bindparam("digest")).with_for_update()
)


@dataclass(frozen=True)
class StoredBlob:
    """A blob linked into a repository: its size, and the storage path holding its bytes
    when that is not the blob's own path yet (``storage.s3.deferredcopy``)."""

    size: int
    pending_path: str | None = None


@dataclass
class Placement:
    """What a commit did inside :meth:`BlobQueries.committing_blob`: whether it put bytes
    in place, and the path other than the blob's own that holds them."""

    written: bool = False
    pending_path: str | None = None


class BlobQueries(StoreBase):
    """Committed blobs and their links."""

    async def blob_size(self, digest: str) -> int | None:
        """The size of a committed blob anywhere in the store."""
        async with self._read() as connection:
            result = await connection.execute(_BLOB_SIZE, {"digest": digest})
            return result.scalar_one_or_none()

    async def repository_blob_size(self, name: str, digest: str) -> int | None:
        """The size of a blob if it is linked into repository ``name`` (cached)."""
        stored = await self.repository_blob(name, digest)
        return None if stored is None else stored.size

    async def repository_blob(self, name: str, digest: str) -> StoredBlob | None:
        """A blob linked into repository ``name``: its size and where its bytes are (cached;
        the mover's write invalidates every process's cache, long before the old path's
        bytes are deleted)."""
        await self._caught_up()
        key = ("blob", name, digest)
        cached = self._cache.get(key)
        if cached is not MISS:
            return cast(StoredBlob | None, cached)
        generation = self.generation.current()
        async with self._read() as connection:
            result = await connection.execute(
                _REPOSITORY_BLOB_SIZE, {"name": name, "digest": digest}
            )
            row = result.one_or_none()
        stored = None
        if row is not None:
            pending = row.pending_path if row.moved_at is None else None
            stored = StoredBlob(int(row.size), pending)
        self._cache.put(key, generation, stored)
        return stored

    @asynccontextmanager
    async def committing_blob(
        self,
        name: str,
        digest: str,
        size: int,
        upload_id: str | None = None,
        placement: Placement | None = None,
    ) -> AsyncIterator[bool]:
        """Commit a verified blob in one transaction, and link it into repository ``name``;
        with ``upload_id``, end that upload session in it too.

        Yields whether the store already holds the blob's bytes. Until the block ends the
        blob's row stays locked (PostgreSQL: ``FOR UPDATE``; SQLite: the write lock), so a
        collector cannot delete the blob between that answer and the link: a caller told
        False makes the bytes visible inside the block, and an error there commits nothing.

        ``placement``, filled in by the caller (before the block or in it), says whether it
        put the bytes in place and where: the row then points there (the blob's own path
        when ``pending_path`` is None). A caller that wrote bytes for a blob found present
        keeps them out of the row (they are its to delete).
        """
        async with self._write() as connection:
            query = _BLOB_MISSING_AT_LOCKED if self._dialect == "postgresql" else _BLOB_MISSING_AT
            row = (await connection.execute(query, {"digest": digest})).one_or_none()
            present = row is not None and row.missing_at is None
            yield present
            now = utc_now()
            await connection.execute(
                self._insert_blob,
                {"digest": digest, "size": size, "created_at": now, "wanted_at": now},
            )
            if placement is not None and placement.written and not present:
                await connection.execute(
                    update(t.blobs)
                    .where(t.blobs.c.digest == digest)
                    .values(pending_path=placement.pending_path, moved_at=None)
                )
            repository_id = await self._ensure_repository(connection, name)
            await self._link(connection, repository_id, digest)
            if upload_id is not None:
                await connection.execute(DELETE_UPLOAD, {"id": upload_id})
            await record_change(connection, BlobPushed(name, digest, size))

    async def commit_blob(
        self, name: str, digest: str, size: int, upload_id: str | None = None
    ) -> None:
        """:meth:`committing_blob` for bytes already in place."""
        async with self.committing_blob(name, digest, size, upload_id):
            pass

    async def link_blobs(self, name: str, blobs: Sequence[tuple[str, int]]) -> None:
        """``commit_blob`` for many ``(digest, size)`` pairs, in one transaction."""
        if not blobs:
            return
        async with self._write() as connection:
            now = utc_now()
            await connection.execute(
                self._insert(t.blobs).on_conflict_do_nothing(index_elements=["digest"]),
                [
                    {"digest": d, "size": size, "created_at": now, "wanted_at": now}
                    for d, size in blobs
                ],
            )
            await self._want_blobs(connection, [d for d, _ in blobs], now)
            repository_id = await self._ensure_repository(connection, name)
            await connection.execute(
                self._insert(t.repository_blobs).on_conflict_do_nothing(
                    index_elements=["repository_id", "digest"]
                ),
                [
                    {"repository_id": repository_id, "digest": d, "created_at": now}
                    for d, _ in blobs
                ],
            )

    async def repository_blob_digests(self, name: str) -> set[str]:
        """Every blob linked into repository ``name``."""
        return await self._digests_in(t.repository_blobs, name)

    async def _link(self, connection: DbConnection, repository_id: int, digest: str) -> None:
        await connection.execute(
            self._insert_link,
            {"repository_id": repository_id, "digest": digest, "created_at": utc_now()},
        )

    async def mount_blob(self, name: str, digest: str, source: str | None) -> int | None:
        """Link a stored blob into ``name``: from repository ``source``, or from anywhere
        when ``source`` is None. Returns the size, or None when there is nothing to mount."""
        async with self._write() as connection:
            if source is not None:
                query: Select[Any] = (
                    select(t.blobs.c.size)
                    .select_from(
                        t.repositories.join(
                            t.repository_blobs,
                            t.repository_blobs.c.repository_id == t.repositories.c.id,
                        ).join(t.blobs, t.blobs.c.digest == t.repository_blobs.c.digest)
                    )
                    .where(t.repositories.c.name == source, t.blobs.c.digest == digest, PRESENT)
                )
            else:
                query = select(t.blobs.c.size).where(t.blobs.c.digest == digest, PRESENT)
            size = (await connection.execute(self._for_wanting(query))).scalar_one_or_none()
            if size is None:
                return None
            repository_id = await self._ensure_repository(connection, name)
            await self._link(connection, repository_id, digest)
            await self._want_blobs(connection, [digest], utc_now())
            await record_change(connection, BlobMounted(name, digest, int(size), source))
            return int(size)

    async def mark_blob_missing(self, digest: str) -> bool:
        """Record that the bytes of ``digest`` are gone from storage: from now on the blob
        is unknown (``HEAD`` and ``GET`` answer 404, manifests cannot reference it, mounts
        find nothing) until a client uploads it again. True if this call marked it. (Not a
        write Dockyard served: the store had already lost the bytes.)"""
        async with self._write(served=False) as connection:
            result = await connection.execute(
                update(t.blobs)
                .where(t.blobs.c.digest == digest, PRESENT)
                .values(missing_at=utc_now())
            )
            return bool(result.rowcount)

    async def missing_blob_count(self) -> int:
        """How many blobs are marked missing (see :meth:`mark_blob_missing`)."""
        query = select(func.count()).select_from(t.blobs).where(t.blobs.c.missing_at.is_not(None))
        async with self._read() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def unlink_blob(self, name: str, digest: str) -> bool:
        async with self._write() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return False
            result = await connection.execute(
                delete(t.repository_blobs).where(
                    t.repository_blobs.c.repository_id == repository_id,
                    t.repository_blobs.c.digest == digest,
                )
            )
            if not result.rowcount:
                return False
            await record_change(connection, BlobDeleted(name, digest))
            return True
