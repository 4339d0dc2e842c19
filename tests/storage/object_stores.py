"""Drivers on the session's object-store emulators, for the driver suite and beyond: each
in a new container or bucket, under a root directory, and what each left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.storage.driver import StorageDriver
from tests.azurite import ACCOUNT, KEY, AzuriteServer
from tests.fakegcs import FakeGcsServer, service_account_info

ROOT = "registry-root"


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
