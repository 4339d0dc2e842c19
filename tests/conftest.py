"""Shared fixtures: a registry application over a real database (SQLite, and PostgreSQL
started for the session) and a real storage driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
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
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from tests.azurite import AzuriteServer, running_azurite
from tests.databases import DATABASES, fresh_database
from tests.fakegcs import FakeGcsServer, running_fake_gcs
from tests.postgres import PostgresServer
from tests.prometheus import PrometheusServer
from tests.seaweedfs import SeaweedServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, started when a test first needs it."""
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """One Prometheus for the session (scraping what a test names), started when a test
    first needs it."""
    server = PrometheusServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedServer]:
    """One SeaweedFS (S3) for the session, started when a test first needs it."""
    server = SeaweedServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs_bucket(seaweedfs: SeaweedServer) -> str:
    """A bucket shared by the session's tests; each takes a prefix of its own in it."""
    return seaweedfs.new_bucket("session")


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """One Azurite blob service for the session (installed from npm on first use)."""
    with running_azurite() as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcsServer]:
    """One fake-gcs-server for the session."""
    with running_fake_gcs() as server:
        yield server


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(database: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh metadata database with the schema at head."""
    async with fresh_database(database, request) as url:
        yield url


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
    database_url: str, storage_driver: StorageDriver, settings: RegistrySettings
) -> AsyncIterator[Registry]:
    # The write counter (and so the read caches) as the server has them: off on PostgreSQL.
    metadata = MetadataStore(
        create_engine(database_url), WriteGeneration.for_database(database_url)
    )
    service = Registry(metadata, storage_driver, settings)
    yield service
    await service.close()


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = build_app(registry)
    app.on_cleanup.clear()  # the registry fixture closes the service
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
