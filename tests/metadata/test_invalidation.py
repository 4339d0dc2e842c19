"""Read caches on PostgreSQL, kept valid across replicas by LISTEN/NOTIFY: two stores on
engines of their own stand for two replicas on one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dockyard.metadata.generation import NotifiedGeneration, WriteGeneration
from dockyard.metadata.invalidation import WriteListener
from dockyard.metadata.store import MetadataStore
from tests.metadata.test_store import open_store, push_image
from tests.postgres import PostgresServer

pytestmark = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


@dataclass
class Replica:
    store: MetadataStore
    generation: NotifiedGeneration
    listener: WriteListener


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[Replica]]:
    found = []
    for _ in range(2):
        store = await open_store(database_url, migrated=True)
        generation = store.generation
        assert isinstance(generation, NotifiedGeneration)
        listener = WriteListener(store.engine, generation, heartbeat=0.2)  # type: ignore[arg-type]
        await listener.start()
        found.append(Replica(store, generation, listener))
    yield found
    for replica in found:
        await replica.listener.stop()
        await replica.store.close()


async def _until(condition: object, what: str) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"still waiting for {what}")


async def test_a_write_on_one_replica_drops_the_other_replicas_cached_reads(
    replicas: list[Replica],
) -> None:
    writer, reader = replicas
    await push_image(writer.store, "app", "v0", "v0")
    expected = ["v0"]
    for round_ in range(1, 30):
        first = await reader.store.tag_list("app")
        assert first is not None and first.tags == expected
        assert await reader.store.tag_list("app") is first  # cached: the caches are on
        tag = f"v{round_:02}"
        await push_image(writer.store, "app", tag, tag)
        expected.append(tag)
        # At once, without waiting for the notification: the read waits for it itself.
        again = await reader.store.tag_list("app")
        assert again is not None and again.tags == expected, round_
    assert reader.listener.notifications >= 29


async def test_caches_are_off_while_the_listener_is_down(
    replicas: list[Replica], postgres: PostgresServer
) -> None:
    _, reader = replicas
    await push_image(reader.store, "app", "v1", "v1")
    assert not reader.generation.disabled
    before = reader.generation.current()
    # The server ends the listening session, as a restart or a network failure would.
    await postgres.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE query LIKE 'LISTEN%' OR query = 'SELECT 1'"
    )
    await _until(lambda: reader.generation.disabled, "the caches to turn off")
    first = await reader.store.tag_list("app")
    assert first is not None and await reader.store.tag_list("app") is not first
    await _until(lambda: not reader.generation.disabled, "the listener to reconnect")
    assert reader.generation.current() > before  # what was cached before is dropped


async def test_without_a_listener_or_with_readcache_off_nothing_is_cached(
    database_url: str,
) -> None:
    assert WriteGeneration.for_database(database_url).disabled  # no listener yet
    assert WriteGeneration.for_database(database_url, readcache=False).disabled
    assert WriteGeneration.for_database("sqlite://", readcache=False).disabled
    assert not WriteGeneration.for_database("sqlite://").disabled
