"""The upload purger runs under the ``upload-purge`` lease: while another worker or replica
holds it (here: another engine, as another replica would), a round is skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import timedelta

import pytest
from aiohttp import web

from dockyard.app import _upload_purger
from dockyard.metadata.engine import create_engine
from dockyard.metadata.leases import Leases
from dockyard.oci.errors import RegistryError
from dockyard.registry.service import Registry


async def _exists(registry: Registry, upload_id: str) -> bool:
    try:
        await registry.uploads.status("app", upload_id)
    except RegistryError:
        return False
    return True


@pytest.mark.parametrize("storage_driver", ["filesystem"], indirect=True)
async def test_a_purge_waits_while_another_replica_holds_the_lease(
    registry: Registry, database_url: str
) -> None:
    upload_id = await registry.uploads.start("app")
    other_replica = create_engine(database_url)
    purger = _upload_purger(registry, timedelta(0), timedelta(seconds=1), False)(web.Application())
    assert isinstance(purger, AsyncGenerator)
    try:
        async with Leases(other_replica).hold("upload-purge") as held:
            assert held
            await anext(purger)  # the first round starts now, and is skipped
            await asyncio.sleep(0.3)
            assert await _exists(registry, upload_id)
        for _ in range(60):  # the next round, a second later, purges
            if not await _exists(registry, upload_id):
                break
            await asyncio.sleep(0.1)
        assert not await _exists(registry, upload_id)
    finally:
        await purger.aclose()
        await other_replica.dispose()
