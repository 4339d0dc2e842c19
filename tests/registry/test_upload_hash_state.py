"""Chunks of one upload on different workers: the sha256 state saved with the upload lets
the next worker go on without hashing the earlier chunks again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.oci.resumable import ResumableSha256, new_sha256
from dockyard.registry.uploads import UploadService
from dockyard.storage.inmemory import InMemoryDriver

NAME = "team/app"


class CountingDriver(InMemoryDriver):
    """The in-memory driver, counting the bytes read back (re-hashing reads them)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        async for chunk in super().reader(path, offset, length):
            self.bytes_read += len(chunk)
            yield chunk


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def metadata(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await migrate(engine)
    store = MetadataStore(engine)
    yield store
    await store.close()


def digest(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


@pytest.mark.skipif(not isinstance(new_sha256(), ResumableSha256), reason="no libcrypto")
async def test_chunks_on_alternating_workers_never_rehash(metadata: MetadataStore) -> None:
    storage = CountingDriver()
    one, two = UploadService(metadata, storage), UploadService(metadata, storage)
    chunks = [os.urandom(50_000 + i) for i in range(5)]
    upload = await one.start(NAME)
    size = 0
    for index, chunk in enumerate(chunks):
        worker = (one, two)[index % 2]
        size = await worker.append(NAME, upload, body(chunk), None, len(chunk))
    assert size == sum(map(len, chunks))
    whole = b"".join(chunks)
    assert await two.complete(NAME, upload, digest(whole), None, None, None) == len(whole)
    assert storage.bytes_read == 0


async def test_a_state_that_cannot_be_used_costs_a_rehash_only(metadata: MetadataStore) -> None:
    storage = CountingDriver()
    one, two = UploadService(metadata, storage), UploadService(metadata, storage)
    first, second = os.urandom(70_000), os.urandom(30_000)
    upload = await one.start(NAME)
    await one.append(NAME, upload, body(first), None, None)
    await metadata.save_upload_hash(upload, len(first), b"saved on another kind of machine")
    await two.append(NAME, upload, body(second), None, None)
    assert storage.bytes_read == len(first)
    whole = first + second
    assert await two.complete(NAME, upload, digest(whole), None, None, None) == len(whole)
