"""The metadata store's foundation: its engine, the read and write transactions every query
runs in, the record of writes Dockyard served, and helpers the aggregates share.

Each public coroutine of the store is one transaction. Writes that must be atomic (a
manifest with its references and tag) happen inside one ``_write()`` block. The queries
themselves live per aggregate (``repositories``, ``blob_links``, ``manifest_queries``,
``tag_queries``, ``upload_queries``); :class:`dockyard.metadata.store.MetadataStore`
combines them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, func, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError

from dockyard.metadata import schema as t
from dockyard.metadata.engine import (
    Database,
    DbConnection,
    InlineEngine,
    prepared,
)
from dockyard.metadata.generation import ReadCache, WriteGeneration
from dockyard.metadata.invalidation import CHANNEL
from dockyard.metadata.listings import listings
from dockyard.metadata.tag_lists import TAG_CACHE_CHARS, TagListCache

# The ``registry_state`` key of the first write Dockyard served to the store.
SERVED_WRITE_KEY = "served_write_at"

# Sent in every PostgreSQL write transaction that invalidates: delivered at its commit to
# every process's listener (dockyard.metadata.invalidation), whatever its own caches do.
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")

# Hot-path statements, built once: building a statement costs more than running it.
_REPOSITORY_ID = prepared(
    select(t.repositories.c.id).where(t.repositories.c.name == bindparam("name"))
)
# A blob whose bytes were found missing (``missing_at``) is unknown until uploaded again.
PRESENT = t.blobs.c.missing_at.is_(None)


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC instant (SQLite hands it back without an offset)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class StoreBase:
    """What every aggregate's queries run on (see the module docstring)."""

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
        self._tag_lists = TagListCache(self.generation, TAG_CACHE_CHARS)

    @property
    def tag_list_cache(self) -> TagListCache:
        """The per-process cache of whole tag lists (for its metrics)."""
        return self._tag_lists

    async def close(self) -> None:
        await self.engine.dispose()
        self.generation.close()

    # -- plumbing -------------------------------------------------------------------------

    async def _caught_up(self) -> None:
        """Before a cached read: every write committed before now has invalidated it (on
        PostgreSQL, a round trip on the listener's connection; nothing on SQLite)."""
        catch_up = self.generation.catch_up
        if catch_up is not None:
            await catch_up()

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
                if invalidates:
                    await connection.execute(_NOTIFY)
        if served:
            self._write_noted = self._write_noted or self._notes_writes
        if invalidates:
            self.generation.bump()

    async def _note_write(self, connection: DbConnection) -> None:
        if self._notes_writes and not self._write_noted:
            now = utc_now()
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
            return None if latest is None else as_utc(latest)
        return None if value is None else as_utc(datetime.fromisoformat(value))

    def _insert(self, table: Any) -> Any:
        if self._dialect == "postgresql":
            # Imported only for PostgreSQL: its dialect is 2 MiB a default server never uses.
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        return sqlite.insert(table)

    async def _repository_id(self, connection: DbConnection, name: str) -> int | None:
        result = await connection.execute(_REPOSITORY_ID, {"name": name})
        return result.scalar_one_or_none()

    async def _ensure_repository(self, connection: DbConnection, name: str) -> int:
        repository_id = await self._repository_id(connection, name)
        if repository_id is not None:
            return repository_id
        await connection.execute(self._insert_repository, {"name": name, "created_at": utc_now()})
        repository_id = await self._repository_id(connection, name)
        assert repository_id is not None
        return repository_id

    def _for_wanting(self, query: Select[Any]) -> Select[Any]:
        """On PostgreSQL, lock the ``blobs`` rows that ``query`` finds for the ``wanted_at``
        update that follows (``FOR NO KEY UPDATE``, in digest order). A shared lock there
        would deadlock two pushes of one layer into two repositories, each waiting for the
        other's share to update the row; and rows locked in one order cannot deadlock."""
        if self._dialect == "postgresql":
            return query.order_by(t.blobs.c.digest).with_for_update(key_share=True, of=t.blobs)
        return query

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

    async def _digests_in(self, table: Table, name: str) -> set[str]:
        """The ``digest`` column of ``table`` for the rows of repository ``name``."""
        query = (
            select(table.c.digest)
            .join(t.repositories, t.repositories.c.id == table.c.repository_id)
            .where(t.repositories.c.name == name)
        )
        async with self._read() as connection:
            return set((await connection.execute(query)).scalars())

    async def count(self, table: str) -> int:
        """Row count of a table (for tests and reports)."""
        async with self._read() as connection:
            target = t.metadata.tables[table]
            return int(
                (await connection.execute(select(func.count()).select_from(target))).scalar_one()
            )
