"""Writers that overlap on PostgreSQL, where transactions run side by side (on SQLite one
write lock serialises them). A third connection holds a row lock to make the overlap
certain instead of likely; the stores are real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from dockyard.metadata import schema as t
from dockyard.metadata.store import MetadataStore
from dockyard.oci import mediatypes
from tests.metadata.test_store import digest, manifest, open_store, push_image
from tests.postgres import PostgresServer

pytestmark = pytest.mark.parametrize("database", ["postgresql"])


async def admin(database_url: str) -> asyncpg.Connection:
    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )


async def waiting_for_locks(connection: asyncpg.Connection, count: int) -> None:
    """Until ``count`` other sessions of this database wait for a lock (a guard against
    hanging bounds the wait, not a timing check)."""
    for _ in range(3000):
        # Inside a transaction the statistics are a snapshot unless cleared.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} sessions ever waited for a lock")


@pytest.fixture
async def stores(database_url: str, postgres: PostgresServer) -> AsyncIterator[list[MetadataStore]]:
    """Two stores on one database, as two replicas."""
    opened = [await open_store(database_url, migrated=True) for _ in range(2)]
    yield opened
    for store in opened:
        await store.close()


# An image shares its blobs with the other push; an empty index references nothing.
MANIFESTS = {
    "image": manifest("v2", blobs=(digest("v1/config"), digest("v1/layer"))),
    "empty index": manifest("index", media_type=mediatypes.OCI_INDEX),
}


@pytest.mark.parametrize("kind", MANIFESTS)
async def test_the_same_manifest_pushed_twice_at_once(
    stores: list[MetadataStore], database_url: str, kind: str
) -> None:
    """Both pushes succeed; the second finds the manifest the first committed meanwhile
    instead of inserting it again (a unique-key violation: HTTP 500)."""
    first, second = stores
    await push_image(first, "app", "v1", "latest")
    image = MANIFESTS[kind]
    blocker = await admin(database_url)
    try:
        # The first push inserts the manifest, then waits to move "latest".
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM tags WHERE name = 'latest' FOR UPDATE")
            pushes = [asyncio.create_task(first.put_manifest("app", image, "latest"))]
            await waiting_for_locks(blocker, 1)
            pushes.append(asyncio.create_task(second.put_manifest("app", image, "other")))
            await waiting_for_locks(blocker, 2)
        await asyncio.gather(*pushes)
    finally:
        await blocker.close()
    assert await first.list_tags("app", None, None) == ["latest", "other"]
    for tag in ("latest", "other"):
        found = await second.get_manifest("app", tag, by_digest=False)
        assert found is not None and found.digest == image.digest
    assert await first.count("manifests") == 2
    assert await first.count("manifest_references") == 2 + len(image.blob_digests)


async def test_a_blob_losing_its_last_reference_during_its_review_stays_queued(
    stores: list[MetadataStore], database_url: str
) -> None:
    """The collector reviews a queued layer and finds it referenced while the manifest
    that references it is deleted beside it: that delete queues the layer again, after
    the collector has taken it out, never into the entry the collector deletes (the
    collection reads only the queue: a lost entry would be garbage kept for ever)."""
    collector, pusher = stores
    first = await push_image(pusher, "app", "v1", "latest")
    second = await push_image(pusher, "other", "v1", "latest")  # the same config and layer
    await pusher.delete_manifest("other", second)
    layer = digest("v1/layer")
    assert layer in await queued(collector)  # its manifest went; "app" still references it
    watcher = await admin(database_url)
    try:
        async with collector.deleting_blobs([layer], datetime.now(UTC)) as deletion:
            assert deletion.candidates == []  # referenced: out of the queue at commit
            deleting = asyncio.create_task(pusher.delete_manifest("app", first))
            await waiting_for_locks(watcher, 1)  # the trigger waits for the queue entry
        await deleting
    finally:
        await watcher.close()
    assert layer in await queued(collector)


async def queued(store: MetadataStore) -> set[str]:
    async with store.engine.connect() as connection:
        return set((await connection.execute(select(t.gc_blob_reviews.c.digest))).scalars())
