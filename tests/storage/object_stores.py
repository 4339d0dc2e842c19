"""Drivers on the session's object-store emulators, for the driver suite and beyond: each
in a new container or bucket, under a root directory, and what each left behind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.metadata.engine import create_engine
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.store import MetadataStore
from dockyard.registry.service import Registry
from dockyard.registry.settings import RegistrySettings
from dockyard.storage.driver import StorageDriver
from tests.azurite import ACCOUNT, KEY, AzuriteServer
from tests.fakegcs import FakeGcsServer, service_account_info

ROOT = "registry-root"
Client = TestClient[web.Request, web.Application]


@asynccontextmanager
async def serving_replicas(
    drivers: Sequence[StorageDriver], database_url: str
) -> AsyncIterator[tuple[list[Client], list[Registry]]]:
    """A registry replica on each driver (its own Registry and HTTP app), all on the one
    metadata database at ``database_url``: their test clients and registries."""
    registries = [
        Registry(
            MetadataStore(create_engine(database_url), WriteGeneration.for_database(database_url)),
            driver,
            RegistrySettings(),
        )
        for driver in drivers
    ]
    clients = []
    for registry in registries:
        app = build_app(registry)
        app.on_cleanup.clear()
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
    try:
        yield clients, registries
    finally:
        for client in clients:
            await client.close()
        for registry in registries:
            await registry.close()


def make_azure_driver(request: pytest.FixtureRequest, **options: object) -> StorageDriver:
    from dockyard.storage.azure_driver import AzureDriver

    azurite: AzuriteServer = request.getfixturevalue("azurite")
    return AzureDriver(
        account_name=ACCOUNT,
        account_key=KEY,
        container=azurite.create_container(),
        service_url=azurite.endpoint,
        rootdirectory=ROOT,
        **options,  # type: ignore[arg-type]
    )


async def azure_leftovers(driver: StorageDriver, _base: Path) -> list[str]:
    """Blobs that hold only staged (uncommitted) blocks."""
    from dockyard.storage.azure_driver import AzureDriver

    assert isinstance(driver, AzureDriver)
    container = driver._container()
    committed = {name async for name in container.list_blob_names()}
    found = []
    async for blob in container.list_blobs(include=["uncommittedblobs"]):
        if blob.name not in committed:
            found.append(f"staged blocks on {blob.name}")
    return found


def make_gcs_driver(request: pytest.FixtureRequest, **options: object) -> StorageDriver:
    from dockyard.storage.gcs_driver import GcsDriver

    fake_gcs: FakeGcsServer = request.getfixturevalue("fake_gcs")
    return GcsDriver(
        bucket=fake_gcs.create_bucket(),
        rootdirectory=ROOT,
        credentials=service_account_info(),
        endpoint=fake_gcs.endpoint,
        **options,  # type: ignore[arg-type]
    )


async def gcs_leftovers(driver: StorageDriver, _base: Path) -> list[str]:
    """Part objects of uploads neither committed nor aborted."""
    from dockyard.storage.gcs_driver import GcsDriver

    assert isinstance(driver, GcsDriver)
    return [f"part {e.key}" async for e in driver.list_keys(driver.parts_prefix(), False)]


def another_instance(driver: StorageDriver) -> StorageDriver:
    """A second driver on the same container or bucket: what another replica has."""
    from dockyard.storage.azure_driver import AzureDriver
    from dockyard.storage.gcs_driver import GcsDriver

    if isinstance(driver, AzureDriver):
        return AzureDriver(
            account_name=driver.account_name,
            account_key=driver._account_key,
            container=driver.container,
            service_url=driver.service_url,
            rootdirectory=ROOT,
        )
    assert isinstance(driver, GcsDriver)
    return GcsDriver(
        bucket=driver.bucket,
        rootdirectory=ROOT,
        credentials=service_account_info(),
        endpoint=driver.endpoint,
    )
