"""Chunks of one upload on different workers: the sha256 state saved with the upload lets
the next worker go on without hashing the earlier chunks again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.errors import RegistryError
from dockyard.oci.resumable import ResumableSha256, new_sha256
from dockyard.registry.body import IterableBody
from dockyard.registry.uploads import UploadService
from dockyard.storage import paths
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


def body(data: bytes) -> IterableBody:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return IterableBody(chunks())


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
    assert await two.complete(NAME, upload, Digest.of(whole), None, None, None) == len(whole)
    assert storage.bytes_read == 0


async def test_a_state_that_cannot_be_used_costs_a_rehash_only(metadata: MetadataStore) -> None:
    """Nothing reads an upload in progress (an object store cannot): the final ``PUT``
    commits it where it is and hashes it once from there."""
    storage = CountingDriver()
    one, two = UploadService(metadata, storage), UploadService(metadata, storage)
    first, second = os.urandom(70_000), os.urandom(30_000)
    upload = await one.start(NAME)
    await one.append(NAME, upload, body(first), None, None)
    record = await metadata.get_upload(upload)
    assert record is not None and record.progress.hash_offset == len(first)
    foreign = replace(record.progress, hash_state=b"saved on another kind of machine")
    assert await metadata.save_upload_progress(upload, len(first), foreign)
    await two.append(NAME, upload, body(second), None, None)
    assert storage.bytes_read == 0
    whole = first + second
    assert await two.complete(NAME, upload, Digest.of(whole), None, None, None) == len(whole)
    assert storage.bytes_read == len(whole)
    assert await storage.get_content(paths.blob_data(Digest.of(whole))) == whole
    assert storage.uploads == {} and list(storage.files) == [paths.blob_data(Digest.of(whole))]


async def test_a_wrong_digest_read_back_leaves_nothing(metadata: MetadataStore) -> None:
    storage = CountingDriver()
    service = UploadService(metadata, storage)
    data = os.urandom(10_000)
    upload = await service.start(NAME)
    await service.append(NAME, upload, body(data), None, None)
    sha512 = Digest.parse("sha512:" + hashlib.sha512(b"something else").hexdigest())
    with pytest.raises(RegistryError) as caught:
        await service.complete(NAME, upload, sha512, None, None, None)
    assert caught.value.error is errors.DIGEST_INVALID
    assert storage.bytes_read == len(data)
    assert storage.uploads == {} and storage.files == {}
    assert await metadata.get_upload(upload) is None
