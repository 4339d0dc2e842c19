"""What the garbage collector asks of the database: which manifests and blobs nothing keeps,
and their deletion under row locks, serialised with manifest and blob commits.

The database holds every reference, so candidates come from queries, never from a walk of
the storage: blobs from the review queue ``gc_blob_reviews`` (every blob no manifest
references, kept by the triggers of migration 0010), untagged manifests checked by a walk
up their parents (:mod:`dockyard.metadata.gc_reachability`). Each deletion follows the
collector's part of the transaction rule (docs/architecture.md): lock the rows first
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's write lock), re-check in a new
statement that nothing references them and that nothing wanted them within the review
delay, then let the caller delete the bytes while the lock is held, and only then delete
the rows in the same transaction. A push that meets a locked row waits, then finds it gone
and puts its bytes in place again. Whatever the caller's block raises, the rows it did not
keep are deleted and committed before the error goes on: the block may have deleted some of
their bytes, and a row whose bytes are gone would tell a client to skip an upload it needs
(bytes left without a row only take room). If the transaction itself fails after the
bytes went, its rows roll back: the collector marks them in a new one
(:mod:`dockyard.gc.recovery`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
    union,
    update,
)

from dockyard.metadata import schema as t
from dockyard.metadata.changes import BlobDeleted, ManifestDeleted, record_change
from dockyard.metadata.engine import DbConnection, prepared
from dockyard.metadata.gc_reachability import kept_among, may_go
from dockyard.metadata.manifest_queries import ManifestQueries
from dockyard.metadata.push_sessions import session_keeps
from dockyard.metadata.transactions import PRESENT, as_utc, utc_now

_b = t.blobs
_m = t.manifests
_r = t.manifest_references
_q = t.gc_manifest_bytes
_blob_wanted = func.coalesce(_b.c.wanted_at, _b.c.created_at)
_BLOB_REFERENCED = exists().where(_r.c.digest == _b.c.digest, _r.c.kind == "blob")
_MANIFEST_NAMED = exists().where(_m.c.digest == _b.c.digest)

_g = t.gc_blob_reviews
_CUTOFF = bindparam("cutoff", type_=DateTime(timezone=True))
_SINCE = bindparam("since", type_=DateTime(timezone=True))


def _blob_may_go(cutoff: Any, since: Any) -> Any:
    """Last wanted before ``cutoff``, and not kept by a push session that still runs in a
    repository that links the blob (see :func:`session_keeps`), nor holding bytes at a
    path other than its own (a deferred copy: left for a run after the mover's)."""
    return and_(
        _blob_wanted < cutoff,
        _b.c.pending_path.is_(None),
        ~session_keeps(None, _blob_wanted, cutoff, since, digest=_b.c.digest),
    )


def _review_page(reviewed: Any, referenced: Any) -> Select[Any]:
    """A page of ``reviewed`` digests (a subquery) due for review, with whether nothing
    but what ``referenced`` ignores references them. Driven by the queue (its key, in
    order), each blob looked up by its key: never a pass over every blob."""
    return (
        select(_b.c.digest, _b.c.size, (~referenced).label("collectable"))
        .select_from(reviewed)
        .join(_b, _b.c.digest == reviewed.c.digest)
        .where(reviewed.c.digest > bindparam("after"), _blob_may_go(_CUTOFF, _SINCE))
        .order_by(reviewed.c.digest)
        .limit(bindparam("limit"))
    )


# What every collection runs, on a quiet store too: built once (prepared on SQLite).
_QUEUE_PAGE = prepared(_review_page(select(_g.c.digest).subquery(), _BLOB_REFERENCED))
_MANIFEST_BYTES_DUE = prepared(
    select(_q.c.digest, _q.c.size)
    .where(_q.c.deleted_at.is_(None), _q.c.queued_at < _CUTOFF)
    .order_by(_q.c.digest)
    .limit(bindparam("limit"))
)
_FORGOTTEN = and_(
    _q.c.deleted_at.is_not(None),
    _q.c.deleted_at < bindparam("before", type_=DateTime(timezone=True)),
)
_ANY_FORGOTTEN = prepared(select(_q.c.digest).where(_FORGOTTEN).limit(1))
_MANIFEST_CANDIDATE = (
    select(_m.c.id, _m.c.repository_id, t.repositories.c.name, _m.c.digest, _m.c.size)
    .join(t.repositories, t.repositories.c.id == _m.c.repository_id)
    .order_by(_m.c.repository_id, _m.c.id)
)


@dataclass(frozen=True)
class ManifestCandidate:
    """A manifest row no tag reaches."""

    id: int
    repository_id: int
    repository: str
    digest: str
    size: int


@dataclass(frozen=True)
class BlobCandidate:
    """Bytes at a blob path that nothing references: a blob, or a deleted manifest's copy."""

    digest: str
    size: int
    #: False when a manifest row has the same digest: its row goes, its bytes stay
    delete_bytes: bool = True


@dataclass(frozen=True)
class BlobPage:
    """Candidates among one page of queued blobs; ``last`` the page's last digest (None:
    done); ``referenced`` the page's blobs that a manifest references again."""

    candidates: list[BlobCandidate]
    last: str | None
    referenced: list[str] = field(default_factory=list)


@dataclass
class Deletion:
    """The candidates a locked transaction may delete; the caller deletes their bytes,
    calling :meth:`keep` for those whose bytes it could not delete (rows stay).
    ``committed`` once the transaction has committed: if the block's end fails before,
    the rows of bytes already deleted stay (see :mod:`dockyard.gc.recovery`)."""

    candidates: list[BlobCandidate]
    kept: set[str] = field(default_factory=set)
    committed: bool = False

    def keep(self, digest: str) -> None:
        self.kept.add(digest)

    @property
    def deleted(self) -> list[BlobCandidate]:
        return [c for c in self.candidates if c.digest not in self.kept]


class _PutOff:
    """What a deletion's block raised, raised again once the deletion's transaction has
    committed (see the module's docstring)."""

    def __init__(self) -> None:
        self._error: BaseException | None = None

    @contextmanager
    def caught(self) -> Iterator[None]:
        try:
            yield
        except BaseException as error:  # cancellation too: its bytes may be gone as well
            self._error = error

    def raise_it(self) -> None:
        if self._error is not None:
            raise self._error


class CollectorQueries(ManifestQueries):
    """Candidates for collection and their locked deletion."""

    # -- manifests ---------------------------------------------------------------------

    async def unreachable_manifests(
        self, cutoff: datetime, since: datetime | None = None
    ) -> list[ManifestCandidate]:
        """Manifests no tag reaches, in any repository, last wanted before ``cutoff``
        (and, if at ``since`` or later, in a repository whose push session has ended)."""
        async with self._read() as connection:
            return await self._unreachable(connection, cutoff, since=since)

    async def delete_unreachable_manifests(
        self,
        candidates: Sequence[ManifestCandidate],
        cutoff: datetime,
        dry_run: bool = False,
        since: datetime | None = None,
    ) -> list[ManifestCandidate]:
        """Delete those of ``candidates`` that still no tag reaches and nothing wanted
        since ``cutoff`` (nor a push session that still runs, since ``since``); returns
        them. Manifest writes to their repositories take turns with this (on PostgreSQL
        their rows are locked, in id order, as a push locks its repository's), and the
        manifest bytes of digests no other row has are queued."""
        wanted = {c.id for c in candidates}
        if dry_run:
            async with self._read() as connection:
                return await self._unreachable(connection, cutoff, wanted, since)
        async with self._write() as connection:
            if self._dialect == "postgresql":
                await connection.execute(
                    select(t.repositories.c.id)
                    .where(t.repositories.c.id.in_({c.repository_id for c in candidates}))
                    .order_by(t.repositories.c.id)
                    .with_for_update(key_share=True)
                )
            doomed = await self._unreachable(connection, cutoff, wanted, since)
            if not doomed:
                return []
            doomed_ids = [c.id for c in doomed]
            await connection.execute(delete(t.tags).where(t.tags.c.manifest_id.in_(doomed_ids)))
            await connection.execute(delete(_r).where(_r.c.manifest_id.in_(doomed_ids)))
            await connection.execute(delete(_m).where(_m.c.id.in_(doomed_ids)))
            for candidate in doomed:
                await record_change(
                    connection, ManifestDeleted(candidate.repository, candidate.digest)
                )
            # Past the review delay already, like the manifests: due at once.
            await self._queue_manifest_bytes(
                connection, {c.digest: c.size for c in doomed}, cutoff - timedelta(microseconds=1)
            )
            return doomed

    async def _unreachable(
        self,
        connection: DbConnection,
        cutoff: datetime,
        among: set[int] | None = None,
        since: datetime | None = None,
    ) -> list[ManifestCandidate]:
        """Manifests with no tag, last wanted before ``cutoff`` (see :func:`may_go`), that
        no tag reaches through a parent (of ``among`` only, when given)."""
        query = _MANIFEST_CANDIDATE.where(may_go(cutoff, since))
        if among is not None:
            query = query.where(_m.c.id.in_(among))
        found = [ManifestCandidate(*row) for row in await connection.execute(query)]
        kept = await kept_among(connection, {c.id for c in found})
        return [c for c in found if c.id not in kept]

    # -- blobs -------------------------------------------------------------------------

    async def blobs_to_review(
        self,
        cutoff: datetime,
        after: str = "",
        limit: int = 1000,
        ignoring: Sequence[int] = (),
        since: datetime | None = None,
    ) -> BlobPage:
        """One page of at most ``limit`` blobs of the review queue (``gc_blob_reviews``),
        in digest order after ``after``, last wanted before ``cutoff`` (and, if at
        ``since`` or later, linked only into repositories whose push session has ended).
        With ``ignoring`` (a dry run's doomed manifests, still in the database) the blobs
        those reference are reviewed too, as if the manifests were gone.

        ``candidates`` are those no manifest references (but those of ``ignoring``); the
        page's other blobs are referenced again, and ``referenced`` lists them, so that
        the collector can take them out of the queue."""
        query = _QUEUE_PAGE
        if ignoring:
            freed = select(_r.c.digest).where(
                _r.c.manifest_id.in_(list(ignoring)), _r.c.kind == "blob"
            )
            query = _review_page(
                union(select(_g.c.digest), freed).subquery(),
                _BLOB_REFERENCED.where(_r.c.manifest_id.not_in(list(ignoring))),
            )
        parameters = {
            "after": after,
            "cutoff": cutoff,
            "since": cutoff if since is None else since,
            "limit": limit,
        }
        async with self._read() as connection:
            rows = (await connection.execute(query, parameters)).all()
        return BlobPage(
            [BlobCandidate(row.digest, row.size) for row in rows if row.collectable],
            rows[-1].digest if rows else None,
            [row.digest for row in rows if not row.collectable],
        )

    @asynccontextmanager
    async def deleting_blobs(
        self, digests: Sequence[str], cutoff: datetime, since: datetime | None = None
    ) -> AsyncIterator[Deletion]:
        """Lock the queue entries and rows of ``digests``, and yield those still
        unreferenced and unwanted since ``cutoff`` (nor kept by a push session, see
        :meth:`blobs_to_review`); when the block ends, their links and
        rows are deleted (but not those the caller kept), in the same transaction, and
        the entries of those found referenced leave the queue.

        On PostgreSQL the queue entries are locked before the check: a manifest deleted
        meanwhile queues its blobs again after this transaction, never into an entry
        that this one then deletes (the trigger waits for the entry's lock)."""
        put_off = _PutOff()
        async with self._write() as connection:
            queued = set(await self._lock(connection, _g, digests))
            locked = await self._lock(connection, _b, [d for d in digests if d in queued])
            rows = (
                await connection.execute(
                    select(
                        _b.c.digest,
                        _b.c.size,
                        _MANIFEST_NAMED.label("named"),
                        _BLOB_REFERENCED.label("referenced"),
                    ).where(
                        _b.c.digest.in_(locked),
                        _blob_may_go(cutoff, cutoff if since is None else since),
                    )
                )
            ).all()
            deletion = Deletion(
                [BlobCandidate(r.digest, r.size, not r.named) for r in rows if not r.referenced]
            )
            with put_off.caught():
                yield deletion
            referenced = [r.digest for r in rows if r.referenced]
            if referenced:
                await connection.execute(delete(_g).where(_g.c.digest.in_(referenced)))
            gone = [c.digest for c in deletion.deleted]
            if gone:
                await connection.execute(
                    delete(t.repository_blobs).where(t.repository_blobs.c.digest.in_(gone))
                )
                # Their queue entries go with the rows (trigger gc_blob_deleted).
                await connection.execute(delete(_b).where(_b.c.digest.in_(gone)))
                for digest in gone:  # deleted from the whole store: no repository
                    await record_change(connection, BlobDeleted("", digest))
        deletion.committed = True
        put_off.raise_it()

    # -- manifest bytes ----------------------------------------------------------------

    async def manifest_bytes_due(self, cutoff: datetime, limit: int = 1000) -> list[BlobCandidate]:
        """Queued manifest bytes not yet deleted, queued before ``cutoff``."""
        parameters = {"cutoff": cutoff, "limit": limit}
        async with self._read() as connection:
            rows = (await connection.execute(_MANIFEST_BYTES_DUE, parameters)).all()
        return [BlobCandidate(row.digest, row.size) for row in rows]

    @asynccontextmanager
    async def deleting_manifest_bytes(
        self, digests: Sequence[str], cutoff: datetime
    ) -> AsyncIterator[Deletion]:
        """As :meth:`deleting_blobs`, for queued manifest bytes: those no manifest or blob
        row names again. Their queue rows are marked deleted (a push that wrote the same
        bytes just before reads the mark in its transaction and writes them again); the
        rows of digests pushed again since they were queued leave the queue."""
        put_off = _PutOff()
        async with self._write() as connection:
            locked = await self._lock(connection, _q, digests)
            rows = (
                await connection.execute(
                    select(_q.c.digest, _q.c.size).where(
                        _q.c.digest.in_(locked), _q.c.deleted_at.is_(None), _q.c.queued_at < cutoff
                    )
                )
            ).all()
            named = set(
                (await connection.execute(select(_m.c.digest).where(_m.c.digest.in_(locked))))
                .scalars()
                .all()
            ) | set(
                (await connection.execute(select(_b.c.digest).where(_b.c.digest.in_(locked))))
                .scalars()
                .all()
            )
            deletion = Deletion(
                [BlobCandidate(r.digest, r.size) for r in rows if r.digest not in named]
            )
            with put_off.caught():
                yield deletion
            if named:
                await connection.execute(delete(_q).where(_q.c.digest.in_(named)))
            gone = [c.digest for c in deletion.deleted]
            if gone:
                await connection.execute(
                    update(_q).where(_q.c.digest.in_(gone)).values(deleted_at=utc_now())
                )
        deletion.committed = True
        put_off.raise_it()

    async def forget_deleted_manifest_bytes(self, before: datetime) -> int:
        """Drop the queue rows of manifest bytes deleted before ``before``: no push that
        wrote those bytes before the deletion can still be running. Read first: a
        collection of a quiet store takes no write lock for nothing."""
        async with self._read() as connection:
            due = (await connection.execute(_ANY_FORGOTTEN, {"before": before})).first()
        if due is None:
            return 0
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(delete(_q).where(_FORGOTTEN), {"before": before})
            return int(result.rowcount or 0)

    async def _lock(
        self, connection: DbConnection, table: Any, digests: Sequence[str]
    ) -> list[str]:
        """Lock the rows of ``table`` with ``digests``; on PostgreSQL rows another
        transaction holds are skipped (the next run reviews them). SQLite's write lock,
        taken by the transaction, already excludes every other writer."""
        query = select(table.c.digest).where(table.c.digest.in_(list(digests)))
        if self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return list((await connection.execute(query)).scalars())

    # -- a HEAD keeps a blob -----------------------------------------------------------

    async def blob_wanted_at(self, digest: str) -> datetime | None:
        """When the blob was last wanted (None: no such blob)."""
        async with self._read() as connection:
            wanted = (
                await connection.execute(select(_blob_wanted).where(_b.c.digest == digest))
            ).scalar_one_or_none()
        return None if wanted is None else as_utc(wanted)

    async def want_manifest(self, name: str, digest: str) -> bool:
        """Record that a client was just told the manifest ``digest`` of repository ``name``
        exists (a ``HEAD``): it may skip pushing it and push an index that lists it, so the
        review delay starts again. False when it is gone (a collector deleted it since the
        caller looked). In turn with the repository's manifest writes, which the
        collector's deletions take too (PostgreSQL: its row lock; SQLite: the write lock)."""
        async with self._write(invalidates=False) as connection:
            repository_id = await self._repository_id(connection, name)
            if repository_id is None:
                return False
            await self._serialize_manifest_writes(connection, repository_id)
            result = await connection.execute(
                update(_m)
                .where(_m.c.repository_id == repository_id, _m.c.digest == digest)
                .values(wanted_at=utc_now())
            )
            return bool(result.rowcount)

    async def want_blob(self, digest: str) -> bool:
        """Record that a client was just told the blob exists (a ``HEAD``): it may skip the
        upload and reference it, so the review delay starts again. False when the blob is
        gone (a collector deleted it since the caller looked: the answer is then 404).
        On PostgreSQL this waits for a collector holding the row."""
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(
                update(_b).where(_b.c.digest == digest, PRESENT).values(wanted_at=utc_now())
            )
            return bool(result.rowcount)
