"""The wiring of ``dockyard retention``, ``dockyard du`` and ``dockyard fsck``: the
configuration's existing database (never created here) and storage, around
:mod:`dockyard.retention`, the usage queries and :mod:`dockyard.fsck`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from dockyard.config import Config
from dockyard.config.proxy import expiry_rules
from dockyard.config.retention import retention_policy
from dockyard.database import shown_url
from dockyard.fsck.check import FsckReport, Progress, check_store
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.usage_queries import RegistryUsage, RepositoryUsage
from dockyard.registry2_commands import existing_database
from dockyard.retention.apply import Progress as RepositoryProgress
from dockyard.retention.apply import RetentionReport, apply_retention
from dockyard.storage_setup import make_storage


class NoDatabaseError(Exception):
    """The configuration names no Dockyard database yet (nothing to work on)."""


@asynccontextmanager
async def opened(config: Config) -> AsyncIterator[MetadataStore]:
    url = config.database_url()
    metadata = await existing_database(url, serving=True)
    if metadata is None:
        raise NoDatabaseError(f"no Dockyard database at {shown_url(url)}")
    try:
        yield metadata
    finally:
        await metadata.close()


async def run_retention(
    config: Config,
    dry_run: bool,
    repositories: Sequence[str] | None = None,
    progress: RepositoryProgress | None = None,
) -> RetentionReport:
    policy = retention_policy(config.retention, config.immutabletags, expiry_rules(config.proxy))
    async with opened(config) as metadata:
        return await apply_retention(
            metadata, policy, dry_run, repositories=repositories or None, progress=progress
        )


async def run_usage(
    config: Config, repositories: Sequence[str]
) -> tuple[list[RepositoryUsage], RegistryUsage]:
    async with opened(config) as metadata:
        chosen = await metadata.repository_usage(repositories or None)
        return chosen, await metadata.registry_usage()


async def run_fsck(
    config: Config, repair: bool, verify_digests: bool, progress: Progress | None = None
) -> FsckReport:
    storage = make_storage(config)
    try:
        async with opened(config) as metadata:
            return await check_store(
                metadata,
                storage,
                repair=repair,
                verify_digests=verify_digests,
                upload_age=config.storage.maintenance.uploadpurging.age,
                progress=progress,
            )
    finally:
        await storage.close()
