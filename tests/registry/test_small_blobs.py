"""A whole small blob in one request: committed without the upload's writer, and without
asking the storage to discard what the upload never had."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.oci.resumable import ResumableSha256, new_sha256
from dockyard.registry.body import IterableBody
from dockyard.registry.uploads import UploadService
from dockyard.storage import paths
from dockyard.storage.driver import WriterState
from dockyard.storage.filesystem import FilesystemDriver

NAME = "team/app"


class AbortCountingDriver(FilesystemDriver):
    """The filesystem driver, counting the discards it is asked for."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.aborts = 0

    async def abort(self, path: str, state: WriterState) -> None:
        self.aborts += 1
        await super().abort(path, state)


def body(data: bytes) -> IterableBody:
    async def chunks() -> AsyncIterator[bytes]:
        if data:
            yield data

    return IterableBody(chunks())


async def nothing_left(storage: FilesystemDriver) -> bool:
    return await storage.list(f"{paths.repository(NAME)}/_uploads") == []


async def complete_whole(service: UploadService, upload: str, data: bytes) -> None:
    size = await service.complete(NAME, upload, Digest.of(data), body(data), None, len(data))
    assert size == len(data)


async def test_an_untouched_upload_is_not_discarded(
    metadata: MetadataStore, tmp_path: Path
) -> None:
    storage = AbortCountingDriver(tmp_path)
    service = UploadService(metadata, storage)
    data = os.urandom(70_000)
    await complete_whole(service, await service.start(NAME), data)
    assert storage.aborts == 0
    assert await storage.get_content(paths.blob_data(Digest.of(data))) == data
    assert await metadata.count("uploads") == 0
    assert await nothing_left(storage)


async def test_what_an_empty_chunk_left_is_discarded(
    metadata: MetadataStore, tmp_path: Path
) -> None:
    storage = AbortCountingDriver(tmp_path)
    service = UploadService(metadata, storage)
    upload = await service.start(NAME)
    assert await service.append(NAME, upload, body(b""), None, 0) == 0
    assert not await nothing_left(storage)  # the chunk's file is there, empty
    await complete_whole(service, upload, os.urandom(5000))
    assert storage.aborts == 1
    assert await nothing_left(storage)


@pytest.mark.skipif(not isinstance(new_sha256(), ResumableSha256), reason="no libcrypto")
async def test_a_chunk_on_another_worker_is_seen_in_the_row(
    metadata: MetadataStore, tmp_path: Path
) -> None:
    storage = AbortCountingDriver(tmp_path)
    one, two = UploadService(metadata, storage), UploadService(metadata, storage)
    upload = await one.start(NAME)
    await two.append(NAME, upload, body(b""), None, 0)
    await complete_whole(one, upload, os.urandom(5000))
    assert storage.aborts == 1
    assert await nothing_left(storage)
