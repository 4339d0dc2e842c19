"""Manifests: reading by tag or digest, the push transaction with its reference checks,
deletion, and referrers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Select, Table, and_, bindparam, delete, select, update

from dockyard.metadata import schema as t
from dockyard.metadata.changes import (
    ManifestDeleted,
    ManifestPushed,
    record_change,
)
from dockyard.metadata.engine import (
    DbConnection,
    prepared,
)
from dockyard.metadata.generation import MISS
from dockyard.metadata.records import (
    ManifestRecord,
    ManifestToStore,
    MissingReferencesError,
    ReferrerRecord,
)
from dockyard.metadata.transactions import PRESENT, StoreBase, utc_now

_MANIFEST_COLUMNS = (
    t.manifests.c.digest,
    t.manifests.c.media_type,
    t.manifests.c.size,
    t.manifests.c.payload,
)
_MANIFEST_BY_DIGEST = prepared(
    select(*_MANIFEST_COLUMNS)
    .select_from(
        t.repositories.join(t.manifests, t.manifests.c.repository_id == t.repositories.c.id)
    )
    .where(t.repositories.c.name == bindparam("name"), t.manifests.c.digest == bindparam("ref"))
)
_MANIFEST_BY_TAG = prepared(
    select(*_MANIFEST_COLUMNS)
    .select_from(
        t.repositories.join(t.manifests, t.manifests.c.repository_id == t.repositories.c.id).join(
            t.tags, t.tags.c.manifest_id == t.manifests.c.id
        )
    )
    .where(t.repositories.c.name == bindparam("name"), t.tags.c.name == bindparam("ref"))
)
_MANIFEST_ID = prepared(
    select(t.manifests.c.id).where(
        t.manifests.c.repository_id == bindparam("repository_id"),
        t.manifests.c.digest == bindparam("digest"),
    )
)
_INSERT_MANIFEST = prepared(t.manifests.insert().returning(t.manifests.c.id))
# One referenced digest at a time, on SQLite (whose write lock keeps collectors out): a
# prepared lookup per digest costs less than building an IN list for a few.
_PRESENT_BLOB_LINK = prepared(
    select(t.repository_blobs.c.digest)
    .join(t.blobs, t.blobs.c.digest == t.repository_blobs.c.digest)
    .where(
        t.repository_blobs.c.repository_id == bindparam("repository_id"),
        t.repository_blobs.c.digest == bindparam("digest"),
        PRESENT,
    )
)
_MANIFEST_IN_REPOSITORY = prepared(
    select(t.manifests.c.digest).where(
        t.manifests.c.repository_id == bindparam("repository_id"),
        t.manifests.c.digest == bindparam("digest"),
    )
)
_ONE_BY_ONE = 32
_UNQUEUE_MANIFEST_BYTES = prepared(
    delete(t.gc_manifest_bytes)
    .where(t.gc_manifest_bytes.c.digest == bindparam("digest"))
    .returning(t.gc_manifest_bytes.c.deleted_at)
)
_INSERT_REFERENCE = prepared(t.manifest_references.insert())


def _referenced(kind: str) -> Select[tuple[str]]:
    """The digests a manifest references, of ``kind`` (``blob`` or ``manifest``)."""
    r = t.manifest_references
    return select(r.c.digest).where(r.c.manifest_id == bindparam("manifest_id"), r.c.kind == kind)


_WANT_REFERENCED_BLOBS = prepared(
    update(t.blobs)
    .where(t.blobs.c.digest.in_(_referenced("blob")))
    .values(wanted_at=bindparam("now"))
)
_WANT_REFERENCED_CHILDREN = prepared(
    update(t.manifests)
    .where(
        t.manifests.c.repository_id == bindparam("in_repository"),
        t.manifests.c.digest.in_(_referenced("manifest")),
    )
    .values(wanted_at=bindparam("now"))
)
_WANT_MANIFEST = prepared(
    update(t.manifests)
    .where(t.manifests.c.id == bindparam("manifest_id"))
    .values(wanted_at=bindparam("now"))
)

# Deleting manifests by id: the tags pointing at them, their references, their rows.
_REMOVE_MANIFESTS = tuple(
    delete(table).where(column.in_(bindparam("ids", expanding=True)))
    for table, column in (
        (t.tags, t.tags.c.manifest_id),
        (t.manifest_references, t.manifest_references.c.manifest_id),
        (t.manifests, t.manifests.c.id),
    )
)


class KeptTagError(Exception):
    """A deletion would remove a tag that must be kept (the tag is the argument)."""


class ManifestQueries(StoreBase):
    """Manifests, their references and referrers."""

    async def _serialize_manifest_writes(
        self, connection: DbConnection, repository_id: int
    ) -> None:
        """On PostgreSQL, make manifest writes to one repository take turns (SQLite's write
        lock already does): two pushes of one manifest would otherwise both find it absent
        and both insert it, and the second fail on the unique key. ``FOR NO KEY UPDATE``
        leaves alone the key-share locks of rows that merely reference the repository."""
        if self._dialect == "postgresql":
            await connection.execute(
                select(t.repositories.c.id)
                .where(t.repositories.c.id == repository_id)
                .with_for_update(key_share=True)
            )

    async def get_manifest(
        self, name: str, reference: str, by_digest: bool
    ) -> ManifestRecord | None:
        """The manifest at a digest or tag of repository ``name`` (cached)."""
        await self._caught_up()
        key = ("manifest", name, reference, by_digest)
        cached = self._cache.get(key)
        if cached is not MISS:
            return cast(ManifestRecord | None, cached)
        generation = self.generation.current()
        query = _MANIFEST_BY_DIGEST if by_digest else _MANIFEST_BY_TAG
        async with self._read() as connection:
            row = (await connection.execute(query, {"name": name, "ref": reference})).one_or_none()
        record = (
            None
            if row is None
            else ManifestRecord(row.digest, row.media_type, row.size, bytes(row.payload))
        )
        self._cache.put(key, generation, record)
        return record

    async def put_manifest(self, name: str, manifest: ManifestToStore, tag: str | None) -> bool:
        """Store a manifest, its references and its tag in one transaction.

        Raises MissingReferencesError (and changes nothing) when a referenced blob or child
        manifest is not in the repository. Returns True when a collector deleted the
        manifest's bytes at its blob path after the caller wrote them there (they were
        queued as garbage): the caller writes them again, which is safe now that a row
        names them.
        """
        async with self._write() as connection:
            repository_id = await self._ensure_repository(connection, name)
            await self._serialize_manifest_writes(connection, repository_id)
            await self._check_references(connection, repository_id, manifest)
            existing = await connection.execute(
                _MANIFEST_ID, {"repository_id": repository_id, "digest": manifest.digest}
            )
            manifest_id = existing.scalar_one_or_none()
            now = utc_now()
            bytes_collected = await self._unqueue_manifest_bytes(connection, manifest.digest)
            if manifest_id is None:
                result = await connection.execute(
                    _INSERT_MANIFEST,
                    {
                        "repository_id": repository_id,
                        "digest": manifest.digest,
                        "media_type": manifest.media_type,
                        "artifact_type": manifest.artifact_type,
                        "size": len(manifest.payload),
                        "payload": manifest.payload,
                        "subject_digest": manifest.subject_digest,
                        "annotations": json.dumps(manifest.annotations)
                        if manifest.annotations
                        else None,
                        "created_at": now,
                        "wanted_at": now,
                    },
                )
                manifest_id = result.scalar_one()
                references = [
                    {"manifest_id": manifest_id, "digest": d, "kind": "blob"}
                    for d in dict.fromkeys(manifest.blob_digests)
                ] + [
                    {"manifest_id": manifest_id, "digest": d, "kind": "manifest"}
                    for d in dict.fromkeys(manifest.child_digests)
                ]
                if references:
                    await connection.execute(_INSERT_REFERENCE, references)
            else:
                await connection.execute(_WANT_MANIFEST, {"manifest_id": manifest_id, "now": now})
            # What the manifest references is wanted now: two prepared statements over
            # its reference rows, whatever their number.
            wanted = {"manifest_id": manifest_id, "now": now}
            if manifest.blob_digests:
                await connection.execute(_WANT_REFERENCED_BLOBS, wanted)
            if manifest.child_digests:
                await connection.execute(
                    _WANT_REFERENCED_CHILDREN, {**wanted, "in_repository": repository_id}
                )
            if tag is not None:
                await connection.execute(
                    self._upsert_tag,
                    {
                        "repository_id": repository_id,
                        "name": tag,
                        "manifest_id": manifest_id,
                        "updated_at": now,
                    },
                )
            pushed = ManifestPushed(
                name, manifest.digest, manifest.media_type, manifest.payload, tag
            )
            await record_change(connection, pushed)
            return bytes_collected

    async def queue_unclaimed_manifest_bytes(self, digest: str, size: int) -> None:
        """Queue for the collector's review the bytes that a manifest push wrote at their
        blob path before its transaction was refused or failed (unless a manifest row
        names them): else nothing would ever delete them. A push of the same bytes that
        commits later takes them out of the queue again, as after a delete."""
        async with self._write(invalidates=False) as connection:
            await self._queue_manifest_bytes(connection, {digest: size})

    async def _unqueue_manifest_bytes(self, connection: DbConnection, digest: str) -> bool:
        """Take ``digest`` out of the collector's review queue of manifest bytes (it is
        wanted again); True if the collector had deleted its bytes. On PostgreSQL this
        waits for a collector holding the queue row, then reads what it did."""
        result = await connection.execute(_UNQUEUE_MANIFEST_BYTES, {"digest": digest})
        return any(deleted_at is not None for deleted_at in result.scalars())

    async def _queue_manifest_bytes(
        self, connection: DbConnection, sizes: dict[str, int], queued_at: datetime | None = None
    ) -> None:
        """Queue for review the manifest bytes of ``sizes``' digests that no manifest row
        has any more (called in the transaction that deleted rows), as of ``queued_at``
        (default: now). The review re-checks under its lock that no row names them."""
        if not sizes:
            return
        still = set(
            (
                await connection.execute(
                    select(t.manifests.c.digest).where(t.manifests.c.digest.in_(sizes))
                )
            ).scalars()
        )
        now = queued_at or utc_now()
        rows = [
            {"digest": d, "size": size, "queued_at": now, "deleted_at": None}
            for d, size in sizes.items()
            if d not in still
        ]
        if rows:
            insert = self._insert(t.gc_manifest_bytes)
            await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=["digest"],
                    set_={"queued_at": insert.excluded.queued_at, "deleted_at": None},
                ),
                rows,
            )

    async def repository_manifest_digests(self, name: str) -> set[str]:
        """Every manifest stored in repository ``name``."""
        return await self._digests_in(t.manifests, name)

    async def _check_references(
        self, connection: DbConnection, repository_id: int, manifest: ManifestToStore
    ) -> None:
        missing_blobs = await self._missing(
            connection, t.repository_blobs, repository_id, manifest.blob_digests
        )
        missing_manifests = await self._missing(
            connection, t.manifests, repository_id, manifest.child_digests
        )
        if missing_blobs or missing_manifests:
            raise MissingReferencesError(missing_blobs, missing_manifests)

    async def _missing(
        self, connection: DbConnection, table: Table, repository_id: int, digests: Sequence[str]
    ) -> list[str]:
        """Which of ``digests`` have no row in ``table`` for the repository, sorted. A
        blob link counts only while the blob's bytes are not known to be missing. The rows
        found stay locked against a collector until the transaction ends."""
        if not digests:
            return []
        wanted = set(digests)
        if self._dialect == "sqlite" and len(wanted) <= _ONE_BY_ONE:
            lookup = _PRESENT_BLOB_LINK if table is t.repository_blobs else _MANIFEST_IN_REPOSITORY
            absent = []
            for digest in wanted:
                parameters = {"repository_id": repository_id, "digest": digest}
                if (await connection.execute(lookup, parameters)).first() is None:
                    absent.append(digest)
            return sorted(absent)
        query = select(table.c.digest).where(
            table.c.repository_id == repository_id, table.c.digest.in_(wanted)
        )
        if table is t.repository_blobs:
            query = query.join(t.blobs, t.blobs.c.digest == table.c.digest).where(PRESENT)
            query = self._for_wanting(query)
        else:
            query = self._for_share(query, table)
        found = await connection.execute(query)
        return sorted(wanted - set(found.scalars()))

    async def delete_manifest(
        self, name: str, digest: str, keep_tag: Callable[[str], bool] | None = None
    ) -> bool:
        """Delete a manifest and every tag that points at it.

        ``keep_tag``: raises KeptTagError (and deletes nothing) when one of those tags is
        one it says to keep (immutable tags), checked in the deleting transaction, after
        the repository's manifest writes are serialised."""
        async with self._write() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return False
            m = t.manifests
            if keep_tag is not None:
                await self._serialize_manifest_writes(connection, repository_id)
            manifest_id = (
                await connection.execute(
                    select(m.c.id).where(m.c.repository_id == repository_id, m.c.digest == digest)
                )
            ).scalar_one_or_none()
            if manifest_id is None:
                return False
            names = await connection.execute(
                select(t.tags.c.name).where(t.tags.c.manifest_id == manifest_id)
            )
            tags = tuple(sorted(names.scalars()))
            kept = [tag for tag in tags if keep_tag is not None and keep_tag(tag)]
            if kept:
                raise KeptTagError(kept[0])
            await self._remove_manifests(connection, [manifest_id])
            await record_change(connection, ManifestDeleted(name, digest, tags))
            return True

    async def _remove_manifests(self, connection: DbConnection, ids: Sequence[int]) -> None:
        """Delete manifests' rows, their references and every tag that points at them,
        and queue the bytes no manifest row names any more for the collector's review."""
        if not ids:
            return
        m = t.manifests
        sizes = await connection.execute(select(m.c.digest, m.c.size).where(m.c.id.in_(ids)))
        removed = {digest: int(size) for digest, size in sizes.all()}
        for statement in _REMOVE_MANIFESTS:
            await connection.execute(statement, {"ids": list(ids)})
        await self._queue_manifest_bytes(connection, removed)

    async def referrers(
        self, name: str, subject: str, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        m = t.manifests
        conditions = [t.repositories.c.name == name, m.c.subject_digest == subject]
        query = (
            select(m.c.digest, m.c.media_type, m.c.size, m.c.artifact_type, m.c.annotations)
            .select_from(t.repositories.join(m, m.c.repository_id == t.repositories.c.id))
            .where(and_(*conditions))
            .order_by(m.c.created_at, m.c.id)
        )
        if artifact_type is not None:
            query = query.where(m.c.artifact_type == artifact_type)
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return [
            ReferrerRecord(
                r.digest,
                r.media_type,
                r.size,
                r.artifact_type,
                json.loads(r.annotations) if r.annotations else {},
            )
            for r in rows
        ]
