"""Storage usage, as the API and ``dockyard du`` give it: the figures of
:mod:`dockyard.metadata.usage_queries` and their JSON form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockyard.metadata.store import MetadataStore
from dockyard.metadata.usage_queries import RegistryUsage, RepositoryUsage
from dockyard.oci import errors


def repository_json(usage: RepositoryUsage) -> dict[str, Any]:
    return {
        "name": usage.name,
        "tags": usage.tags,
        "manifests": usage.manifests,
        "totalBytes": usage.total_bytes,
        "uniqueBytes": usage.unique_bytes,
    }


def registry_json(usage: RegistryUsage) -> dict[str, Any]:
    return {
        "repositories": usage.repositories,
        "storedBytes": usage.stored_bytes,
        "referencedBytes": usage.referenced_bytes,
        "unlinkedBytes": usage.unlinked_bytes,
        "deduplicationRatio": round(usage.deduplication_ratio, 4),
    }


class UsageService:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def repository(self, name: str) -> dict[str, Any]:
        found = await self._metadata.repository_usage([name])
        if not found:
            raise errors.RegistryError(errors.NAME_UNKNOWN, detail={"name": name})
        return repository_json(found[0])

    async def registry(self, visible: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """The registry's figures and every repository's (those ``visible`` lets through)."""
        body = registry_json(await self._metadata.registry_usage())
        body["repositoryUsage"] = [
            repository_json(u)
            for u in await self._metadata.repository_usage()
            if visible is None or visible(u.name)
        ]
        return body
