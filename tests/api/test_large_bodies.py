"""Large bodies that are received straight from the socket (``api/direct_body.py``): the
bytes stored are the bytes sent, whatever the chunk boundaries, and a body cut short or
with the wrong digest leaves nothing behind."""

from __future__ import annotations

import asyncio
import io
import itertools
import os

from dockyard.api import direct_body
from dockyard.api.buffers import BUFFER_SIZE, POOL
from dockyard.api.direct_body import MIN_BODY
from tests.api.helpers import Client, digest_of, error_code, path_of

NAME = "big/app"
MiB = 1024 * 1024


async def start(client: Client) -> str:
    response = await client.post(f"/v2/{NAME}/blobs/uploads/")
    assert response.status == 202
    return path_of(response.headers["Location"])


async def read_blob(client: Client, digest: str) -> bytes:
    response = await client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 200
    return await response.read()


async def test_monolithic_upload_is_taken_over_and_stored_exactly(client: Client) -> None:
    data = os.urandom(5 * BUFFER_SIZE + 12_345)  # more buffers than are in flight
    digest = digest_of(data)
    url = f"/v2/{NAME}/blobs/uploads/?digest={digest}"
    response = await client.post(url, data=io.BytesIO(data))
    assert response.status == 201, await response.text()
    # The parser never saw the body: the connection must not carry another request.
    assert response.headers["Connection"] == "close"
    assert await read_blob(client, digest) == data


async def test_chunks_at_unaligned_offsets_are_stored_exactly(client: Client) -> None:
    data = os.urandom(3 * MIN_BODY + 777)
    cuts = [0, 1000, 1000 + MIN_BODY + 5, 1000 + 2 * MIN_BODY + 9000, len(data)]
    location = await start(client)
    for begin, end in itertools.pairwise(cuts):
        response = await client.patch(
            location,
            data=io.BytesIO(data[begin:end]),
            headers={"Content-Range": f"{begin}-{end - 1}"},
        )
        assert response.status == 202, await response.text()
        assert response.headers["Range"] == f"0-{end - 1}"
        location = path_of(response.headers["Location"])
    response = await client.put(f"{location}?digest={digest_of(data)}")
    assert response.status == 201, await response.text()
    assert await read_blob(client, digest_of(data)) == data


async def test_final_put_with_a_large_body(client: Client) -> None:
    data = os.urandom(MIN_BODY + BUFFER_SIZE // 2)
    location = await start(client)
    response = await client.put(f"{location}?digest={digest_of(data)}", data=io.BytesIO(data))
    assert response.status == 201, await response.text()
    assert await read_blob(client, digest_of(data)) == data


async def test_small_bodies_keep_the_connection_open(client: Client) -> None:
    data = os.urandom(MIN_BODY - 1)
    location = await start(client)
    response = await client.patch(location, data=io.BytesIO(data))
    assert response.status == 202
    assert response.headers.get("Connection", "").lower() != "close"


async def test_wrong_digest_on_a_large_body_commits_nothing(client: Client) -> None:
    data = os.urandom(MIN_BODY + 1)
    wrong = digest_of(b"something else")
    response = await client.post(f"/v2/{NAME}/blobs/uploads/?digest={wrong}", data=io.BytesIO(data))
    assert response.status == 400
    assert await error_code(response) == "DIGEST_INVALID"
    for digest in (wrong, digest_of(data)):
        assert (await client.head(f"/v2/{NAME}/blobs/{digest}")).status == 404


async def test_body_cut_short_keeps_only_whole_chunks(client: Client) -> None:
    lent = POOL.out
    first = os.urandom(5000)
    location = await start(client)
    response = await client.patch(location, data=first)
    assert response.status == 202
    location = path_of(response.headers["Location"])

    assert client.server.port is not None
    _reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    declared = 3 * MIN_BODY
    writer.write(
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n"
        f"Content-Range: 5000-{5000 + declared - 1}\r\n\r\n".encode()
    )
    writer.write(os.urandom(2 * MIN_BODY + 100))  # several buffers' worth, then hang up
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    # The cut chunk is undone once the server notices; the upload holds the first one.
    for _ in range(100):
        status = await client.get(location)
        if status.headers["Range"] == "0-4999":
            break
        await asyncio.sleep(0.05)
    assert status.status == 204
    assert status.headers["Range"] == "0-4999"
    rest = os.urandom(MIN_BODY + 3)
    response = await client.put(
        f"{location}?digest={digest_of(first + rest)}",
        data=io.BytesIO(rest),
        headers={"Content-Range": f"5000-{5000 + len(rest) - 1}"},
    )
    assert response.status == 201, await response.text()
    assert await read_blob(client, digest_of(first + rest)) == first + rest
    # Every buffer of the cut body is back: one left out would stay out for good.
    assert POOL.out == lent


async def test_a_buffer_still_held_goes_to_no_other_body() -> None:
    """A buffer is filled again only once its reader has handed the chunk back, also after
    the body is closed: a chunk whose write is still running is never refilled by the
    next upload's body."""
    sent = os.urandom(2 * BUFFER_SIZE)
    POOL.free.clear()  # room for what this body gives back

    async def send(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(sent)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(send, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport)
    body = direct_body.DirectBody(transport.get_protocol(), transport, b"", len(sent))
    transport.set_protocol(body)
    transport.resume_reading()
    chunks = body.chunks()
    first = await anext(chunks)
    second = await anext(chunks)
    assert bytes(first) + bytes(second) == sent
    body.done(second)
    await chunks.aclose()
    pooled = [buffer for buffer in POOL.free if buffer is first.obj]
    assert pooled == [] and any(buffer is second.obj for buffer in POOL.free)
    body.done(first)  # the write of the first chunk is over
    assert any(buffer is first.obj for buffer in POOL.free)
    writer.close()
    server.close()
    await server.wait_closed()


async def test_a_refused_large_body_still_gets_its_answer(client: Client) -> None:
    """An unknown upload is refused before its body is read: the rest of the body is read
    and dropped, so the client sees the 404 instead of a reset connection."""
    data = os.urandom(3 * MIN_BODY)
    unknown = f"/v2/{NAME}/blobs/uploads/00000000-0000-4000-8000-000000000000"
    for method, url, expect in (
        ("PUT", f"{unknown}?digest={digest_of(data)}", False),
        ("PATCH", unknown, True),  # after "100 Continue" the client sends the whole body
    ):
        response = await client.request(method, url, data=io.BytesIO(data), expect100=expect)
        assert response.status == 404, method
        assert await error_code(response) == "BLOB_UPLOAD_UNKNOWN"
        assert response.headers["Connection"] == "close"
    assert (await client.head(f"/v2/{NAME}/blobs/{digest_of(data)}")).status == 404
