"""How the S3 writer sends a chunked upload, on a real SeaweedFS: the requests each chunk
costs, parts sent side by side (never more than ``PARTS_IN_FLIGHT``), and part bodies
handed to aiohttp without a copy."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.awsrequest import AWSRequest

from dockyard.storage.driver import PathNotFoundError, WriterState
from dockyard.storage.s3 import MIN_PART, S3Parameters
from dockyard.storage.s3_bucket import send_body_as_view
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.s3_progress import FRESH_UPLOAD, Progress
from dockyard.storage.s3_writer import PARTS_IN_FLIGHT, abort_upload
from tests.seaweedfs import SeaweedServer

MiB = 1024 * 1024
CHUNKSIZE = 2 * MIN_PART  # Distribution's default, 10 MiB


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


class _Calls:
    """The S3 operations a client makes, and how many parts were out at once at most."""

    def __init__(self) -> None:
        self.made: Counter[str] = Counter()
        self.parts_out = 0
        self.most_parts_out = 0

    def before(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.made[operation] += 1
        if operation == "UploadPart":
            self.parts_out += 1
            self.most_parts_out = max(self.most_parts_out, self.parts_out)

    def after(self, event_name: str, **_: Any) -> None:
        if event_name.endswith(".UploadPart"):
            self.parts_out -= 1


@pytest.fixture
async def driver(seaweedfs: SeaweedServer, seaweedfs_bucket: str) -> AsyncIterator[S3Driver]:
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/p/{uuid.uuid4().hex}",
        "chunksize": CHUNKSIZE,
    }
    instance = S3Driver(S3Parameters.model_validate(parameters))
    yield instance
    await instance.close()


async def _calls_of(driver: S3Driver) -> _Calls:
    calls = _Calls()
    events = (await driver.bucket()).client.meta.events
    events.register("before-call.s3", calls.before)
    events.register("after-call.s3", calls.after)
    return calls


async def test_each_chunk_costs_only_its_parts(driver: S3Driver) -> None:
    """Three chunks of 16 MiB (the benchmark's): two parts each, 10 and 6 MiB; no check
    that the upload still exists (it was created minutes ago), no tail object, no
    listing of the bucket, every byte committed in order."""
    calls = await _calls_of(driver)
    chunks = [random_bytes(16 * MiB, seed) for seed in range(3)]
    path, state = "/uploads/u/data", WriterState()
    for chunk in chunks:
        writer = await driver.writer(path, state)
        for start in range(0, len(chunk), 256 * 1024):
            await writer.write(chunk[start : start + 256 * 1024])
        state = await writer.close()
    assert calls.made == {"CreateMultipartUpload": 1, "UploadPart": 6}
    assert calls.most_parts_out <= PARTS_IN_FLIGHT
    await driver.commit(path, state, "/blob")
    whole = b"".join(chunks)
    read = hashlib.sha256()
    async for piece in driver.reader("/blob"):
        read.update(piece)
    assert read.hexdigest() == hashlib.sha256(whole).hexdigest()


async def _one_part_upload(driver: S3Driver) -> WriterState:
    writer = await driver.writer("/uploads/u/data")
    await writer.write(random_bytes(CHUNKSIZE, 1))
    return await writer.close()


def _created_at(state: WriterState, created: int) -> WriterState:
    """``state`` as if its multipart upload had been created at ``created`` (0: a state
    saved before the time was kept)."""
    progress = Progress.decode(state.driver_state or b"")
    assert progress is not None and progress.created > 0
    older = Progress(progress.key, progress.upload_id, progress.parts, created=created)
    return WriterState(state.size, older.encode())


@pytest.mark.parametrize("created", [0, int(time.time()) - FRESH_UPLOAD - 60])
async def test_an_older_upload_is_checked_before_the_chunk(driver: S3Driver, created: int) -> None:
    """An upload created long ago (or by a Dockyard that kept no time) may have been
    aborted by a bucket's lifecycle rule: the writer asks before it takes the body."""
    state = _created_at(await _one_part_upload(driver), created)
    calls = await _calls_of(driver)
    writer = await driver.writer("/uploads/u/data", state)
    await writer.abandon()
    assert calls.made == {"ListParts": 1}
    progress = Progress.decode(state.driver_state or b"")
    assert progress is not None
    await abort_upload(await driver.bucket(), progress.key, progress.upload_id)
    with pytest.raises(PathNotFoundError):
        await driver.writer("/uploads/u/data", state)


async def test_a_fresh_upload_aborted_behind_dockyards_back_fails_at_its_part(
    driver: S3Driver,
) -> None:
    """A fresh upload is not checked; if it is gone anyway, its next part fails as
    PathNotFoundError (what the upload service turns into BLOB_UPLOAD_UNKNOWN)."""
    state = await _one_part_upload(driver)
    progress = Progress.decode(state.driver_state or b"")
    assert progress is not None
    await abort_upload(await driver.bucket(), progress.key, progress.upload_id)
    writer = await driver.writer("/uploads/u/data", state)
    with pytest.raises(PathNotFoundError):
        await writer.write(random_bytes(CHUNKSIZE, 2))
        await writer.close()
    await writer.abandon()


async def test_a_failed_chunk_leaves_its_parts_out_of_the_state(driver: S3Driver) -> None:
    """A chunk abandoned while its parts are out keeps none of them: the state before it
    still commits exactly the bytes before it."""
    first = random_bytes(CHUNKSIZE * 2, 1)
    writer = await driver.writer("/uploads/u/data")
    await writer.write(first)
    state = await writer.close()
    failed = await driver.writer("/uploads/u/data", state)
    for _ in range(3):
        await failed.write(random_bytes(CHUNKSIZE, 2))
    await asyncio.sleep(0)  # its parts are on their way
    await failed.abandon()
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == first


def test_part_bodies_go_out_as_views_that_a_retry_can_rewind() -> None:
    body = bytearray(b"part bytes")
    request = AWSRequest(method="PUT", url="http://127.0.0.1/b/k", data=body).prepare()
    send_body_as_view(request)
    assert isinstance(request.body, memoryview)
    assert request.body.obj is body  # the same bytes, not a copy
    request.reset_stream()  # what botocore does before a retry: no UnseekableStreamError
    assert bytes(request.body) == b"part bytes"
