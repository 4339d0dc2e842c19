"""When a batch's transaction fails after its bytes went (the database connection is
lost, PostgreSQL restarts or fails over, SQLite reports an I/O error), the rows the batch
was deleting are rolled back while their bytes are gone. A blob row without bytes tells a
client that asks for the blob (``HEAD``) to skip the upload its manifest then needs; the image
cannot be pulled. So before the error goes on, each digest whose bytes a look (``stat``)
no longer finds is marked, in a fresh transaction, under its row's lock (looked at again
there: a push that committed the bytes meanwhile keeps them):

- a blob is marked missing (unknown until uploaded again; a re-upload clears the mark),
  its row, links and queue entry left for the next collection to delete;
- deleted manifest bytes are marked deleted in their queue, so that a push of the same
  manifest writes them again; a push that committed the manifest before the mark had
  its copy written again from the database.

The database may be back within seconds: the marks are tried again with a short backoff,
for :data:`RETRY_FOR` seconds, as are rows a push holds meanwhile (skipped, not waited
for). Marking a digest whose bytes a push has just written again only costs that push's
client an upload; it never leaves a row without bytes. If the marks cannot be written, an
error names every digest (and the report counts it) for an operator to run ``dockyard fsck
--repair``, which marks such blobs missing and writes such copies again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager

from dockyard.gc.report import GcReport
from dockyard.metadata.gc_queries import Deletion
from dockyard.metadata.gc_recovery import Marking
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.storage import paths
from dockyard.storage.driver import DELETES_AT_ONCE, StorageDriver
from dockyard.storage.layout import gather_bounded

log = logging.getLogger("dockyard.gc")

#: how long the marks are tried again, in seconds (a restart or failover takes seconds)
RETRY_FOR = 30.0
RETRY_FIRST = 0.25
RETRY_MAX = 4.0

#: opens the marking transaction of some digests (see :mod:`dockyard.metadata.gc_recovery`)
Mark = Callable[[Sequence[str]], AbstractAsyncContextManager[Marking]]


class Unmarked(Exception):
    """The marks of ``digests`` could not be written before the retries ran out."""

    def __init__(self, digests: Sequence[str], why: str) -> None:
        super().__init__(why)
        self.digests = list(digests)


class BatchRecovery:
    """Marks what a batch whose transaction failed has deleted (see the module)."""

    def __init__(
        self, metadata: MetadataStore, storage: StorageDriver, retry_for: float = RETRY_FOR
    ) -> None:
        self._metadata = metadata
        self._storage = storage
        self._retry_for = retry_for

    async def blobs(self, deletion: Deletion, report: GcReport) -> None:
        await self._recover("blobs", self._metadata.marking_blobs_missing, deletion, report)

    async def manifest_bytes(self, deletion: Deletion, report: GcReport) -> None:
        unnamed = await self._recover(
            "manifest bytes", self._metadata.marking_manifest_bytes_deleted, deletion, report
        )
        await gather_bounded((self._write_again(d, report) for d in unnamed), DELETES_AT_ONCE)

    async def _recover(
        self, what: str, mark: Mark, deletion: Deletion, report: GcReport
    ) -> list[str]:
        """Mark those of the batch's digests whose bytes are gone; returns those that no
        row to mark named any more (taken out of the queue by a push, or already marked)."""
        gone = await self._without_bytes(c.digest for c in deletion.deleted if c.delete_bytes)
        if not gone:
            return []
        log.warning(
            "garbage collection: the transaction of a batch failed after the bytes of %d "
            "%s were deleted; marking them in a new transaction",
            len(gone),
            what,
        )
        try:
            return await self._mark(what, mark, gone)
        except Unmarked as error:
            self._unmarked(what, error.digests, str(error), report)
        except BaseException as error:  # cancelled while marking: nothing is known
            self._unmarked(what, gone, f"{type(error).__name__}: {error}", report)
            raise
        return []

    def _unmarked(self, what: str, digests: Sequence[str], why: str, report: GcReport) -> None:
        listed = ", ".join(digests)
        log.error(
            "garbage collection: could not mark %d %s whose bytes are gone (%s); the "
            "database may serve them until `dockyard fsck --repair` runs: %s",
            len(digests),
            what,
            why,
            listed,
        )
        report.problems.append(
            f"{what} {listed}: bytes deleted, database not updated; run dockyard fsck --repair"
        )

    async def _mark(self, what: str, mark: Mark, gone: list[str]) -> list[str]:
        """Marking transactions, tried again with backoff until ``retry_for`` has passed,
        for as long as one fails or rows of ``gone`` are busy (then :class:`Unmarked`)."""
        deadline = time.monotonic() + self._retry_for
        delay = RETRY_FIRST
        left, unnamed = gone, []
        while True:
            try:
                async with mark(left) as marks:
                    still_gone = set(await self._without_bytes(c.digest for c in marks.candidates))
                    for candidate in marks.candidates:
                        if candidate.digest not in still_gone:
                            marks.keep(candidate.digest)
                if marks.deleted:
                    log.warning(
                        "garbage collection: marked the %s whose bytes are gone: %s",
                        what,
                        ", ".join(c.digest for c in marks.deleted),
                    )
                named = {c.digest for c in marks.candidates} | set(marks.busy)
                unnamed += [d for d in left if d not in named]
                left = marks.busy
                if not left:
                    return unnamed
                why = "rows held by another transaction"
            except Exception as error:
                why = f"{type(error).__name__}: {error}"
            if time.monotonic() + delay > deadline:
                raise Unmarked(left, why)
            log.warning(
                "garbage collection: marking %d %s: %s; trying again in %.2f s",
                len(left),
                what,
                why,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _without_bytes(self, digests: Iterable[str]) -> list[str]:
        """Those of ``digests`` whose bytes the storage does not have, or may not have (a
        look that fails counts as gone: a mark costs an upload, a row without bytes an
        image)."""

        async def gone(digest: str) -> bool:
            try:
                return await self._storage.stat(paths.blob_data(Digest.parse(digest))) is None
            except Exception:
                return True

        wanted = list(digests)
        found = await gather_bounded((gone(d) for d in wanted), DELETES_AT_ONCE)
        return [d for d, is_gone in zip(wanted, found, strict=True) if is_gone]

    async def _write_again(self, digest: str, report: GcReport) -> None:
        """The copy at its blob path of a manifest that a push committed after the failed
        batch had deleted those bytes (the push read no mark: there was none yet)."""
        try:
            payload = await self._metadata.manifest_payload(digest)
            if payload is not None:
                await self._storage.put_content(paths.blob_data(Digest.parse(digest)), payload)
                log.warning("garbage collection: manifest bytes %s written again", digest)
        except Exception as error:
            log.error(
                "garbage collection: manifest bytes %s may be gone under a manifest (%s); "
                "`dockyard fsck --repair` writes them again",
                digest,
                error,
            )
            report.problems.append(f"manifest bytes {digest}: gone; run dockyard fsck --repair")
