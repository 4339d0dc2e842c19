"""A streamed part whose connection breaks before more than its first piece went out is
sent again, on a real SeaweedFS behind a small proxy that plays the store closing a pooled
connection as a request arrives (a fault no real store makes on demand); once more than
that went out, the part fails instead of sending bytes it no longer has."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import uuid
from collections.abc import AsyncIterator

import pytest

from dockyard.storage.driver import StorageError
from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_driver import S3Driver
from tests.seaweedfs import SeaweedServer

MiB = 1024 * 1024


class _DroppingProxy:
    """Pipes connections to the store; while ``drops`` is above zero, a connection whose
    request is an ``UploadPart`` is reset once its headers and ``after`` bytes of its body
    arrived, nothing answered."""

    def __init__(self, store_port: int) -> None:
        self.store_port = store_port
        self.drops = 0
        self.after = 0
        self.dropped = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        store_reader, store_writer = await asyncio.open_connection("127.0.0.1", self.store_port)
        answers = asyncio.ensure_future(_pipe(store_reader, writer))
        try:
            while True:  # each request of the connection, the answers piped back as they are
                head = await reader.readuntil(b"\r\n\r\n")
                if self.drops and b"partNumber=" in head.split(b"\r\n", 1)[0]:
                    self.drops -= 1
                    if self.after:
                        await reader.readexactly(self.after)
                    self.dropped += 1
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()  # a reset, as from a store that closed it
                    return
                store_writer.write(head)
                await _forward(reader, store_writer, _content_length(head))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            answers.cancel()
            store_writer.close()
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def _forward(source: asyncio.StreamReader, sink: asyncio.StreamWriter, length: int) -> None:
    while length:
        data = await source.read(min(length, 256 * 1024))
        if not data:
            raise asyncio.IncompleteReadError(b"", length)
        sink.write(data)
        await sink.drain()
        length -= len(data)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await source.read(256 * 1024):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()


@pytest.fixture
async def proxied(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str
) -> AsyncIterator[tuple[S3Driver, _DroppingProxy]]:
    proxy = _DroppingProxy(seaweedfs.s3_port)
    await proxy.start()
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "regionendpoint": f"http://127.0.0.1:{proxy.port}",
        "rootdirectory": f"/retry/{uuid.uuid4().hex}",
    }
    driver = S3Driver(S3Parameters.model_validate(parameters))
    try:
        yield driver, proxy
    finally:
        await driver.close()
        await proxy.stop()


async def _wait_for(condition: object, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 100)):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the proxy never dropped a connection")


async def test_a_part_whose_connection_breaks_at_its_start_is_sent_again(
    proxied: tuple[S3Driver, _DroppingProxy],
) -> None:
    driver, proxy = proxied
    await driver.bucket()  # the checksum probe's parts go through before the fault
    data = random.Random(3).randbytes(16 * MiB)
    writer = await driver.writer("/uploads/retry/data")
    writer.expect(len(data))
    proxy.drops = 1
    await writer.write(data[:MiB])  # the first piece; the connection breaks under it
    await _wait_for(lambda: proxy.dropped == 1)
    for start in range(MiB, len(data), MiB):
        await writer.write(data[start : start + MiB])
    state = await writer.close()
    assert proxy.dropped == 1
    await driver.commit("/uploads/retry/data", state, "/blob")
    assert await driver.get_content("/blob") == data


async def test_a_part_past_its_first_piece_is_not_sent_again(
    proxied: tuple[S3Driver, _DroppingProxy],
) -> None:
    """The break comes after three pieces went out (the first two are gone): the part
    fails, and the state before the request is untouched."""
    driver, proxy = proxied
    first = random.Random(4).randbytes(16 * MiB)
    writer = await driver.writer("/uploads/retry/data")
    writer.expect(len(first))
    await writer.write(first)
    state = await writer.close()

    failing = await driver.writer("/uploads/retry/data", state)
    failing.expect(16 * MiB)
    proxy.drops, proxy.after = 1, 3 * MiB
    with pytest.raises(StorageError, match="cannot be sent again"):
        for _ in range(16):
            await failing.write(random.Random(5).randbytes(MiB))
        await failing.close()
    assert proxy.dropped == 1
    await failing.abandon()
    await driver.commit("/uploads/retry/data", state, "/blob")
    assert await driver.get_content("/blob") == first
