"""Shared fixtures: a registry application over real SQLite and a real storage driver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.store import MetadataStore
from dockyard.registry.service import Registry
from dockyard.registry.settings import RegistrySettings
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver


@pytest.fixture(params=["filesystem", "inmemory"])
def storage_driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    if request.param == "filesystem":
        return FilesystemDriver(tmp_path / "store")
    return InMemoryDriver()


@pytest.fixture
def settings() -> RegistrySettings:
    return RegistrySettings()


@pytest.fixture
async def registry(
    tmp_path: Path, storage_driver: StorageDriver, settings: RegistrySettings
) -> AsyncIterator[Registry]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'dockyard.db'}")
    await migrate(engine)
    service = Registry(MetadataStore(engine), storage_driver, settings)
    yield service
    await service.close()


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient[object, object]]:
    app = build_app(registry)
    app.on_cleanup.clear()  # the registry fixture closes the service
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
