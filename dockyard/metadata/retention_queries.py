"""What retention reads of a repository, and its guarded deletions: each deletion re-checks,
in its own transaction, that what the plan saw still holds (the tag was not pushed again,
the manifest was not tagged, referenced or wanted since), so that a push running beside
retention never loses what it just wrote."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select, tuple_

from dockyard.metadata import schema as t
from dockyard.metadata.changes import ManifestDeleted, TagDeleted, record_change
from dockyard.metadata.manifest_queries import ManifestQueries
from dockyard.metadata.transactions import as_utc, utc_now

# When a manifest was last wanted: a push, a tag moved to it, an index referencing it.
MANIFEST_WANTED = func.coalesce(t.manifests.c.wanted_at, t.manifests.c.created_at)


@dataclass(frozen=True)
class TagRow:
    name: str
    manifest_id: int
    pushed_at: datetime


@dataclass(frozen=True)
class ManifestRow:
    id: int
    digest: str
    wanted_at: datetime
    subject: str | None


@dataclass(frozen=True)
class RepositorySnapshot:
    """A repository's tags, manifests and index → child edges, read in one transaction."""

    name: str
    tags: tuple[TagRow, ...]
    manifests: tuple[ManifestRow, ...]
    children: tuple[tuple[int, str], ...]  # (index manifest id, child digest)


class RetentionQueries(ManifestQueries):
    """Retention's reads and its guarded deletions."""

    async def repository_snapshot(self, name: str) -> RepositorySnapshot | None:
        async with self._read() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return None
            tags = await connection.execute(
                select(t.tags.c.name, t.tags.c.manifest_id, t.tags.c.updated_at).where(
                    t.tags.c.repository_id == repository_id
                )
            )
            m = t.manifests
            manifests = await connection.execute(
                select(m.c.id, m.c.digest, MANIFEST_WANTED.label("wanted"), m.c.subject_digest)
                .where(m.c.repository_id == repository_id)
                .order_by(m.c.id)
            )
            r = t.manifest_references
            children = await connection.execute(
                select(r.c.manifest_id, r.c.digest)
                .join(m, m.c.id == r.c.manifest_id)
                .where(m.c.repository_id == repository_id, r.c.kind == "manifest")
            )
            return RepositorySnapshot(
                name,
                tuple(TagRow(row[0], row[1], as_utc(row[2])) for row in tags.all()),
                tuple(
                    ManifestRow(row[0], row[1], as_utc(row[2]), row[3]) for row in manifests.all()
                ),
                tuple((row[0], row[1]) for row in children.all()),
            )

    async def delete_tags_unless_pushed(self, name: str, tags: Sequence[TagRow]) -> set[str]:
        """Delete each of ``tags`` that still points where it did and was not pushed
        since (its push time unchanged); one statement. Returns the names deleted."""
        if not tags:
            return set()
        async with self._write() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return set()
            planned = [(tag.name, tag.manifest_id, tag.pushed_at) for tag in tags]
            result = await connection.execute(
                delete(t.tags)
                .where(
                    t.tags.c.repository_id == repository_id,
                    tuple_(t.tags.c.name, t.tags.c.manifest_id, t.tags.c.updated_at).in_(planned),
                )
                .returning(t.tags.c.name)
            )
            deleted = set(result.scalars())
            for tag in sorted(deleted):
                await record_change(connection, TagDeleted(name, tag))
            return deleted

    async def delete_untagged_manifests(
        self, name: str, manifest_ids: Sequence[int], wanted_before: datetime
    ) -> set[int]:
        """Delete those of ``manifest_ids`` that are still untagged, that nothing wanted
        since ``wanted_before``, and that no manifest of the repository references except
        others deleted with them; one transaction, with the repository's manifest writes
        held off. ``manifest_ids`` lists indexes before their children (as plans do), so
        an index deleted in an earlier batch no longer holds its children. Returns the
        ids deleted."""
        if not manifest_ids:
            return set()
        async with self._write() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return set()
            await self._serialize_manifest_writes(connection, repository_id)
            m, r = t.manifests, t.manifest_references
            unwanted = await connection.execute(
                select(m.c.id, m.c.digest).where(
                    m.c.id.in_(set(manifest_ids)),
                    m.c.repository_id == repository_id,
                    wanted_before > MANIFEST_WANTED,
                    ~exists().where(t.tags.c.manifest_id == m.c.id),
                )
            )
            candidates = {row[0]: row[1] for row in unwanted.all()}
            parent = m.alias("parent")
            listed = await connection.execute(
                select(r.c.digest, parent.c.id)
                .join(parent, parent.c.id == r.c.manifest_id)
                .where(
                    parent.c.repository_id == repository_id,
                    r.c.kind == "manifest",
                    r.c.digest.in_(set(candidates.values())),
                )
            )
            parents: dict[str, set[int]] = {}
            for digest, parent_id in listed.all():
                parents.setdefault(digest, set()).add(parent_id)
            doomed = set(candidates)
            changed = True
            while changed:  # an index that stays keeps its children
                kept = {i for i in doomed if parents.get(candidates[i], set()) - doomed}
                doomed -= kept
                changed = bool(kept)
            await self._remove_manifests(connection, sorted(doomed))
            for manifest_id in sorted(doomed):
                await record_change(connection, ManifestDeleted(name, candidates[manifest_id]))
            return doomed

    async def tag_unless_moved(self, name: str, tag: str, digest: str) -> str | None:
        """Point ``tag`` at the stored manifest ``digest`` unless it already points at
        another one, whose digest is then returned and nothing changes (immutable tags).
        The check and the tag are one transaction."""
        async with self._write() as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                raise LookupError(f"no repository {name}")
            await self._serialize_manifest_writes(connection, repository_id)
            m = t.manifests
            manifest_id = (
                await connection.execute(
                    select(m.c.id).where(m.c.repository_id == repository_id, m.c.digest == digest)
                )
            ).scalar_one()
            current = (
                await connection.execute(
                    select(t.tags.c.manifest_id, m.c.digest)
                    .join(m, m.c.id == t.tags.c.manifest_id)
                    .where(t.tags.c.repository_id == repository_id, t.tags.c.name == tag)
                )
            ).one_or_none()
            if current is not None:
                return None if current[0] == manifest_id else str(current[1])
            now = utc_now()
            await connection.execute(
                self._upsert_tag,
                {
                    "repository_id": repository_id,
                    "name": tag,
                    "manifest_id": manifest_id,
                    "updated_at": now,
                },
            )
            return None
