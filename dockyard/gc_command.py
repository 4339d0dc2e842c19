"""The wiring of ``dockyard garbage-collect``: the configuration's database and storage,
the ``gc`` lease (waited for, so that one collector runs at a time beside a serving
Dockyard), and one :class:`~dockyard.gc.collector.Collector` run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dockyard.config import Config
from dockyard.gc.collector import Collector, Progress
from dockyard.gc.report import GcReport
from dockyard.gc.schedule import LEASE
from dockyard.metadata.engine import create_engine
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.leases import Leases
from dockyard.metadata.store import MetadataStore
from dockyard.registry.blob_mover import finish_moves
from dockyard.storage_setup import make_storage

log = logging.getLogger("dockyard.gc")

#: how often to ask again for the lease another collector holds
LEASE_POLL_SECONDS = 0.5


async def run_gc(
    config: Config,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    progress: Progress | None = None,
    waiting: Callable[[], None] | None = None,
) -> GcReport:
    """Collect once, with the review delay of ``gc.reviewafter``; ``waiting`` is called
    once if another collector holds the lease (this run starts when it is done)."""
    url = config.database_url()
    metadata = MetadataStore(create_engine(url, bulk=True), WriteGeneration.for_database(url))
    storage = make_storage(config)
    leases = Leases(metadata.engine)
    try:
        if not dry_run:
            # The collector leaves blobs whose copy is pending for a later run: none left.
            await finish_moves(metadata, storage)
        told = False
        while True:
            async with leases.hold(LEASE) as held:
                if held:
                    collector = Collector(
                        metadata,
                        storage,
                        review_after=config.gc.reviewafter,
                        delete_untagged=delete_untagged,
                        dry_run=dry_run,
                        progress=progress,
                    )
                    return await collector.run()
            if not told and waiting is not None:
                waiting()
                told = True
            await asyncio.sleep(LEASE_POLL_SECONDS)
    finally:
        await metadata.close()
        await storage.close()
