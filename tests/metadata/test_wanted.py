"""Every event that makes a blob or manifest wanted again records the time (the review
delay of a collector rests on it), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from dockyard.metadata import schema as t
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import as_utc
from tests.metadata.test_store import digest, manifest, store

__all__ = ["store"]  # the parametrized fixture (SQLite file, SQLite memory, PostgreSQL)


async def _blob_wanted(store: MetadataStore, blob: str) -> datetime:
    async with store.engine.connect() as connection:
        query = select(t.blobs.c.wanted_at).where(t.blobs.c.digest == blob)
        return as_utc((await connection.execute(query)).scalar_one())


async def _manifest_wanted(store: MetadataStore, name: str, manifest_digest: str) -> datetime:
    query = (
        select(t.manifests.c.wanted_at)
        .join(t.repositories, t.repositories.c.id == t.manifests.c.repository_id)
        .where(t.repositories.c.name == name, t.manifests.c.digest == manifest_digest)
    )
    async with store.engine.connect() as connection:
        return as_utc((await connection.execute(query)).scalar_one())


LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def _age_everything(store: MetadataStore) -> None:
    """Move every wanted time far back, so that an event that records one shows."""
    async with store.engine.connect() as connection:
        await connection.execute(update(t.blobs).values(wanted_at=LONG_AGO))
        await connection.execute(update(t.manifests).values(wanted_at=LONG_AGO))
        await connection.commit()


async def test_commit_link_mount_reference_and_tag_record_the_time(store: MetadataStore) -> None:
    layer, config, unrelated = digest("layer"), digest("config"), digest("unrelated")
    await store.commit_blob("team/app", layer, 10)
    await store.commit_blob("team/app", config, 5)
    await store.commit_blob("team/app", unrelated, 7)
    assert await _blob_wanted(store, layer) > LONG_AGO

    await _age_everything(store)
    await store.mount_blob("team/other", layer, "team/app")
    assert await _blob_wanted(store, layer) > LONG_AGO
    assert await _blob_wanted(store, config) == LONG_AGO

    await _age_everything(store)
    image = manifest("one", blobs=(config, layer))
    await store.put_manifest("team/app", image, "v1")
    assert await _blob_wanted(store, layer) > LONG_AGO
    assert await _blob_wanted(store, config) > LONG_AGO
    assert await _blob_wanted(store, unrelated) == LONG_AGO
    assert await _manifest_wanted(store, "team/app", image.digest) > LONG_AGO

    await _age_everything(store)
    index = manifest("index", children=(image.digest,))
    await store.put_manifest("team/app", index, "multi")
    assert await _manifest_wanted(store, "team/app", image.digest) > LONG_AGO

    await _age_everything(store)
    await store.put_manifest("team/app", image, "v2")  # the same manifest, tagged again
    assert await _manifest_wanted(store, "team/app", image.digest) > LONG_AGO
    assert await _manifest_wanted(store, "team/app", index.digest) == LONG_AGO
    assert await _blob_wanted(store, config) > LONG_AGO
