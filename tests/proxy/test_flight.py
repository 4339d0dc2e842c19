"""A download in progress and its readers (dockyard/proxy/flight.py), with a real
filesystem store behind it: readers that keep up read the chunks as they arrive, a late
or slow one reads from storage after the commit, nobody gets the last bytes before it,
and a failure reaches every reader."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.proxy.flight import WINDOW, BlobFlight
from dockyard.storage import paths
from dockyard.storage.filesystem import FilesystemDriver

MIB = 1 << 20


def blob(size: int) -> tuple[Digest, bytes]:
    data = os.urandom(size)
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest()), data


def chunks(data: bytes, size: int = MIB) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Store:
    def __init__(self, root: Path) -> None:
        self.driver = FilesystemDriver(root)

    async def put(self, digest: Digest, data: bytes) -> None:
        await self.driver.put_content(paths.blob_data(digest), data)

    def reader(self, digest: Digest, offset: int, length: int) -> AsyncIterator[bytes]:
        return self.driver.reader(paths.blob_data(digest), offset, length)


async def collect(pieces: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in pieces])


async def test_a_reader_that_keeps_up_gets_the_chunks_and_the_end_only_after_the_commit(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    digest, data = blob(4 * MIB + 123)
    flight = BlobFlight(digest, len(data))
    reading = asyncio.ensure_future(collect(flight.read(0, len(data), store.reader)))
    for chunk in chunks(data):
        flight.publish(chunk)
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert not reading.done()  # everything arrived, but the blob is not committed yet
    await store.put(digest, data)
    flight.committed()
    assert await asyncio.wait_for(reading, 10) == data


async def test_a_late_reader_reads_from_storage_after_the_commit_and_the_window_is_bounded(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    digest, data = blob(WINDOW * 3)
    flight = BlobFlight(digest, len(data))
    for chunk in chunks(data)[:-1]:
        flight.publish(chunk)
    # Bytes 0.. have left the window: a reader from the start waits for the commit.
    late = asyncio.ensure_future(collect(flight.read(0, len(data), store.reader)))
    # A range still in the window is served from memory at once.
    tail_start = len(data) - 2 * MIB
    assert (
        await asyncio.wait_for(collect(flight.read(tail_start, MIB, store.reader)), 10)
        == data[tail_start : tail_start + MIB]
    )
    await asyncio.sleep(0.05)
    assert not late.done()
    flight.publish(chunks(data)[-1])
    await store.put(digest, data)
    flight.committed()
    assert await asyncio.wait_for(late, 10) == data


async def test_a_failure_reaches_every_reader_before_the_end(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest, data = blob(3 * MIB)
    flight = BlobFlight(digest, len(data))
    received: list[bytes] = []

    async def read() -> None:
        async for piece in flight.read(0, len(data), store.reader):
            received.append(piece)

    readers = [asyncio.ensure_future(read()) for _ in range(3)]
    flight.publish(data[:MIB])
    await asyncio.sleep(0.01)
    flight.failed(errors.RegistryError(errors.UNAVAILABLE, "upstream went away"))
    for reader in readers:
        with pytest.raises(errors.RegistryError, match="upstream went away"):
            await asyncio.wait_for(reader, 10)
    assert b"".join(received) == data[:MIB] * 3  # each reader got only what had arrived


async def test_a_reader_behind_the_window_reads_the_upload_file_behind_its_writer(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    digest, data = blob(WINDOW * 3 + 4321)
    upload = paths.upload_data("team/app", "0" * 8 + "-0000-0000-0000-" + "0" * 12)
    writer = await store.driver.writer(upload)
    flight = BlobFlight(digest, len(data))
    flight.writing_to(store.driver.upload_file(upload))
    pieces = chunks(data)
    for chunk in pieces:
        flight.publish(chunk)
        await writer.write(chunk)
        flight.written(len(chunk))
    # The window holds the last chunks only; a reader from the start reads the file,
    # up to the final chunk, before anything is committed.
    late = flight.read(0, len(data), store.reader)
    early: list[bytes] = []
    final = len(data) - len(pieces[-1])
    while sum(map(len, early)) < final:
        early.append(await asyncio.wait_for(anext(late), 10))
    assert b"".join(early) == data[:final]
    rest = asyncio.ensure_future(collect(late))
    await asyncio.sleep(0.05)
    assert not rest.done()  # the final chunk waits for the commit
    await store.driver.commit(upload, await writer.close(), paths.blob_data(digest))
    flight.committed()
    assert b"".join(early) + await asyncio.wait_for(rest, 10) == data
