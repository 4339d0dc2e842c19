"""One collection: untagged manifests (when asked), then unreferenced blobs, then the bytes
of deleted manifests, each in small locked batches beside live pushes.

Nothing is read from storage: candidates come from the database (blobs from its review
queue, so that a collection costs what the garbage costs), and only their bytes are
deleted, through the storage driver's ``delete_many`` (so every driver works). A batch holds its
row locks while its bytes are deleted, then deletes the rows (the transaction rule,
docs/architecture.md); a push that meets a batch waits for it and then finds the rows gone.
A batch whose transaction fails after its bytes went marks them in a new one
(:mod:`dockyard.gc.recovery`) before the error goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

from dockyard.gc.recovery import RETRY_FOR, BatchRecovery
from dockyard.gc.report import GcReport, Removed
from dockyard.gc.review import collectable_before, sessions_keep_since
from dockyard.metadata.gc_queries import Deletion, ManifestCandidate
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import utc_now
from dockyard.oci.digest import Digest
from dockyard.storage import paths
from dockyard.storage.driver import DELETES_AT_ONCE, StorageDriver
from dockyard.storage.layout import gather_bounded

log = logging.getLogger("dockyard.gc")

#: ``progress(step, done, total)``: a step's name, how many of its items are done, of how
#: many (None while unknown)
Progress = Callable[[str, int, int | None], None]

#: rows locked (and bytes deleted, in one call to the driver) per transaction: a push
#: that meets a batch waits for it (500 small blob directories took 0.15-0.2 s on this
#: project's busy shared disk), and each commit costs milliseconds of its own
BATCH = 500
#: review-queue entries read per query
SCAN = 2000
#: manifests deleted per transaction (each re-checks what tags reach, under the locks)
MANIFEST_BATCH = 500
#: deleted manifest bytes are remembered at least this long (see gc_manifest_bytes)
REMEMBER_DELETED = timedelta(hours=1)


class Collector:
    """Collects what nothing keeps, and what was not wanted within ``review_after``.

    Without ``delete_untagged`` every manifest is kept with what it references; with it,
    only what a tag reaches (tagged manifests, their children, the referrers of kept
    manifests). ``dry_run`` lists what would go and changes nothing.
    """

    def __init__(
        self,
        metadata: MetadataStore,
        storage: StorageDriver,
        *,
        review_after: timedelta,
        delete_untagged: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
        retry_for: float = RETRY_FOR,
    ) -> None:
        """``retry_for``: how long, in seconds, a batch whose transaction failed tries to
        mark what it deleted (see :mod:`dockyard.gc.recovery`)."""
        self._metadata = metadata
        self._storage = storage
        self._review_after = review_after
        self._delete_untagged = delete_untagged
        self._dry_run = dry_run
        self._progress = progress or (lambda _step, _done, _total: None)
        self._recovery = BatchRecovery(metadata, storage, retry_for)
        #: the run's report so far (what a run that failed did)
        self.report = GcReport(dry_run=dry_run, delete_untagged=delete_untagged)

    def _cutoff(self) -> datetime:
        return collectable_before(utc_now(), self._review_after)

    def _since(self) -> datetime:
        """What push sessions that still run keep (see :mod:`dockyard.gc.sessions`)."""
        return sessions_keep_since(utc_now(), self._review_after)

    async def run(self) -> GcReport:
        started = time.monotonic()
        report = self.report = GcReport(
            dry_run=self._dry_run, delete_untagged=self._delete_untagged
        )
        doomed: list[ManifestCandidate] = []
        if self._delete_untagged:
            doomed = await self._manifests(report)
        await self._blobs(report, [m.id for m in doomed] if self._dry_run else [])
        await self._manifest_bytes(report, doomed if self._dry_run else [])
        if not self._dry_run:
            remember = max(self._review_after, REMEMBER_DELETED)
            await self._metadata.forget_deleted_manifest_bytes(utc_now() - remember)
        report.seconds = time.monotonic() - started
        return report

    async def _manifests(self, report: GcReport) -> list[ManifestCandidate]:
        cutoff, since = self._cutoff(), self._since()
        candidates = await self._metadata.unreachable_manifests(cutoff, since)
        total, done = len(candidates), 0
        self._progress("manifests", 0, total)
        removed: list[ManifestCandidate] = []
        for start in range(0, total, MANIFEST_BATCH):
            batch = candidates[start : start + MANIFEST_BATCH]
            removed += await self._metadata.delete_unreachable_manifests(
                batch, cutoff, self._dry_run, since
            )
            done += len(batch)
            self._progress("manifests", done, total)
        report.manifests += [Removed(m.digest, m.size, m.repository) for m in removed]
        return removed

    async def _blobs(self, report: GcReport, ignoring: Sequence[int]) -> None:
        cutoff, since = self._cutoff(), self._since()
        after, done = "", 0
        self._progress("blobs", 0, None)
        while True:
            page = await self._metadata.blobs_to_review(cutoff, after, SCAN, ignoring, since)
            if page.last is None:
                break
            after = page.last
            if self._dry_run:
                report.blobs += [Removed(c.digest, c.size) for c in page.candidates]
            else:
                # The referenced ones too: the batch takes them out of the queue.
                reviewed = [c.digest for c in page.candidates] + page.referenced
                for start in range(0, len(reviewed), BATCH):
                    batch = reviewed[start : start + BATCH]
                    deletion = await self._batch(
                        self._metadata.deleting_blobs(batch, cutoff, since),
                        report,
                        self._recovery.blobs,
                    )
                    report.blobs += [Removed(c.digest, c.size) for c in deletion.deleted]
            done += len(page.candidates)
            self._progress("blobs", done, None)

    async def _manifest_bytes(self, report: GcReport, doomed: Sequence[ManifestCandidate]) -> None:
        if self._dry_run:
            due = await self._metadata.manifest_bytes_due(self._cutoff(), limit=1_000_000)
            known = {c.digest for c in due}
            report.manifest_bytes += [Removed(c.digest, c.size) for c in due]
            report.manifest_bytes += [
                Removed(m.digest, m.size) for m in doomed if m.digest not in known
            ]
            return
        while True:
            cutoff = self._cutoff()
            due = await self._metadata.manifest_bytes_due(cutoff, BATCH)
            if not due:
                return
            digests = [c.digest for c in due]
            deletion = await self._batch(
                self._metadata.deleting_manifest_bytes(digests, cutoff),
                report,
                self._recovery.manifest_bytes,
            )
            report.manifest_bytes += [Removed(c.digest, c.size) for c in deletion.deleted]
            if len(due) < BATCH:
                return

    async def _batch(
        self,
        opening: AbstractAsyncContextManager[Deletion],
        report: GcReport,
        recover: Callable[[Deletion, GcReport], Awaitable[None]],
    ) -> Deletion:
        """One locked batch: its bytes deleted inside its transaction. If the transaction
        fails once the bytes may be going (before or at its commit), ``recover`` marks
        what went, and then the error goes on."""
        deletion: Deletion | None = None
        try:
            async with opening as deletion:
                await self._delete_bytes(deletion, report)
        except BaseException:
            if deletion is not None and not deletion.committed:
                await recover(deletion, report)
            raise
        return deletion

    async def _delete_bytes(self, deletion: Deletion, report: GcReport) -> None:
        """Delete the bytes of a locked batch, in one call to the driver (a few thread
        jobs on the filesystem); a failure keeps that row for the next run."""
        doomed = {
            paths.blob_dir(Digest.parse(c.digest)): c.digest
            for c in deletion.candidates
            if c.delete_bytes  # else a manifest row serves these bytes
        }
        try:
            failures = await self._storage.delete_many(list(doomed))
        except Exception:
            # Some of the bytes may be gone: their rows go (the batch commits them before
            # the error goes on, see CollectorQueries), but not those whose bytes stayed.
            await self._keep_what_stayed(doomed, deletion)
            raise
        for path, exc in failures.items():
            digest = doomed[path]
            deletion.keep(digest)
            report.problems.append(f"blob {digest}: not deleted ({exc})")
            log.warning("garbage collection: blob %s not deleted: %s", digest, exc)

    async def _keep_what_stayed(self, doomed: dict[str, str], deletion: Deletion) -> None:
        """After a driver failed in an unforeseen way: keep the rows whose bytes are still
        there (the next run reviews them again), so that only those that may be gone lose
        their rows. A row whose look fails goes: a row without bytes is what must never be,
        bytes without a row only take room."""

        async def look(digest: str) -> None:
            try:
                there = await self._storage.stat(paths.blob_data(Digest.parse(digest)))
            except Exception:
                log.error("garbage collection: blob %s may keep bytes, no row", digest)
                return
            if there is not None:
                deletion.keep(digest)

        await gather_bounded((look(d) for d in doomed.values()), DELETES_AT_ONCE)
