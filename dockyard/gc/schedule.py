"""Collection on a schedule, inside ``serve``: one collector at a time across workers and
replicas (the ``gc`` lease), with jobs that run before each collection under the same lease
(retention rules decide what is deleted, then the collector frees it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from dockyard.gc.collector import Collector
from dockyard.gc.report import GcReport
from dockyard.metadata.leases import Leases
from dockyard.metadata.store import MetadataStore
from dockyard.storage.driver import StorageDriver

log = logging.getLogger("dockyard.gc")

#: a job run before each collection, while the lease is held (e.g. retention)
BeforeCollection = Callable[[], Awaitable[None]]
#: called with the report of every collection (e.g. metrics)
ReportObserver = Callable[[GcReport], None]

LEASE = "gc"


@dataclass
class ScheduledCollection:
    """``run_forever`` collects every ``interval``; ``before`` and ``observers`` are lists
    the wiring may extend."""

    metadata: MetadataStore
    storage: StorageDriver
    leases: Leases
    interval: timedelta
    review_after: timedelta
    delete_untagged: bool = False
    before: list[BeforeCollection] = field(default_factory=list)
    observers: list[ReportObserver] = field(default_factory=list)
    #: what the collection itself runs inside (notifications record its deletions)
    around: Callable[[], AbstractContextManager[object]] = nullcontext

    async def run_once(self) -> GcReport | None:
        """One round: None when another worker or replica holds the lease (skipped)."""
        async with self.leases.hold(LEASE) as held:
            if not held:
                log.debug("garbage collection: another worker or replica is collecting")
                return None
            for job in self.before:
                try:
                    await job()
                except Exception:
                    log.exception("garbage collection: a job before the collection failed")
            with self.around():
                report = await Collector(
                    self.metadata,
                    self.storage,
                    review_after=self.review_after,
                    delete_untagged=self.delete_untagged,
                ).run()
        for observer in self.observers:
            try:
                observer(report)
            except Exception:
                log.exception("garbage collection: a report observer failed")
        if report.manifests or report.blobs or report.manifest_bytes or report.problems:
            log.info("garbage collection: %s", report.summary())
        return report

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval.total_seconds())
            try:
                await self.run_once()
            except Exception:
                log.exception("garbage collection failed; trying again in %s", self.interval)
