"""The pool of upload buffers (``api/buffers.py``): however many large bodies arrive at
once, a process holds at most ``max(limit, bodies)`` buffers, every body still makes
progress with one, and every byte stored is the byte sent."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest

from dockyard.api.buffers import BUFFER_SIZE, POOL, BodyBuffers, BufferPool
from dockyard.api.direct_body import MIN_BODY
from tests.api.helpers import Client, digest_of, path_of

NAME = "pool/app"


def test_a_first_buffer_is_never_refused_and_more_only_below_the_limit() -> None:
    pool = BufferPool(size=4096, lent=2, keep=1)
    one, two, three = BodyBuffers(pool), BodyBuffers(pool), BodyBuffers(pool)
    first = one.first()
    assert one.next() is not None  # one more: 2 out, the limit
    assert one.next() is None  # crowded: no third for the same body
    assert two.first() is not None and three.first() is not None  # each body gets one
    assert pool.out == 4
    # Crowded, a body hands back what the reader returns as long as it has another ...
    assert one.returned(first) is False
    assert pool.out == 3
    # ... but keeps its last one, so it can always receive.
    last = three.next()
    assert last is None  # three holds one, the pool is crowded: it waits for its own


def test_free_buffers_kept_are_bounded() -> None:
    pool = BufferPool(size=4096, lent=8, keep=1)
    bodies = [BodyBuffers(pool) for _ in range(3)]
    for body in bodies:
        body.first()
    for body in bodies:
        body.close()
    assert pool.out == 0 and len(pool.free) == 1


def blob(index: int, size: int) -> bytes:
    return index.to_bytes(8, "big") + os.urandom(size - 8)


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """No declared length: the client sends Transfer-Encoding: chunked."""
    view = memoryview(data)
    for start in range(0, len(data), 1 << 20):
        yield bytes(view[start : start + (1 << 20)])
        await asyncio.sleep(0)


async def test_many_large_bodies_at_once_stay_within_the_pool(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(POOL, "limit", 2)
    size = MIN_BODY + 2 * BUFFER_SIZE + 17
    monolithic = [blob(i, size) for i in range(4)]
    streamed = [blob(10 + i, size) for i in range(2)]
    bodies = len(monolithic) + len(streamed)
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, POOL.out)
            await asyncio.sleep(0)

    async def put(data: bytes) -> None:
        url = f"/v2/{NAME}/blobs/uploads/?digest={digest_of(data)}"
        response = await client.post(url, data=io.BytesIO(data))
        assert response.status == 201, await response.text()

    async def patch(data: bytes) -> None:
        response = await client.post(f"/v2/{NAME}/blobs/uploads/")
        location = path_of(response.headers["Location"])
        response = await client.patch(location, data=chunked(data))
        assert response.status == 202, await response.text()
        location = path_of(response.headers["Location"])
        join = "&" if "?" in location else "?"
        response = await client.put(f"{location}{join}digest={digest_of(data)}")
        assert response.status == 201, await response.text()

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*map(put, monolithic), *map(patch, streamed))
    finally:
        done.set()
        await watcher
    assert 0 < peak <= max(2, bodies)
    assert POOL.out == 0  # every buffer came back
    for data in monolithic + streamed:
        response = await client.get(f"/v2/{NAME}/blobs/{digest_of(data)}")
        assert response.status == 200
        assert await response.read() == data


async def test_a_body_refused_before_it_is_read_gives_its_buffer_back(client: Client) -> None:
    data = os.urandom(MIN_BODY + 1)
    unknown = f"/v2/{NAME}/blobs/uploads/5b2e0a4c-1f2d-4c3b-9a8e-7d6c5b4a3f21"
    try:
        response = await client.put(f"{unknown}?digest={digest_of(data)}", data=io.BytesIO(data))
        assert response.status == 404
    except aiohttp.ClientOSError:
        pass  # the server closes a connection whose body it will not read: a reset may win
    assert POOL.out == 0
