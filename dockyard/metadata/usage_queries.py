"""Storage usage from the database, one SQL aggregate per figure.

A repository's *total* is what it holds: the blobs linked into it (layers, configs) and its
manifests. Its *unique* bytes are the part no other repository holds: what deleting it
would free once collected. The registry's *stored* bytes count every blob and manifest
once; its *referenced* bytes are the repositories' totals added up, the size the store
would have without deduplication. Blobs whose bytes are known to be missing count nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select

from dockyard.metadata import schema as t
from dockyard.metadata.transactions import PRESENT, StoreBase


@dataclass(frozen=True)
class RepositoryUsage:
    name: str
    tags: int = 0
    manifests: int = 0
    total_bytes: int = 0
    unique_bytes: int = 0


@dataclass(frozen=True)
class RegistryUsage:
    repositories: int
    stored_bytes: int
    referenced_bytes: int
    #: blobs linked into no repository: what garbage collection would free
    unlinked_bytes: int

    @property
    def deduplication_ratio(self) -> float:
        """Referenced over stored bytes (1.0 for an empty store)."""
        return self.referenced_bytes / self.stored_bytes if self.stored_bytes else 1.0


_rb, _b, _m = t.repository_blobs, t.blobs, t.manifests
_other_link = _rb.alias("other_link")
_other_manifest = _m.alias("other_manifest")


def _per_repository(column: ColumnElement[Any], *where: ColumnElement[bool]) -> Select[Any]:
    """``SUM(column)`` of the present blobs linked into each repository."""
    return (
        select(_rb.c.repository_id, func.coalesce(func.sum(column), 0))
        .join(_b, _b.c.digest == _rb.c.digest)
        .where(PRESENT, *where)
        .group_by(_rb.c.repository_id)
    )


_BLOB_BYTES = _per_repository(_b.c.size)
# Unique bytes are the total less the shared part: the few links that another repository
# also has, rather than a lookup per link of what is not shared.
_SHARED_BLOB_BYTES = _per_repository(
    _b.c.size,
    exists().where(
        _other_link.c.digest == _rb.c.digest,
        _other_link.c.repository_id != _rb.c.repository_id,
    ),
)
_MANIFEST_BYTES = select(_m.c.repository_id, func.sum(_m.c.size)).group_by(_m.c.repository_id)
_MANIFEST_COUNT = select(_m.c.repository_id, func.count()).group_by(_m.c.repository_id)
_SHARED_MANIFEST_BYTES = (
    select(_m.c.repository_id, func.sum(_m.c.size))
    .where(
        exists().where(
            _other_manifest.c.digest == _m.c.digest,
            _other_manifest.c.repository_id != _m.c.repository_id,
        )
    )
    .group_by(_m.c.repository_id)
)
_TAG_COUNT = select(t.tags.c.repository_id, func.count()).group_by(t.tags.c.repository_id)

_distinct_manifests = (
    select(_m.c.digest, func.max(_m.c.size).label("size"))
    .where(~exists().where(_b.c.digest == _m.c.digest))
    .group_by(_m.c.digest)
    .subquery()
)
_STORED_BLOB_BYTES = select(func.coalesce(func.sum(_b.c.size), 0)).where(PRESENT)
_STORED_MANIFEST_BYTES = select(func.coalesce(func.sum(_distinct_manifests.c.size), 0))
_REFERENCED_BLOB_BYTES = (
    select(func.coalesce(func.sum(_b.c.size), 0))
    .join(_rb, _rb.c.digest == _b.c.digest)
    .where(PRESENT)
)
_REFERENCED_MANIFEST_BYTES = select(func.coalesce(func.sum(_m.c.size), 0))
_UNLINKED_BYTES = select(func.coalesce(func.sum(_b.c.size), 0)).where(
    PRESENT,
    ~exists().where(_rb.c.digest == _b.c.digest),
    ~exists().where(_m.c.digest == _b.c.digest),
)
_REPOSITORY_COUNT = select(func.count()).select_from(t.repositories)


class UsageQueries(StoreBase):
    """Usage figures (see the module docstring)."""

    async def repository_usage(self, names: Sequence[str] | None = None) -> list[RepositoryUsage]:
        """The figures of the repositories ``names`` (unknown ones left out), or of every
        repository, by name."""
        r = t.repositories
        chosen = select(r.c.id, r.c.name).order_by(r.c.name)
        if names is not None:
            chosen = chosen.where(r.c.name.in_(set(names)))

        async with self._read() as connection:
            repositories = {row[0]: row[1] for row in (await connection.execute(chosen)).all()}
            if not repositories:
                return []

            async def figure(query: Select[Any]) -> dict[int, int]:
                column = query.selected_columns[0]
                narrowed = query.where(and_(column.in_(set(repositories))))
                return {row[0]: int(row[1] or 0) for row in await connection.execute(narrowed)}

            blobs, shared_blobs = await figure(_BLOB_BYTES), await figure(_SHARED_BLOB_BYTES)
            manifests, shared_manifests = (
                await figure(_MANIFEST_BYTES),
                await figure(_SHARED_MANIFEST_BYTES),
            )
            tags, counts = await figure(_TAG_COUNT), await figure(_MANIFEST_COUNT)
        usage = []
        for rid, name in repositories.items():
            total = blobs.get(rid, 0) + manifests.get(rid, 0)
            shared = shared_blobs.get(rid, 0) + shared_manifests.get(rid, 0)
            usage.append(
                RepositoryUsage(
                    name,
                    tags=tags.get(rid, 0),
                    manifests=counts.get(rid, 0),
                    total_bytes=total,
                    unique_bytes=total - shared,
                )
            )
        return usage

    async def registry_usage(self) -> RegistryUsage:
        async with self._read() as connection:

            async def scalar(query: Select[Any]) -> int:
                return int((await connection.execute(query)).scalar_one() or 0)

            return RegistryUsage(
                repositories=await scalar(_REPOSITORY_COUNT),
                stored_bytes=await scalar(_STORED_BLOB_BYTES)
                + await scalar(_STORED_MANIFEST_BYTES),
                referenced_bytes=await scalar(_REFERENCED_BLOB_BYTES)
                + await scalar(_REFERENCED_MANIFEST_BYTES),
                unlinked_bytes=await scalar(_UNLINKED_BYTES),
            )
