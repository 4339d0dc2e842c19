"""Queries and transactions over the metadata tables.

Each public coroutine is one transaction. Writes that must be atomic (a manifest with its
references and tag) happen inside one ``_write()`` block.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from dockyard.metadata import schema as t
from dockyard.metadata.engine import (
    Database,
    DbConnection,
    InlineEngine,
    prepared,
)
from dockyard.metadata.generation import MISS, ReadCache, WriteGeneration
from dockyard.metadata.listings import PATH_SEPARATOR_KEY, limit_value, listings
from dockyard.metadata.records import (
    ManifestRecord,
    ManifestToStore,
    MissingReferencesError,
    ReferrerRecord,
    UploadProgress,
    UploadRecord,
)
from dockyard.oci.names import TAG_SEPARATOR  # joins tags as a tags/list body does

# The ``registry_state`` key of the first write Dockyard served to the store.
SERVED_WRITE_KEY = "served_write_at"

# Hot-path statements, built once: building a statement costs more than running it.
_REPOSITORY_ID = prepared(
    select(t.repositories.c.id).where(t.repositories.c.name == bindparam("name"))
)
# A blob whose bytes were found missing (``missing_at``) is unknown until uploaded again.
_PRESENT = t.blobs.c.missing_at.is_(None)
_BLOB_SIZE = prepared(
    select(t.blobs.c.size).where(t.blobs.c.digest == bindparam("digest"), _PRESENT)
)
_REPOSITORY_BLOB_SIZE = prepared(
    select(t.blobs.c.size)
    .select_from(
        t.repositories.join(
            t.repository_blobs, t.repository_blobs.c.repository_id == t.repositories.c.id
        ).join(t.blobs, t.blobs.c.digest == t.repository_blobs.c.digest)
    )
    .where(
        t.repositories.c.name == bindparam("name"),
        t.repository_blobs.c.digest == bindparam("digest"),
        _PRESENT,
    )
)
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
_UPLOAD = prepared(select(t.uploads).where(t.uploads.c.id == bindparam("id")))
_INSERT_UPLOAD = prepared(t.uploads.insert())
_MANIFEST_ID = prepared(
    select(t.manifests.c.id).where(
        t.manifests.c.repository_id == bindparam("repository_id"),
        t.manifests.c.digest == bindparam("digest"),
    )
)
_INSERT_MANIFEST = prepared(t.manifests.insert().returning(t.manifests.c.id))
_INSERT_REFERENCE = prepared(t.manifest_references.insert())
_WANT_MANIFEST = prepared(
    update(t.manifests)
    .where(t.manifests.c.id == bindparam("manifest_id"))
    .values(wanted_at=bindparam("now"))
)
_DELETE_UPLOAD = prepared(delete(t.uploads).where(t.uploads.c.id == bindparam("id")))
_SAVE_UPLOAD_PROGRESS = prepared(
    update(t.uploads)
    .where(t.uploads.c.id == bindparam("upload_id"), t.uploads.c.size == bindparam("expected"))
    .values(
        size=bindparam("new_size"),
        driver_state=bindparam("new_driver_state"),
        hash_offset=bindparam("new_hash_offset"),
        hash_state=bindparam("new_hash_state"),
    )
)


def _now() -> datetime:
    return datetime.now(UTC)


def _upload_record(row: Any) -> UploadRecord:
    progress = UploadProgress(row.size, row.driver_state, row.hash_offset, row.hash_state)
    return UploadRecord(row.id, row.repository, _utc(row.started_at), progress)


def _utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC instant (SQLite hands it back without an offset)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Each process keeps whole tag lists of at most this many characters in all; the memory
# they take is about eight times that (the string, the list split from it, the body).
TAG_CACHE_CHARS = 2_000_000
# What an entry costs in the budget besides its characters, so that many empty lists
# are bounded too.
_TAG_ENTRY_COST = 100


class TagList:
    """Every tag of one repository in byte order, as one read saw them. Immutable.

    The database hands the tags back as one string, joined by :data:`TAG_SEPARATOR`: a
    row per tag (a tuple and a string made for each) costs more on a long list. The
    list is split from the string on first use. ``memo`` keeps what callers derive from
    the list (the API: its response body) for as long as the list itself is cached.
    """

    __slots__ = ("_joined", "_tags", "memo")

    def __init__(self, joined: str) -> None:
        self._joined = joined
        self._tags: list[str] | None = None
        self.memo: dict[str, object] = {}

    @classmethod
    def of(cls, tags: Iterable[str]) -> TagList:
        return cls(TAG_SEPARATOR.join(tags))

    @classmethod
    def in_byte_order(cls, joined: str) -> TagList:
        """The list of tags ``joined`` in an order nothing promised, in byte order: sorted
        here unless it already is (checking costs a fifth of the read on long lists)."""
        tags = joined.split(TAG_SEPARATOR) if joined else []
        ordered = sorted(tags)
        found = cls(joined if ordered == tags else TAG_SEPARATOR.join(ordered))
        found._tags = ordered
        return found

    @property
    def size(self) -> int:
        """Characters held: what the list costs in the cache's budget."""
        return len(self._joined)

    @property
    def tags(self) -> list[str]:
        if self._tags is None:
            self._tags = self._joined.split(TAG_SEPARATOR) if self._joined else []
        return self._tags

    def joined(self, separator: str) -> str:
        """The tags joined by ``separator``; free for :data:`TAG_SEPARATOR`."""
        return self._joined if separator == TAG_SEPARATOR else separator.join(self.tags)

    def page(self, limit: int | None, last: str | None) -> list[str]:
        """Up to ``limit`` tags after ``last``, as the page query returns them: Python
        compares strings by code point, as SQLite's BINARY collation compares UTF-8."""
        tags = self.tags
        start = 0 if last is None else bisect_right(tags, last)
        return tags[start:] if limit is None else tags[start : start + limit]


class _TagListCache:
    """Whole tag lists by repository, each valid while the write generation it was read
    at is current; at most ``budget`` characters in all, the least recently used evicted
    first. A list larger than the whole budget is not kept, only remembered as too large
    (for its generation), so that its pages are read page by page instead."""

    def __init__(self, generation: WriteGeneration, budget: int) -> None:
        self._generation = generation
        self._budget = budget
        self._used = 0
        self._entries: dict[str, tuple[int, TagList]] = {}
        self._too_large: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return not self._generation.disabled

    def get(self, name: str) -> TagList | None:
        if self._generation.disabled:
            return None
        entry = self._entries.pop(name, None)
        if entry is None:
            return None
        if entry[0] != self._generation.current():
            self._used -= entry[1].size + _TAG_ENTRY_COST
            return None
        self._entries[name] = entry  # now the most recently used
        return entry[1]

    def too_large(self, name: str) -> bool:
        return self._too_large.get(name, -1) == self._generation.current()

    def put(self, name: str, generation: int, tags: TagList) -> None:
        if self._generation.disabled:
            return
        old = self._entries.pop(name, None)
        if old is not None:
            self._used -= old[1].size + _TAG_ENTRY_COST
        cost = tags.size + _TAG_ENTRY_COST
        if cost > self._budget:
            if len(self._too_large) >= 1000:
                self._too_large.clear()
            self._too_large[name] = generation
            return
        while self._used + cost > self._budget:
            evicted = self._entries.pop(next(iter(self._entries)))
            self._used -= evicted[1].size + _TAG_ENTRY_COST
        self._entries[name] = (generation, tags)
        self._used += cost

    @property
    def used(self) -> int:
        """Characters held, entries' overhead included (for tests)."""
        return self._used


class MetadataStore:
    """Repositories, blobs, manifests, tags, referrers and upload sessions."""

    def __init__(
        self,
        engine: Database,
        generation: WriteGeneration | None = None,
        *,
        notes_writes: bool = True,
    ) -> None:
        """``notes_writes``: record in ``registry_state`` when this store first changes
        what the registry holds (off for ``dockyard import``, whose writes are not
        Dockyard serving the store)."""
        self.engine = engine
        self._notes_writes = notes_writes
        self._write_noted = False
        self._dialect = engine.dialect.name
        self._listings = listings(self._dialect)
        insert = self._insert
        # A blob committed again is present again, whatever a read had found before.
        blob = insert(t.blobs)
        self._insert_blob = prepared(
            blob.on_conflict_do_update(
                index_elements=["digest"],
                set_={"missing_at": None, "wanted_at": blob.excluded.wanted_at},
            )
        )
        self._insert_repository = prepared(
            insert(t.repositories).on_conflict_do_nothing(index_elements=["name"])
        )
        self._insert_link = prepared(
            insert(t.repository_blobs).on_conflict_do_nothing(
                index_elements=["repository_id", "digest"]
            )
        )
        upsert = insert(t.tags)
        self._upsert_tag = prepared(
            upsert.on_conflict_do_update(
                index_elements=["repository_id", "name"],
                set_={
                    "manifest_id": upsert.excluded.manifest_id,
                    "updated_at": upsert.excluded.updated_at,
                },
            )
        )
        self.generation = generation or WriteGeneration(None)
        self._cache = ReadCache(self.generation)
        self._tag_lists = _TagListCache(self.generation, TAG_CACHE_CHARS)

    async def close(self) -> None:
        await self.engine.dispose()
        self.generation.close()

    # -- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[DbConnection]:
        if isinstance(self.engine, InlineEngine):
            yield self.engine.reader()
            return
        async with self.engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def _write(
        self, invalidates: bool = True, served: bool = True
    ) -> AsyncIterator[DbConnection]:
        """A write transaction; on commit, other processes' read caches are invalidated.

        A write that changes what the registry holds (``invalidates`` and ``served``) also
        records, once per process, that Dockyard has written to this store (see
        :meth:`served_write_at`).
        """
        served = served and invalidates
        if isinstance(self.engine, InlineEngine):
            writer = self.engine.writer()
            async with self.engine.write_lock, writer.begin():
                yield writer
                if served:
                    await self._note_write(writer)
        else:
            async with self.engine.connect() as connection, connection.begin():
                yield connection
                if served:
                    await self._note_write(connection)
        if served:
            self._write_noted = self._write_noted or self._notes_writes
        if invalidates:
            self.generation.bump()

    async def _note_write(self, connection: DbConnection) -> None:
        if self._notes_writes and not self._write_noted:
            now = _now()
            await connection.execute(
                self._insert(t.registry_state).on_conflict_do_nothing(index_elements=["key"]),
                {"key": SERVED_WRITE_KEY, "value": now.isoformat(), "updated_at": now},
            )

    async def served_write_at(self) -> datetime | None:
        """When Dockyard first changed what this store holds (a push, mount or delete it
        served), or None if it never has: an import must not revert such writes."""
        query = select(t.registry_state.c.value).where(t.registry_state.c.key == SERVED_WRITE_KEY)
        try:
            async with self._read() as connection:
                value = (await connection.execute(query)).scalar_one_or_none()
        except DBAPIError:
            # A database from before migration 0003 did not record it: any tag there may
            # be Dockyard's own, so answer as if written at the newest tag move.
            async with self._read() as connection:
                newest = select(func.max(t.tags.c.updated_at))
                latest = (await connection.execute(newest)).scalar_one_or_none()
            return None if latest is None else _utc(latest)
        return None if value is None else _utc(datetime.fromisoformat(value))

    def _insert(self, table: Any) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def _repository_id(self, connection: DbConnection, name: str) -> int | None:
        result = await connection.execute(_REPOSITORY_ID, {"name": name})
        return result.scalar_one_or_none()

    async def _ensure_repository(self, connection: DbConnection, name: str) -> int:
        repository_id = await self._repository_id(connection, name)
        if repository_id is not None:
            return repository_id
        await connection.execute(self._insert_repository, {"name": name, "created_at": _now()})
        repository_id = await self._repository_id(connection, name)
        assert repository_id is not None
        return repository_id

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

    # -- repositories ---------------------------------------------------------------------

    async def repository_exists(self, name: str) -> bool:
        async with self._read() as connection:
            return await self._repository_id(connection, name) is not None

    async def ensure_repository(self, name: str) -> bool:
        """Create repository ``name`` if it is missing; True when this call created it."""
        async with self._write() as connection:
            if await self._repository_id(connection, name) is not None:
                return False
            await self._ensure_repository(connection, name)
            return True

    async def list_repositories(self, limit: int | None, last: str | None) -> list[str]:
        """Repository names in registry:2's order: component by component, so that
        ``team/app`` comes before ``team-tools`` (``/`` sorts before every other character).
        Cached."""
        key = ("catalog", limit, last)
        cached = self._cache.get(key)
        if cached is not MISS:
            return cast(list[str], cached)
        generation = self.generation.current()
        after = last.replace("/", PATH_SEPARATOR_KEY) if last is not None else ""
        async with self._read() as connection:
            result = await connection.execute(
                self._listings.catalog_page, {"after": after, "limit": limit_value(limit)}
            )
            names = [row[0] for row in result.fetchall()]
        self._cache.put(key, generation, names)
        return names

    # -- blobs ----------------------------------------------------------------------------

    async def blob_size(self, digest: str) -> int | None:
        """The size of a committed blob anywhere in the store."""
        async with self._read() as connection:
            result = await connection.execute(_BLOB_SIZE, {"digest": digest})
            return result.scalar_one_or_none()

    async def repository_blob_size(self, name: str, digest: str) -> int | None:
        """The size of a blob if it is linked into repository ``name`` (cached)."""
        key = ("blob", name, digest)
        cached = self._cache.get(key)
        if cached is not MISS:
            return cast(int | None, cached)
        generation = self.generation.current()
        async with self._read() as connection:
            result = await connection.execute(
                _REPOSITORY_BLOB_SIZE, {"name": name, "digest": digest}
            )
            size = result.scalar_one_or_none()
        self._cache.put(key, generation, size)
        return size

    @asynccontextmanager
    async def committing_blob(
        self, name: str, digest: str, size: int, upload_id: str | None = None
    ) -> AsyncIterator[bool]:
        """Commit a verified blob in one transaction, and link it into repository ``name``;
        with ``upload_id``, end that upload session in it too.

        Yields whether the store already holds the blob's bytes. Until the block ends the
        blob's row stays locked (PostgreSQL: ``FOR UPDATE``; SQLite: the write lock), so a
        collector cannot delete the blob between that answer and the link: a caller told
        False makes the bytes visible inside the block, and an error there commits nothing.
        """
        async with self._write() as connection:
            query = select(t.blobs.c.missing_at).where(t.blobs.c.digest == digest)
            if self._dialect == "postgresql":
                query = query.with_for_update()
            row = (await connection.execute(query)).one_or_none()
            yield row is not None and row.missing_at is None
            now = _now()
            await connection.execute(
                self._insert_blob,
                {"digest": digest, "size": size, "created_at": now, "wanted_at": now},
            )
            repository_id = await self._ensure_repository(connection, name)
            await self._link(connection, repository_id, digest)
            if upload_id is not None:
                await connection.execute(_DELETE_UPLOAD, {"id": upload_id})

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
            now = _now()
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

    def _for_share(self, query: Select[Any], table: Table) -> Select[Any]:
        """On PostgreSQL, lock the rows of ``table`` that ``query`` finds until the end of
        the transaction, so that a collector (which locks them ``FOR UPDATE``) cannot
        delete them under a link or reference that this transaction records. SQLite's
        write lock already serialises the two."""
        if self._dialect == "postgresql":
            return query.with_for_update(read=True, of=table)
        return query

    async def _want_blobs(
        self, connection: DbConnection, digests: Sequence[str], now: datetime
    ) -> None:
        """Record that ``digests`` were wanted at ``now`` (see ``blobs.wanted_at``)."""
        if digests:
            await connection.execute(
                update(t.blobs).where(t.blobs.c.digest.in_(set(digests))).values(wanted_at=now)
            )

    async def _link(self, connection: DbConnection, repository_id: int, digest: str) -> None:
        await connection.execute(
            self._insert_link,
            {"repository_id": repository_id, "digest": digest, "created_at": _now()},
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
                    .where(t.repositories.c.name == source, t.blobs.c.digest == digest, _PRESENT)
                )
            else:
                query = select(t.blobs.c.size).where(t.blobs.c.digest == digest, _PRESENT)
            size = (await connection.execute(self._for_share(query, t.blobs))).scalar_one_or_none()
            if size is None:
                return None
            repository_id = await self._ensure_repository(connection, name)
            await self._link(connection, repository_id, digest)
            await self._want_blobs(connection, [digest], _now())
            return int(size)

    async def mark_blob_missing(self, digest: str) -> bool:
        """Record that the bytes of ``digest`` are gone from storage: from now on the blob
        is unknown (``HEAD`` and ``GET`` answer 404, manifests cannot reference it, mounts
        find nothing) until a client uploads it again. True if this call marked it. (Not a
        write Dockyard served: the store had already lost the bytes.)"""
        async with self._write(served=False) as connection:
            result = await connection.execute(
                update(t.blobs)
                .where(t.blobs.c.digest == digest, _PRESENT)
                .values(missing_at=_now())
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
            return bool(result.rowcount)

    # -- manifests ------------------------------------------------------------------------

    async def get_manifest(
        self, name: str, reference: str, by_digest: bool
    ) -> ManifestRecord | None:
        """The manifest at a digest or tag of repository ``name`` (cached)."""
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

    async def put_manifest(self, name: str, manifest: ManifestToStore, tag: str | None) -> None:
        """Store a manifest, its references and its tag in one transaction.

        Raises MissingReferencesError (and changes nothing) when a referenced blob or child
        manifest is not in the repository.
        """
        async with self._write() as connection:
            repository_id = await self._ensure_repository(connection, name)
            await self._serialize_manifest_writes(connection, repository_id)
            await self._check_references(connection, repository_id, manifest)
            existing = await connection.execute(
                _MANIFEST_ID, {"repository_id": repository_id, "digest": manifest.digest}
            )
            manifest_id = existing.scalar_one_or_none()
            now = _now()
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
            await self._want_blobs(connection, manifest.blob_digests, now)
            if manifest.child_digests:
                await connection.execute(
                    update(t.manifests)
                    .where(
                        t.manifests.c.repository_id == repository_id,
                        t.manifests.c.digest.in_(set(manifest.child_digests)),
                    )
                    .values(wanted_at=now)
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

    async def repository_manifest_digests(self, name: str) -> set[str]:
        """Every manifest stored in repository ``name``."""
        return await self._digests_in(t.manifests, name)

    async def _digests_in(self, table: Table, name: str) -> set[str]:
        """The ``digest`` column of ``table`` for the rows of repository ``name``."""
        query = (
            select(table.c.digest)
            .join(t.repositories, t.repositories.c.id == table.c.repository_id)
            .where(t.repositories.c.name == name)
        )
        async with self._read() as connection:
            return set((await connection.execute(query)).scalars())

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
        query = select(table.c.digest).where(
            table.c.repository_id == repository_id, table.c.digest.in_(wanted)
        )
        if table is t.repository_blobs:
            query = query.join(t.blobs, t.blobs.c.digest == table.c.digest).where(_PRESENT)
            query = self._for_share(query, t.blobs)
        else:
            query = self._for_share(query, table)
        found = await connection.execute(query)
        return sorted(wanted - set(found.scalars()))

    async def delete_manifest(self, name: str, digest: str) -> bool:
        """Delete a manifest and every tag that points at it."""
        async with self._write() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return False
            m = t.manifests
            manifest_id = (
                await connection.execute(
                    select(m.c.id).where(m.c.repository_id == repository_id, m.c.digest == digest)
                )
            ).scalar_one_or_none()
            if manifest_id is None:
                return False
            await connection.execute(delete(t.tags).where(t.tags.c.manifest_id == manifest_id))
            await connection.execute(
                delete(t.manifest_references).where(
                    t.manifest_references.c.manifest_id == manifest_id
                )
            )
            await connection.execute(delete(m).where(m.c.id == manifest_id))
            return True

    # -- tags -----------------------------------------------------------------------------

    async def tag_list(self, name: str) -> TagList | None:
        """Every tag of ``name`` in byte order, or None when the repository is unknown;
        cached until the next write (within :data:`TAG_CACHE_CHARS`)."""
        cached = self._tag_lists.get(name)
        if cached is not None:
            return cached
        generation = self.generation.current()
        async with self._read() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return None
            given = {"repository_id": repository_id, "separator": TAG_SEPARATOR}
            result = await connection.execute(self._listings.tag_list, given)
            joined = result.scalar_one_or_none() or ""
        found = (
            TagList(joined) if self._listings.tag_list_ordered else TagList.in_byte_order(joined)
        )
        self._tag_lists.put(name, generation, found)
        return found

    async def list_tags(self, name: str, limit: int | None, last: str | None) -> list[str] | None:
        """Tags of ``name`` in byte order, or None when the repository is unknown.

        While tag lists are cached (not on PostgreSQL: see :mod:`generation`), a page is cut
        from the whole cached list (:meth:`tag_list`), so that one read serves every page.
        Otherwise, and for a list too large to cache, the database reads the page.
        """
        if self._tag_lists.enabled and not self._tag_lists.too_large(name):
            whole = await self.tag_list(name)
            return None if whole is None else whole.page(limit, last)
        key = ("tags", name, limit, last)
        cached = self._cache.get(key)
        if cached is not MISS:
            return cast(list[str] | None, cached)
        generation = self.generation.current()
        async with self._read() as connection:
            repository_id = await self._repository_id(connection, name)
            found: list[str] | None = None
            if repository_id is not None:
                values = {
                    "repository_id": repository_id,
                    "last": last or "",
                    "limit": limit_value(limit),
                }
                rows = (await connection.execute(self._listings.tags_page, values)).fetchall()
                found = [row[0] for row in rows]
        self._cache.put(key, generation, found)
        return found

    async def tag_targets(self, name: str) -> dict[str, str]:
        """Every tag of repository ``name`` with the digest of the manifest it points at."""
        query = (
            select(t.tags.c.name, t.manifests.c.digest)
            .join(t.manifests, t.manifests.c.id == t.tags.c.manifest_id)
            .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
            .where(t.repositories.c.name == name)
        )
        async with self._read() as connection:
            return {row.name: row.digest for row in (await connection.execute(query)).all()}

    async def delete_tag(self, name: str, tag: str) -> bool:
        async with self._write() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return False
            result = await connection.execute(
                delete(t.tags).where(t.tags.c.repository_id == repository_id, t.tags.c.name == tag)
            )
            return bool(result.rowcount)

    # -- referrers ------------------------------------------------------------------------

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

    # -- uploads --------------------------------------------------------------------------

    async def create_upload(self, upload_id: str, name: str) -> None:
        async with self._write(invalidates=False) as connection:
            await connection.execute(
                _INSERT_UPLOAD, {"id": upload_id, "repository": name, "started_at": _now()}
            )

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        async with self._read() as connection:
            row = (await connection.execute(_UPLOAD, {"id": upload_id})).one_or_none()
        return None if row is None else _upload_record(row)

    async def save_upload_progress(
        self, upload_id: str, expected_size: int, progress: UploadProgress
    ) -> bool:
        """Record how far the upload got (for whoever gets its next request), provided it
        still holds ``expected_size`` bytes; False when another request moved it meanwhile,
        or it is gone."""
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(
                _SAVE_UPLOAD_PROGRESS,
                {
                    "upload_id": upload_id,
                    "expected": expected_size,
                    "new_size": progress.size,
                    "new_driver_state": progress.driver_state,
                    "new_hash_offset": progress.hash_offset,
                    "new_hash_state": progress.hash_state,
                },
            )
            return bool(result.rowcount)

    async def delete_upload(self, upload_id: str) -> bool:
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(_DELETE_UPLOAD, {"id": upload_id})
            return bool(result.rowcount)

    async def uploads_started_before(self, moment: datetime) -> Sequence[UploadRecord]:
        # Times are stored in UTC (SQLite keeps no offset): compare in UTC too.
        moment = moment.astimezone(UTC)
        if self._dialect == "sqlite":
            moment = moment.replace(tzinfo=None)
        async with self._read() as connection:
            rows = (
                await connection.execute(select(t.uploads).where(t.uploads.c.started_at < moment))
            ).all()
        return [_upload_record(row) for row in rows]

    async def count(self, table: str) -> int:
        """Row count of a table (for tests and reports)."""
        async with self._read() as connection:
            target = t.metadata.tables[table]
            return int(
                (await connection.execute(select(func.count()).select_from(target))).scalar_one()
            )
