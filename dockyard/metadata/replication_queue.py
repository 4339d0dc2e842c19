"""The replication job queue: copies to other registries waiting, retried, done or failed.

Jobs of a push are inserted in its transaction (:mod:`dockyard.metadata.changes`); those
of a schedule in a transaction of their own (:meth:`enqueue_jobs`). The delivery loop
takes the oldest pending job of each destination and repository, and records the
outcome of each attempt. None of these writes changes what the registry holds, so none
invalidates a read cache.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, select, update

from dockyard.metadata import schema as t
from dockyard.metadata.changes import ReplicationJob, insert_jobs
from dockyard.metadata.transactions import StoreBase, as_utc, utc_now

_JOBS = t.replication_jobs
PENDING, DONE, FAILED = "pending", "done", "failed"
_SCHEDULE_KEY = "replication.scheduled."


@dataclass(frozen=True)
class QueuedJob:
    id: int
    rule: str
    destination: str
    action: str
    repository: str
    reference: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    due_at: datetime
    finished_at: datetime | None

    @property
    def target(self) -> str:
        """What the job is about, for messages: ``repo:tag``, ``repo@digest``, ``rule``."""
        if self.action == "sync":
            return f"all of rule {self.rule}"
        separator = "@" if ":" in self.reference else ":"
        return f"{self.repository}{separator}{self.reference}"


def _job(row: object) -> QueuedJob:
    r = row._mapping  # type: ignore[attr-defined]
    return QueuedJob(
        id=r["id"],
        rule=r["rule"],
        destination=r["destination"],
        action=r["action"],
        repository=r["repository"],
        reference=r["reference"],
        state=r["state"],
        attempts=r["attempts"],
        last_error=r["last_error"],
        created_at=as_utc(r["created_at"]),
        due_at=as_utc(r["due_at"]),
        finished_at=None if r["finished_at"] is None else as_utc(r["finished_at"]),
    )


class ReplicationQueries(StoreBase):
    """The queue, per destination and repository, oldest first."""

    async def enqueue_jobs(self, jobs: Sequence[ReplicationJob]) -> None:
        if jobs:
            async with self._write(invalidates=False) as connection:
                await insert_jobs(connection, jobs)

    async def next_jobs(
        self, now: datetime, destinations: Collection[str] | None = None, scan: int = 1000
    ) -> list[QueuedJob]:
        """The oldest pending job of each destination and repository (of the first
        ``scan`` pending, for ``destinations`` only when given), when it is due: a
        repository's later jobs wait behind it."""
        query = select(_JOBS).where(_JOBS.c.state == PENDING)
        if destinations is not None:
            query = query.where(_JOBS.c.destination.in_(sorted(destinations)))
        query = query.order_by(_JOBS.c.id).limit(scan)
        async with self._read() as connection:
            rows = [_job(r) for r in (await connection.execute(query)).all()]
        heads: dict[tuple[str, str], QueuedJob] = {}
        for job in rows:
            heads.setdefault((job.destination, job.repository), job)
        return [job for job in heads.values() if job.due_at <= now]

    async def job_done(self, job: QueuedJob) -> None:
        """Done; failed jobs for the same image and destination are superseded (deleted)."""
        now = utc_now()
        same = and_(
            _JOBS.c.rule == job.rule,
            _JOBS.c.destination == job.destination,
            _JOBS.c.repository == job.repository,
            _JOBS.c.reference == job.reference,
            _JOBS.c.state == FAILED,
            _JOBS.c.id < job.id,
        )
        async with self._write(invalidates=False) as connection:
            await connection.execute(
                update(_JOBS)
                .where(_JOBS.c.id == job.id)
                .values(state=DONE, attempts=_JOBS.c.attempts + 1, finished_at=now)
            )
            await connection.execute(delete(_JOBS).where(same))

    async def job_retry(self, job: QueuedJob, error: str, due_at: datetime) -> None:
        async with self._write(invalidates=False) as connection:
            await connection.execute(
                update(_JOBS)
                .where(_JOBS.c.id == job.id)
                .values(attempts=_JOBS.c.attempts + 1, last_error=error[:4000], due_at=due_at)
            )

    async def job_failed(self, job: QueuedJob, error: str) -> None:
        """Out of retries: failed, kept with its last error."""
        async with self._write(invalidates=False) as connection:
            await connection.execute(
                update(_JOBS)
                .where(_JOBS.c.id == job.id)
                .values(
                    state=FAILED,
                    attempts=_JOBS.c.attempts + 1,
                    last_error=error[:4000],
                    finished_at=utc_now(),
                )
            )

    async def prune_done_jobs(self, before: datetime) -> int:
        async with self._write(invalidates=False) as connection:
            result = await connection.execute(
                delete(_JOBS).where(_JOBS.c.state == DONE, _JOBS.c.finished_at < before)
            )
            return int(result.rowcount)

    async def job_counts(self) -> dict[tuple[str, str, str], int]:
        """How many jobs, by (rule, destination, state)."""
        query = select(_JOBS.c.rule, _JOBS.c.destination, _JOBS.c.state, func.count()).group_by(
            _JOBS.c.rule, _JOBS.c.destination, _JOBS.c.state
        )
        async with self._read() as connection:
            rows = (await connection.execute(query)).all()
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    async def recent_failures(self, limit: int) -> list[QueuedJob]:
        """Failed jobs, and pending ones whose last attempt failed, newest first."""
        query = (
            select(_JOBS)
            .where(_JOBS.c.last_error.is_not(None), _JOBS.c.state != DONE)
            .order_by(_JOBS.c.id.desc())
            .limit(limit)
        )
        async with self._read() as connection:
            return [_job(r) for r in (await connection.execute(query)).all()]

    async def scheduled_at(self, rule: str) -> datetime | None:
        """When the scheduled sync of ``rule`` was last queued."""
        key = _SCHEDULE_KEY + rule
        query = select(t.registry_state.c.value).where(t.registry_state.c.key == key)
        async with self._read() as connection:
            value = (await connection.execute(query)).scalar_one_or_none()
        return None if value is None else as_utc(datetime.fromisoformat(value))

    async def queue_scheduled_sync(self, jobs: Sequence[ReplicationJob], rule: str) -> None:
        """Queue a rule's full sync and note the time, in one transaction."""
        now = utc_now()
        upsert = self._insert(t.registry_state)
        upsert = upsert.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": upsert.excluded.value, "updated_at": upsert.excluded.updated_at},
        )
        async with self._write(invalidates=False) as connection:
            await insert_jobs(connection, jobs)
            await connection.execute(
                upsert,
                {"key": _SCHEDULE_KEY + rule, "value": now.isoformat(), "updated_at": now},
            )
