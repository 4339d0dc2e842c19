"""The wiring of ``dockyard import`` and ``dockyard export``: the configuration's storage
and database, opened the way each command needs them, around :mod:`dockyard.registry2`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.engine import make_url

from dockyard.config import Config
from dockyard.database import shown_url
from dockyard.metadata.engine import create_engine, current_revision, migrate
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.store import MetadataStore
from dockyard.registry2.exporter import ExportReport, Progress, export_store
from dockyard.registry2.importer import (
    ImportReport,
    import_store,
    no_store_refusal,
    served_writes_refusal,
)
from dockyard.storage_setup import make_storage


async def run_import(config: Config, *, dry_run: bool = False, force: bool = False) -> ImportReport:
    """``dockyard import``: the registry:2 store ``config`` points at, into its database.

    Refused, before any database is opened or created, when there is no store there; refused
    when Dockyard has served writes to the store (importing would undo them), unless
    ``force``. The import's own writes are not noted as served writes.
    """
    storage = make_storage(config)
    try:
        refusal = await _missing_root(config)
        if refusal is not None:
            return ImportReport(dry_run=dry_run, refused=f"{refusal}: nothing to import")
        refusal = await no_store_refusal(storage)
        if refusal is not None:
            return ImportReport(dry_run=dry_run, refused=refusal)
        url = config.database_url()
        existing = await existing_database(url)
        try:
            if existing is not None and not force:
                refusal = await served_writes_refusal(existing, storage)
                if refusal is not None:
                    return ImportReport(dry_run=dry_run, refused=refusal)
            if dry_run:
                return await import_store(existing, storage, dry_run=True)
        finally:
            if existing is not None:
                await existing.close()
        engine = create_engine(url)
        await migrate(engine)
        metadata = MetadataStore(engine, WriteGeneration.for_database(url), notes_writes=False)
        try:
            return await import_store(metadata, storage)
        finally:
            await metadata.close()
    finally:
        await storage.close()


async def run_export(
    config: Config, *, dry_run: bool = False, progress: Progress | None = None
) -> ExportReport:
    """``dockyard export``: registry:2's link files, in the store ``config`` points at, for
    what its database holds. Refused when there is no store or no database."""
    refusal = await _missing_root(config)
    if refusal is not None:
        return ExportReport(dry_run=dry_run, refused=f"{refusal}: nothing to export")
    url = config.database_url()
    metadata = await existing_database(url)
    if metadata is None:
        refused = f"no Dockyard database at {shown_url(url)}: nothing to export"
        return ExportReport(dry_run=dry_run, refused=refused)
    storage = make_storage(config)
    try:
        return await export_store(metadata, storage, dry_run=dry_run, progress=progress)
    finally:
        await metadata.close()
        await storage.close()


async def _missing_root(config: Config) -> str | None:
    """Why the storage ``config`` names cannot hold a registry:2 store, or None."""
    if config.storage.in_process:
        return f"storage driver {config.storage.driver} holds no registry:2 store"
    if config.storage.local_root is None:
        return None  # object storage: the store's own listing tells
    root = Path(config.storage.local_root)
    if not await asyncio.to_thread(root.is_dir):
        return f"{config.storage.local_root_key} {root} does not exist (mistyped?)"
    return None


async def existing_database(url: str, serving: bool = False) -> MetadataStore | None:
    """The database at ``url`` if it exists and has a schema; None otherwise.

    A dry run reads what is already imported, and an export what Dockyard holds, but
    neither may create a database to do so. Neither serves, so writes are not noted.
    ``serving``: a store for commands that change it beside running servers (retention,
    fsck): its writes are noted and invalidate the servers' read caches.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not await asyncio.to_thread(Path(database).is_file):
            return None
    engine = create_engine(url)
    if await current_revision(engine) is None:
        await engine.dispose()
        return None
    if serving:
        return MetadataStore(engine, WriteGeneration.for_database(url))
    return MetadataStore(engine, notes_writes=False)
