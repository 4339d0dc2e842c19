"""Repositories: existence, creation and the catalog."""

from __future__ import annotations

from typing import cast

from dockyard.metadata.generation import MISS
from dockyard.metadata.listings import PATH_SEPARATOR_KEY, limit_value
from dockyard.metadata.transactions import StoreBase


class RepositoryQueries(StoreBase):
    """Repositories and the catalog."""

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
        await self._caught_up()
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
