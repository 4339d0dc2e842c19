"""A storage driver that fails in an unforeseen way halfway through a batch's deletes: the
collection stops with the error, and no blob row is left whose bytes are gone, while
everything referenced stays. A fake driver (a real filesystem one that raises after some
deletes): no real store fails like that on demand. On both databases.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from dockyard.metadata import schema as t
from dockyard.registry.service import Registry
from dockyard.storage.driver import StorageDriver, StorageError
from dockyard.storage.filesystem import FilesystemDriver
from tests.api.helpers import Client, digest_of, push_blob, push_image
from tests.gc.test_collector import collect, stored


class BrokenHalfway(FilesystemDriver):
    """Deletes the first ``deleted`` paths of a batch, then raises ``error``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.error: BaseException | None = None
        self.deleted = 0

    async def delete_many(self, paths: Sequence[str]) -> dict[str, StorageError]:
        if self.error is None:
            return await super().delete_many(paths)
        await super().delete_many(paths[: self.deleted])
        raise self.error


@pytest.fixture
def storage_driver(tmp_path: Path) -> StorageDriver:
    return BrokenHalfway(tmp_path / "store")


async def blob_rows(registry: Registry) -> set[str]:
    async with registry.metadata.engine.connect() as connection:
        return set((await connection.execute(select(t.blobs.c.digest))).scalars())


async def every_row_has_its_bytes(registry: Registry) -> None:
    for digest in await blob_rows(registry):
        assert await stored(registry, digest), digest


@pytest.mark.parametrize("error", [RuntimeError("driver bug"), asyncio.CancelledError()])
async def test_a_delete_that_breaks_halfway_leaves_no_row_without_bytes(
    client: Client, registry: Registry, error: BaseException
) -> None:
    _, _, layers = await push_image(client, "app", "v1")
    strays = [await push_blob(client, "app", os.urandom(200 + i)) for i in range(6)]
    driver = registry.storage
    assert isinstance(driver, BrokenHalfway)
    driver.error, driver.deleted = error, 3

    with pytest.raises(type(error)):
        await collect(registry)

    await every_row_has_its_bytes(registry)
    rows = await blob_rows(registry)
    gone = [d for d in strays if not await stored(registry, d)]
    assert len(gone) == 3 and rows.isdisjoint(gone)
    for digest in gone:
        assert (await client.head(f"/v2/app/blobs/{digest}")).status == 404
    for layer in layers:
        assert digest_of(layer) in rows and await stored(registry, digest_of(layer))
    stayed = set(strays) - set(gone)
    # Looked at after a failure, the rows whose bytes stayed are kept for the next run; a
    # cancelled batch looks at nothing and lets its rows go (their bytes only take room).
    looked = isinstance(error, RuntimeError)
    assert stayed <= rows if looked else rows.isdisjoint(strays)

    driver.error = None
    report = await collect(registry)

    assert {r.digest for r in report.blobs} == (stayed if looked else set())
    await every_row_has_its_bytes(registry)
    assert (await client.get("/v2/app/manifests/v1")).status == 200
