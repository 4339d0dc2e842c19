"""The review queue of blobs (``gc_blob_reviews``) holds exactly the blobs no manifest
references, whatever wrote the tables: pushes, deletes, the collector; on both databases.
A collection reads only the queue, so a blob missing from it would never be collected.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from dockyard.metadata import schema as t
from dockyard.oci.digest import Digest
from dockyard.registry.service import Registry
from dockyard.storage import paths
from dockyard.storage.driver import StorageError
from tests.api.helpers import OCI_MANIFEST, Client, digest_of, image_manifest, push_blob
from tests.gc.test_collector import collect, put_manifest, stored


async def queued(registry: Registry) -> set[str]:
    async with registry.metadata.engine.connect() as connection:
        return set((await connection.execute(select(t.gc_blob_reviews.c.digest))).scalars())


async def unreferenced(registry: Registry) -> set[str]:
    """What the queue must hold, computed the slow way: every blob row no reference names."""
    referenced = select(t.manifest_references.c.digest).where(
        t.manifest_references.c.kind == "blob"
    )
    async with registry.metadata.engine.connect() as connection:
        rows = await connection.execute(
            select(t.blobs.c.digest).where(t.blobs.c.digest.not_in(referenced))
        )
        return set(rows.scalars())


async def push_manifest(
    client: Client, name: str, tag: str, config: bytes, layers: list[bytes]
) -> str:
    for blob in (config, *layers):
        await push_blob(client, name, blob)
    return await put_manifest(client, name, tag, image_manifest(config, layers), OCI_MANIFEST)


async def test_the_queue_follows_uploads_references_and_deletes(
    client: Client, registry: Registry
) -> None:
    shared, own, config = os.urandom(300), os.urandom(301), b'{"os":"linux"}'
    stray = await push_blob(client, "app", os.urandom(50))
    assert await queued(registry) == {stray}  # uploaded, referenced by nothing yet

    first = await push_manifest(client, "app", "v1", config, [shared, own])
    await push_manifest(client, "other", "v1", config + b" ", [shared])
    assert await queued(registry) == {stray}  # the manifests took theirs out

    response = await client.delete(f"/v2/app/manifests/{first}")
    assert response.status == 202
    # The deleted manifest's blobs are reviewed, the shared layer too (still referenced).
    assert await queued(registry) == {stray, digest_of(config), digest_of(own), digest_of(shared)}
    assert await unreferenced(registry) == {stray, digest_of(config), digest_of(own)}

    report = await collect(registry)

    assert {r.digest for r in report.blobs} == {stray, digest_of(config), digest_of(own)}
    assert await queued(registry) == set()  # the shared layer, found referenced, left it
    assert await stored(registry, digest_of(shared))


async def test_a_blob_kept_by_the_review_delay_stays_queued(
    client: Client, registry: Registry
) -> None:
    blob = await push_blob(client, "app", os.urandom(64))

    report = await collect(registry, aged=False)

    assert report.blobs == [] and await queued(registry) == {blob}
    report = await collect(registry)
    assert [r.digest for r in report.blobs] == [blob] and await queued(registry) == set()


async def test_bytes_that_cannot_be_deleted_keep_their_row_for_the_next_run(
    client: Client, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = await push_blob(client, "app", os.urandom(70))
    freed = await push_blob(client, "app", os.urandom(71))
    stuck_dir = paths.blob_dir(Digest.parse(stuck))
    deleting = registry.storage.delete_many

    async def failing(paths_: list[str]) -> dict[str, StorageError]:
        failures = await deleting([p for p in paths_ if p != stuck_dir])
        return {**failures, stuck_dir: StorageError("device busy")}

    monkeypatch.setattr(registry.storage, "delete_many", failing)
    report = await collect(registry)

    assert [r.digest for r in report.blobs] == [freed]
    assert report.problems == [f"blob {stuck}: not deleted (device busy)"]
    assert await queued(registry) == {stuck} and await stored(registry, stuck)
    monkeypatch.undo()
    report = await collect(registry)
    assert [r.digest for r in report.blobs] == [stuck] and not await stored(registry, stuck)
