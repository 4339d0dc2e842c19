"""Running the replication queue: one process at a time across workers and replicas.

Every worker runs a :class:`Replicator`; each round is taken under the ``replication``
lease (:mod:`dockyard.metadata.leases`), so one process copies while the others skip the
round. A round starts when this process queued jobs, and otherwise every
``replication.interval`` (for jobs other processes queued, retries that are due, and
scheduled rules).

In a round, the oldest pending job of each destination and repository runs (a
repository's jobs run in the order they were queued); different repositories run side
by side. A copy runs the sync engine for that one image: its index children, its
referrers, only the blobs the destination lacks. A failed attempt is retried after
``backoff`` (doubled each time, at most ``backoff.max``); after ``retries`` retries the
job is marked failed, kept with its last error, and the repository's next job runs.
Everything is in the database, so a restart resumes where the queue stands; a job cut
short by a crash runs again, and what it had copied is skipped. Delivery is at least
once, and copies are idempotent: the destination ends with the same digests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Final

from dockyard.metadata.changes import ReplicationJob
from dockyard.metadata.leases import Leases
from dockyard.metadata.replication_queue import QueuedJob
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import utc_now
from dockyard.oci.digest import is_digest
from dockyard.remote import RemoteError, RemoteRegistry
from dockyard.replication.settings import Destination, ReplicationSettings, Rule
from dockyard.replication.source import ImageGone, LocalSource
from dockyard.sync.engine import Copier, sync_registries

log = logging.getLogger("dockyard.replication")
LEASE: Final = "replication"
PARALLEL_JOBS: Final = 4


class JobFailed(Exception):
    """An attempt failed; the message is what the status command shows."""


class JobRefused(JobFailed):
    """The destination refuses what the job asks, for good: failed without retries."""


def open_destination(destination: Destination) -> RemoteRegistry:
    return RemoteRegistry(
        destination.url,
        username=destination.username,
        password=destination.password,
        token=destination.token,
        tls_verify=destination.tls_verify,
        ca_file=destination.ca_file,
    )


class Replicator:
    def __init__(
        self,
        store: MetadataStore,
        leases: Leases,
        settings: ReplicationSettings,
        source: LocalSource,
        queued: asyncio.Event,
    ) -> None:
        self._store = store
        self._leases = leases
        self._settings = settings
        self._source = source
        self.queued = queued
        self._registries: dict[str, RemoteRegistry] = {}

    async def run(self) -> None:
        """Replicate until cancelled."""
        try:
            while True:
                self.queued.clear()
                try:
                    await self.run_round()
                except Exception:
                    log.exception("replication: round failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.queued.wait(), timeout=self._settings.interval)
        finally:
            for registry in self._registries.values():
                await registry.close()

    async def run_round(self) -> int:
        """One round, if this process holds the lease: how many jobs it ran."""
        async with self._leases.hold(LEASE) as held:
            if not held:
                return 0
            await self._store.prune_done_jobs(utc_now() - self._settings.keep_done)
            await self._queue_scheduled()
            ran = 0
            slots = asyncio.Semaphore(PARALLEL_JOBS)

            async def one(job: QueuedJob) -> None:
                async with slots:
                    await self._attempt(job)

            while True:
                jobs = await self._store.next_jobs(utc_now(), self._active_destinations())
                if not jobs:
                    return ran
                await asyncio.gather(*(one(job) for job in jobs))
                ran += len(jobs)

    def _active_destinations(self) -> set[str]:
        return {d for rule in self._settings.rules for d in rule.destinations}

    async def _queue_scheduled(self) -> None:
        now = utc_now()
        for rule in self._settings.rules:
            if rule.interval is None or not rule.destinations:
                continue
            last = await self._store.scheduled_at(rule.name)
            if last is not None and now - last < rule.interval:
                continue
            jobs = [ReplicationJob(rule.name, d, "sync", "", "") for d in rule.destinations]
            await self._store.queue_scheduled_sync(jobs, rule.name)
            log.info("replication: rule %r: a scheduled full sync queued", rule.name)

    # ------------------------------------------------------------------ one job

    async def _attempt(self, job: QueuedJob) -> None:
        try:
            await self._run(job)
        except ImageGone as exc:
            log.info("replication: %s to %s: nothing to copy: %s", job.target, job.destination, exc)
        except JobRefused as exc:
            await self._store.job_failed(job, str(exc))
            log.warning("replication: %s to %s refused: %s", job.target, job.destination, exc)
            return
        except (JobFailed, RemoteError) as exc:
            await self._failed(job, str(exc))
            return
        except Exception as exc:
            log.exception("replication: %s to %s", job.target, job.destination)
            await self._failed(job, f"{type(exc).__name__}: {exc}")
            return
        await self._store.job_done(job)

    async def _failed(self, job: QueuedJob, error: str) -> None:
        failures = job.attempts + 1
        if failures > self._settings.retries:
            await self._store.job_failed(job, error)
            log.warning(
                "replication: %s to %s failed after %d attempts (kept as failed): %s",
                job.target,
                job.destination,
                failures,
                error,
            )
            return
        due: datetime = utc_now() + self._settings.backoff(failures)
        await self._store.job_retry(job, error, due)
        if failures == 1:
            log.warning(
                "replication: %s to %s: %s; retried with backoff",
                job.target,
                job.destination,
                error,
            )

    async def _run(self, job: QueuedJob) -> None:
        rule = self._settings.rule(job.rule)
        if rule is None:
            raise JobRefused(f"rule {job.rule!r} is no longer configured")
        dest = self._registry(job.destination)
        if job.action == "copy":
            await self._copy(dest, job.repository, job.reference)
        elif job.action == "delete":
            await self._delete(dest, job.repository, job.reference)
        elif job.action == "sync":
            await self._sync(dest, rule)
        else:
            raise JobFailed(f"unknown action {job.action!r}")

    async def _copy(self, dest: RemoteRegistry, repository: str, reference: str) -> None:
        copier = Copier(self._source, dest)
        if is_digest(reference) and await dest.head_manifest(repository, reference) is None:
            # A referrer was pushed for this subject; it follows the subject only where
            # the subject already went (the subject's own job brings both otherwise).
            return
        await copier.copy_image(repository, reference, repository, reference)

    async def _delete(self, dest: RemoteRegistry, repository: str, reference: str) -> None:
        """Delete a tag or a manifest at the destination (gone already: done). A registry
        that refuses to delete a tag (registry:2 answers 400 or 405) gets no retries, and
        never a delete by digest instead: that would remove every tag of the manifest."""
        try:
            await dest.delete_manifest(repository, reference)
        except RemoteError as exc:
            if exc.status in (400, 405) and not is_digest(reference):
                raise JobRefused(
                    f"the destination refuses to delete tag {reference!r} ({exc}); "
                    "registries without tag deletion (registry:2) keep it"
                ) from exc
            if exc.status == 405:
                raise JobRefused(f"the destination refuses deletes ({exc})") from exc
            raise

    async def _sync(self, dest: RemoteRegistry, rule: Rule) -> None:
        summary = await sync_registries(self._source, dest, rule.filters)
        if summary.errors:
            shown = "; ".join(summary.errors[:3])
            more = f" (and {len(summary.errors) - 3} more)" if len(summary.errors) > 3 else ""
            raise JobFailed(f"{len(summary.errors)} images failed: {shown}{more}")

    def _registry(self, name: str) -> RemoteRegistry:
        registry = self._registries.get(name)
        if registry is None:
            destination = next(d for d in self._settings.destinations if d.name == name)
            registry = self._registries[name] = open_destination(destination)
        return registry


@contextlib.asynccontextmanager
async def replicating_in_background(replicator: Replicator) -> AsyncIterator[None]:
    """Run ``replicator`` for the duration of the block."""
    task = asyncio.create_task(replicator.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
