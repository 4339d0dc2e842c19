"""Parts streamed while a request's bytes arrive, on a real SeaweedFS, through two registry
replicas (each its own Registry, S3 driver and HTTP app) on one database and one bucket:
a chunked push whose PATCHes declare their length streams every part and commits the right
bytes; a client that stops mid-PATCH leaves the upload where its last 202 said and no part
of the bytes it did not send, and the other replica carries on; a body of unknown length
(``Transfer-Encoding: chunked``) is buffered as before; and a streamed part is never held
whole in memory."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockyard.registry.service import Registry
from dockyard.storage.driver import StorageError
from dockyard.storage.s3 import MAX_PART, MIN_PART, S3Parameters
from dockyard.storage.s3_checksums import Integrity
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.s3_progress import Progress
from dockyard.storage.s3_stream import PartBody, plan_parts
from tests.seaweedfs import SeaweedServer
from tests.storage.object_stores import Client, serving_replicas

MiB = 1024 * 1024
CHUNKSIZE = 10 * MiB  # Distribution's default
PATCH = 16 * MiB  # the benchmark's chunk: parts of 10 and 6 MiB


class _PartBodies:
    """The kinds of body the ``UploadPart`` requests of a driver went out with."""

    def __init__(self) -> None:
        self.streamed = 0
        self.buffered = 0

    def before_send(self, event_name: str, request: Any, **_: Any) -> None:
        if event_name.endswith(".UploadPart"):
            if isinstance(request.body, PartBody):
                self.streamed += 1
            else:
                self.buffered += 1


async def _watch(driver: S3Driver) -> _PartBodies:
    bodies = _PartBodies()
    bucket = await driver.bucket()
    clients = {id(bucket.client): bucket.client}
    if bucket.streaming is not None:
        clients[id(bucket.streaming)] = bucket.streaming
    for client in clients.values():
        client.meta.events.register("before-send.s3.UploadPart", bodies.before_send)
    return bodies


@pytest.fixture
async def replicas(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str, database_url: str
) -> AsyncIterator[tuple[list[Client], list[Registry]]]:
    parameters = S3Parameters.model_validate(
        {
            **seaweedfs.parameters(seaweedfs_bucket),
            "rootdirectory": f"/stream/{uuid.uuid4().hex}",
            "chunksize": CHUNKSIZE,
        }
    )
    async with serving_replicas([S3Driver(parameters), S3Driver(parameters)], database_url) as two:
        yield two


def _driver(registry: Registry) -> S3Driver:
    assert isinstance(registry.storage, S3Driver)
    return registry.storage


def _path(location: str) -> str:
    return "/" + location.split("/", 3)[3] if location.startswith("http") else location


async def _start(client: Client) -> str:
    started = await client.post("/v2/app/blobs/uploads/")
    assert started.status == 202
    return _path(started.headers["Location"])


async def _patch(client: Client, location: str, data: bytes, start: int) -> str:
    headers = {
        "Content-Range": f"{start}-{start + len(data) - 1}",
        "Content-Type": "application/octet-stream",
    }
    patched = await client.patch(location, data=data, headers=headers)
    assert patched.status == 202, await patched.text()
    assert patched.headers["Range"] == f"0-{start + len(data) - 1}"
    return _path(patched.headers["Location"])


async def _finish_and_fetch(client: Client, location: str, data: bytes) -> None:
    """The final PUT (no body) with the digest of ``data``; the blob then serves it."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    separator = "&" if "?" in location else "?"
    done = await client.put(f"{location}{separator}digest={digest}")
    assert done.status == 201, await done.text()
    fetched = await client.get(f"/v2/app/blobs/{digest}")
    assert fetched.status == 200
    assert hashlib.sha256(await fetched.read()).hexdigest() == digest.removeprefix("sha256:")


def test_a_request_is_planned_as_parts_of_chunksize() -> None:
    assert plan_parts(PATCH, CHUNKSIZE) == [CHUNKSIZE, 6 * MiB]
    assert plan_parts(12 * MiB, CHUNKSIZE) == [12 * MiB]  # 2 MiB left: in the last part
    assert plan_parts(MIN_PART, CHUNKSIZE) == [MIN_PART]
    assert plan_parts(3 * CHUNKSIZE + 1, CHUNKSIZE) == [CHUNKSIZE, CHUNKSIZE, CHUNKSIZE + 1]
    # parts of 5 GiB (S3's most) and 1 MiB more: the last two halved, none past 5 GiB
    half = (MAX_PART + MiB) // 2
    assert plan_parts(2 * MAX_PART + MiB, MAX_PART) == [MAX_PART, half, half]


async def test_a_chunked_push_streams_its_parts_across_replicas(
    replicas: tuple[list[Client], list[Registry]],
) -> None:
    """PATCHes of 16 MiB and one of 7 MiB (after a 3 MiB one, kept as a tail), alternating
    between the replicas: every part is streamed, and the blob has the bytes pushed."""
    clients, registries = replicas
    watched = [await _watch(_driver(registry)) for registry in registries]
    rng = random.Random(1)
    chunks = [rng.randbytes(size) for size in (PATCH, PATCH, 3 * MiB, 7 * MiB)]
    location = await _start(clients[0])
    offset = 0
    for index, chunk in enumerate(chunks):
        location = await _patch(clients[index % 2], location, chunk, offset)
        offset += len(chunk)
    # 10 + 6, 10 + 6, nothing (3 MiB: a tail), then the tail and 7 MiB as one part
    assert sum(bodies.streamed for bodies in watched) == 5
    assert sum(bodies.buffered for bodies in watched) == 0
    await _finish_and_fetch(clients[1], location, b"".join(chunks))


async def _patch_and_stop(
    client: Client, location: str, start: int, length: int, sent: int
) -> None:
    """A PATCH declaring ``length`` bytes whose client goes away after ``sent`` of them."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Range: {start}-{start + length - 1}\r\nContent-Length: {length}\r\n\r\n"
    )
    writer.write(head.encode())
    writer.write(random.Random(9).randbytes(sent))
    await writer.drain()
    await asyncio.sleep(0.5)  # the replica streams what came (a whole part, and some)
    writer.transport.abort()
    await writer.wait_closed()
    del reader


async def test_a_client_gone_mid_patch_resumes_from_its_last_202_on_the_other_replica(
    replicas: tuple[list[Client], list[Registry]],
) -> None:
    clients, registries = replicas
    rng = random.Random(2)
    first, second = rng.randbytes(PATCH), rng.randbytes(PATCH)
    location = await _start(clients[0])
    location = await _patch(clients[0], location, first, 0)
    # 11 of 16 MiB: the first part (10 MiB) whole, the second (6 MiB) cut at 1 MiB.
    await _patch_and_stop(clients[0], location, len(first), PATCH, 11 * MiB)

    # An empty PATCH to the same replica waits for the stopped one (the upload's lock):
    # the upload is where the last 202 left it.
    status = await clients[0].patch(location, data=b"", headers={"Content-Length": "0"})
    assert status.status == 202, await status.text()
    assert status.headers["Range"] == f"0-{len(first) - 1}"
    record = await registries[0].metadata.get_upload(location.rsplit("/", 1)[-1].split("?")[0])
    assert record is not None and record.progress.size == len(first)
    progress = Progress.decode(record.progress.driver_state or b"")
    assert progress is not None and [part.size for part in progress.parts] == [10 * MiB, 6 * MiB]

    # No part holds bytes the client did not send: the cut one was never stored.
    bucket = await _driver(registries[0]).bucket()
    listed = await bucket.client.list_parts(
        Bucket=bucket.name, Key=progress.key, UploadId=progress.upload_id
    )
    sizes = {part["PartNumber"]: part["Size"] for part in listed.get("Parts", [])}
    assert sizes.get(4) is None
    assert sizes.get(3) in (None, 10 * MiB)

    location = await _patch(clients[1], location, second, len(first))
    await _finish_and_fetch(clients[1], location, first + second)


async def test_a_body_of_unknown_length_is_buffered(
    replicas: tuple[list[Client], list[Registry]],
) -> None:
    """``Transfer-Encoding: chunked``: no length to plan parts by, so parts gather whole."""
    clients, registries = replicas
    watched = await _watch(_driver(registries[0]))
    data = random.Random(3).randbytes(PATCH + 123)

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(data), MiB):
            yield data[start : start + MiB]

    location = await _start(clients[0])
    patched = await clients[0].patch(location, data=chunked())
    assert patched.status == 202, await patched.text()
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    assert watched.streamed == 0 and watched.buffered >= 1
    await _finish_and_fetch(clients[0], _path(patched.headers["Location"]), data)


async def test_a_streamed_part_is_never_held_whole(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str
) -> None:
    """Python's allocations while 40 MiB go out as four streamed parts of 10 MiB stay
    under one part: only the pieces on their way are held (a buffered upload holds parts
    whole, two of them while they are sent)."""
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/memory/{uuid.uuid4().hex}",
        "chunksize": CHUNKSIZE,
    }
    driver = S3Driver(S3Parameters.model_validate(parameters))
    try:
        peaks = {}
        for streamed in (True, False):
            piece = bytearray(random.Random(4).randbytes(MiB))
            await driver.bucket()
            tracemalloc.start()
            writer = await driver.writer(f"/uploads/{streamed}/data")
            if streamed:
                writer.expect(4 * CHUNKSIZE)
            for _ in range(4 * CHUNKSIZE // MiB):
                await writer.write(memoryview(piece))
                piece[0] = (piece[0] + 1) % 256  # the caller reuses its buffer
            state = await writer.close()
            peaks[streamed] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert state.size == 4 * CHUNKSIZE
            await driver.abort(f"/uploads/{streamed}/data", state)
        assert peaks[True] < CHUNKSIZE < 2 * CHUNKSIZE < peaks[False]
    finally:
        await driver.close()


async def test_with_streamparts_off_a_declared_length_is_buffered(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str
) -> None:
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/off/{uuid.uuid4().hex}",
        "streamparts": False,
    }
    driver = S3Driver(S3Parameters.model_validate(parameters))
    try:
        watched = await _watch(driver)
        data = random.Random(5).randbytes(PATCH)
        writer = await driver.writer("/uploads/off/data")
        writer.expect(len(data))
        for start in range(0, len(data), MiB):
            await writer.write(data[start : start + MiB])
        state = await writer.close()
        assert (watched.streamed, watched.buffered) == (0, 2)
        await driver.commit("/uploads/off/data", state, "/blob")
        assert await driver.get_content("/blob") == data
    finally:
        await driver.close()


async def test_a_part_whose_etag_is_not_the_md5_sent_fails_the_request(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str
) -> None:
    """Over plain HTTP, on a store that verifies no checksum trailer (SeaweedFS does, so
    the driver is told it does not), the ETag is the check of a streamed part: a store
    answering another (a fault no real store makes on demand, so the answer is changed on
    its way back) fails the request, and the state before it still commits its own bytes."""
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/etag/{uuid.uuid4().hex}",
    }
    driver = S3Driver(S3Parameters.model_validate(parameters))
    try:
        first = random.Random(6).randbytes(PATCH)
        opened = await driver.bucket()
        driver._opened = dataclasses.replace(opened, integrity=Integrity.ETAG_MD5)
        writer = await driver.writer("/uploads/etag/data")
        writer.expect(len(first))
        await writer.write(first)
        state = await writer.close()

        def wrong_etag(parsed: dict[str, Any], **_: Any) -> None:
            parsed["ETag"] = '"' + "0" * 32 + '"'

        bucket = await driver.bucket()
        assert bucket.streaming is not None
        bucket.streaming.meta.events.register("after-call.s3.UploadPart", wrong_etag)
        failed = await driver.writer("/uploads/etag/data", state)
        failed.expect(PATCH)
        with pytest.raises(StorageError, match="is not the MD5"):
            await failed.write(random.Random(7).randbytes(PATCH))
            await failed.close()
        await failed.abandon()
        await driver.commit("/uploads/etag/data", state, "/blob")
        assert await driver.get_content("/blob") == first
    finally:
        await driver.close()
