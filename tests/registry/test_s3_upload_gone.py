"""A chunked upload on S3 whose multipart upload vanished behind Dockyard's back (an
operator's abort, a lifecycle rule): the writer resumes a fresh upload without asking the
store, so the loss shows when the next chunk's part is sent. That chunk answers
BLOB_UPLOAD_UNKNOWN and ends the session, as a loss found before the body does."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.errors import RegistryError
from dockyard.registry.body import IterableBody
from dockyard.registry.uploads import UploadService
from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.s3_progress import Progress
from dockyard.storage.s3_writer import abort_upload
from tests.seaweedfs import SeaweedServer

NAME = "team/app"
MiB = 1024 * 1024


def body(data: bytes) -> IterableBody:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), MiB):
            yield data[start : start + MiB]

    return IterableBody(chunks())


@pytest.fixture
async def driver(seaweedfs: SeaweedServer, seaweedfs_bucket: str) -> AsyncIterator[S3Driver]:
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/gone/{uuid.uuid4().hex}",
    }
    instance = S3Driver(S3Parameters.model_validate(parameters))
    yield instance
    await instance.close()


async def test_a_chunk_after_the_upload_vanished_is_upload_unknown(
    metadata: MetadataStore, driver: S3Driver
) -> None:
    uploads = UploadService(metadata, driver)
    upload = await uploads.start(NAME)
    first = os.urandom(16 * MiB)  # parts of 10 and 6 MiB, no tail
    assert await uploads.append(NAME, upload, body(first), None, None) == len(first)
    record = await metadata.get_upload(upload)
    assert record is not None
    progress = Progress.decode(record.progress.driver_state or b"")
    assert progress is not None and progress.upload_id and progress.created
    await abort_upload(await driver.bucket(), progress.key, progress.upload_id)

    with pytest.raises(RegistryError) as caught:
        await uploads.append(NAME, upload, body(os.urandom(16 * MiB)), None, None)
    assert caught.value.error is errors.BLOB_UPLOAD_UNKNOWN
    assert await metadata.get_upload(upload) is None
    with pytest.raises(RegistryError) as again:
        await uploads.status(NAME, upload)
    assert again.value.error is errors.BLOB_UPLOAD_UNKNOWN
