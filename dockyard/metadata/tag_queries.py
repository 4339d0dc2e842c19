"""Tags: whole tag lists (cached), pages, targets and deletion."""

from __future__ import annotations

from typing import cast

from sqlalchemy import delete, select

from dockyard.metadata import schema as t
from dockyard.metadata.changes import TagDeleted, record_change
from dockyard.metadata.generation import MISS
from dockyard.metadata.listings import limit_value
from dockyard.metadata.tag_lists import TagList
from dockyard.metadata.transactions import StoreBase
from dockyard.oci.names import TAG_SEPARATOR  # joins tags as a tags/list body does


class TagQueries(StoreBase):
    """Tags of a repository."""

    async def tag_list(self, name: str) -> TagList | None:
        """Every tag of ``name`` in byte order, or None when the repository is unknown;
        cached until the next write (within :data:`TAG_CACHE_CHARS`)."""
        await self._caught_up()
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
        await self._caught_up()
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
            if not result.rowcount:
                return False
            await record_change(connection, TagDeleted(name, tag))
            return True
