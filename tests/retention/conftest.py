"""A registry with immutable tags over each database, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.metadata.engine import create_engine
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.store import MetadataStore
from dockyard.registry.service import Registry, default_use_cases
from dockyard.registry.settings import RegistrySettings
from dockyard.retention.immutable import with_immutable_tags
from dockyard.retention.policy import ImmutableRule, ImmutableTags
from dockyard.storage.inmemory import InMemoryDriver
from tests.api.helpers import Client

RELEASES = ImmutableTags((ImmutableRule("releases", ("prod/**",), (r"v[0-9]+(\.[0-9]+)*",)),))


@pytest.fixture
async def protected(database_url: str) -> AsyncIterator[tuple[Client, Registry]]:
    metadata = MetadataStore(
        create_engine(database_url), WriteGeneration.for_database(database_url)
    )
    storage, settings = InMemoryDriver(), RegistrySettings(delete_enabled=True)
    use_cases = with_immutable_tags(
        default_use_cases(metadata, storage, settings), metadata, RELEASES
    )
    registry = Registry(metadata, storage, settings, use_cases)
    app = build_app(registry)
    async with TestClient(TestServer(app)) as client:
        yield client, registry
