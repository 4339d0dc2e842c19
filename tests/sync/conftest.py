"""A Dockyard and a Distribution 2.8.2, both started once per session, plain HTTP, plus the
e2e suite's isolated clients (skopeo) to push the source images."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures, registered by import)
    _isolated_environ,
    client_env,
    image,
    image_index,
    pytest_runtest_makereport,
    repo,
    skopeo,
)
from tests.e2e.server import RegistryServer
from tests.remote.servers import running


@pytest.fixture(scope="session")
def dockyard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from running(RegistryServer("dockyard", tmp_path_factory.mktemp("sync-dockyard")))


@pytest.fixture(scope="session")
def registry2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    yield from running(RegistryServer("registry2", tmp_path_factory.mktemp("sync-registry2")))
