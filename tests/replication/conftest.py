"""Fixtures of the replication tests: a Distribution 2.8.2 destination, a database per
test (SQLite or PostgreSQL), and the e2e suite's isolated clients (skopeo, ctr)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures, registered by import)
    _isolated_environ,
    client_env,
    containerd,
    ctr,
    image,
    image_index,
    pytest_runtest_makereport,
    repo,
    skopeo,
)
from tests.e2e.server import RegistryServer
from tests.postgres import PostgresServer
from tests.remote.servers import running


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The destination every test replicates into: a Distribution 2.8.2."""
    yield from running(RegistryServer("registry2", tmp_path_factory.mktemp("repl-prod")))


@pytest.fixture(params=["sqlite", "postgresql"])
def dev_database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite (the file in the Dockyard's store), or a PostgreSQL database of
    the test's own."""
    if request.param == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = asyncio.run(server.acquire())
    try:
        yield url
    finally:
        asyncio.run(server.release(url))
