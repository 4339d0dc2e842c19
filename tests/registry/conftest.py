"""Fixtures of the registry use-case tests: a real metadata store on each database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dockyard.metadata.engine import create_engine
from dockyard.metadata.store import MetadataStore


@pytest.fixture
async def metadata(database_url: str) -> AsyncIterator[MetadataStore]:
    store = MetadataStore(create_engine(database_url))
    yield store
    await store.close()
