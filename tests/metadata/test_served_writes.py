"""What the store records of the writes Dockyard served (so that an import cannot revert
them): real content changes count, an import's own writes and a missing-bytes mark do not,
and a database from before the record existed counts as written."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.store import MetadataStore
from tests.metadata.test_store import push_image

DIGEST = "sha256:" + "ab" * 32


async def test_served_writes_are_noted_and_others_are_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    await migrate(engine)
    importing = MetadataStore(engine, notes_writes=False)
    await importing.commit_blob("team/app", DIGEST, 10)
    assert await importing.served_write_at() is None
    await importing.mark_blob_missing(DIGEST)
    await importing.close()

    serving = MetadataStore(create_engine(url))
    await serving.mark_blob_missing(DIGEST)
    assert await serving.served_write_at() is None  # the bytes were already gone
    await serving.commit_blob("team/app", DIGEST, 10)
    assert await serving.served_write_at() is not None
    await serving.close()


async def test_a_database_from_before_the_record_counts_as_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    await migrate(engine)
    store = MetadataStore(engine, notes_writes=False)
    assert await store.served_write_at() is None
    await push_image(store, "team/app", "one", "v1")
    await store.close()
    # as a database of migration 0002 was: a tag, but no record of who moved it
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.execute(text("DROP TABLE registry_state"))
        await connection.commit()
    store = MetadataStore(engine)
    assert await store.served_write_at() is not None
    await store.close()
