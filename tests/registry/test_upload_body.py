"""How an upload reads its body: every chunk is handed back once hashed and written, only a
few are held at once, and a request that loses a race with another on the same upload
keeps nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.errors import RegistryError
from dockyard.registry.uploads import UploadService
from dockyard.storage.driver import StorageDriver
from dockyard.storage.inmemory import InMemoryDriver

NAME = "team/app"
MiB = 1024 * 1024


class LentBody:
    """A body that lends its chunks and counts what comes back (a producer with reusable
    buffers would refill them then)."""

    def __init__(self, chunks: list[bytes], gate: asyncio.Event | None = None) -> None:
        self.chunks = chunks
        self.gate = gate
        self.lent: list[bytes] = []
        self.returned: list[bytes] = []
        self.most_held = 0
        self.started = asyncio.Event()

    async def _iterate(self) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            self.lent.append(chunk)
            self.most_held = max(self.most_held, len(self.lent) - len(self.returned))
            yield chunk
            if index == 0:
                self.started.set()
                if self.gate is not None:
                    await self.gate.wait()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    def done(self, chunk: bytes | memoryview) -> None:
        assert any(chunk is lent for lent in self.lent), "handed back twice or never lent"
        assert not any(chunk is back for back in self.returned), "handed back twice"
        self.returned.append(bytes(chunk) if isinstance(chunk, memoryview) else chunk)


async def test_every_chunk_is_handed_back_and_few_are_held(
    metadata: MetadataStore, storage_driver: StorageDriver
) -> None:
    service = UploadService(metadata, storage_driver)
    chunks = [os.urandom(MiB) for _ in range(12)]
    upload = await service.start(NAME)
    body = LentBody(chunks)
    assert await service.append(NAME, upload, body, None, None) == 12 * MiB
    assert len(body.returned) == len(chunks)
    assert body.most_held <= 3
    tail = LentBody([b"tail"])
    whole = b"".join(chunks) + b"tail"
    assert await service.complete(NAME, upload, Digest.of(whole), tail, None, 4) == len(whole)
    assert len(tail.returned) == 1


@pytest.mark.parametrize("declared", [MiB, 3 * MiB + 1], ids=["too-long", "too-short"])
async def test_chunks_come_back_from_a_chunk_that_fails(
    metadata: MetadataStore, storage_driver: StorageDriver, declared: int
) -> None:
    service = UploadService(metadata, storage_driver)
    upload = await service.start(NAME)
    body = LentBody([os.urandom(MiB) for _ in range(3)])
    with pytest.raises(RegistryError) as caught:
        await service.append(NAME, upload, body, None, declared)
    assert caught.value.error is errors.SIZE_INVALID
    assert len(body.returned) == len(body.lent)
    assert await service.status(NAME, upload) == 0


async def test_a_small_final_body_is_copied_and_handed_back(
    metadata: MetadataStore, storage_driver: StorageDriver
) -> None:
    service = UploadService(metadata, storage_driver)
    upload = await service.start(NAME)
    body = LentBody([b"small", b" blob"])
    data = b"small blob"
    assert await service.complete(NAME, upload, Digest.of(data), body, None, len(data)) == 10
    assert len(body.returned) == 2
    assert (
        await storage_driver.get_content(
            "/docker/registry/v2/blobs/sha256/"
            + Digest.of(data).hex[:2]
            + f"/{Digest.of(data).hex}/data"
        )
        == data
    )


async def test_the_request_that_loses_a_race_keeps_nothing(metadata: MetadataStore) -> None:
    """Two requests on one upload at once (two workers): the row moves for the first to
    finish; the other answers BLOB_UPLOAD_INVALID and the upload goes on without it."""
    storage = InMemoryDriver()
    one, two = UploadService(metadata, storage), UploadService(metadata, storage)
    upload = await one.start(NAME)
    gate = asyncio.Event()
    slow = LentBody([os.urandom(1000), os.urandom(1000)], gate)
    late = asyncio.ensure_future(one.append(NAME, upload, slow, None, None))
    await slow.started.wait()
    winner = os.urandom(3000)
    assert await two.append(NAME, upload, LentBody([winner]), None, None) == 3000
    gate.set()
    with pytest.raises(RegistryError) as caught:
        await late
    assert caught.value.error is errors.BLOB_UPLOAD_INVALID
    assert await one.status(NAME, upload) == 3000
    assert await one.complete(NAME, upload, Digest.of(winner), None, None, None) == 3000
