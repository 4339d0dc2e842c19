"""Bodies through aiohttp's parser, copied into the pool's buffers a few MiB at a time,
or, declared smaller than one buffer, joined into one ``bytes``.

aiohttp hands a body over in pieces of up to 64 KiB; hashing and writing them one by one
would cost a thread hand-off each. Copied into a 4 MiB buffer of the process's pool
(:mod:`dockyard.api.buffers`, the same buffers a taken-over body uses), they cost one per
buffer, and a full buffer is page-aligned, so the filesystem driver writes it with
``O_DIRECT`` (a chunked ``PATCH``, as docker and buildah send a layer). Receiving goes on
meanwhile into the next buffer; when the body holds all it may, it stops reading (and
aiohttp stops reading the socket) until the reader hands a chunk back with :meth:`done`.

A body whose ``Content-Length`` is under a buffer (a manifest, a small layer: most requests
of a push) takes no buffer: :class:`SmallBody` joins its pieces, as a copy into a buffer
would, without mapping 4 MiB for it when the pool has none free; its length bounds it.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import AsyncGenerator, AsyncIterator

from dockyard.api.buffers import BUFFER_SIZE, BodyBuffers


class GatheredBody:
    """``pieces`` in chunks of :data:`BUFFER_SIZE` bytes (the last may be less): views of
    pooled buffers, each filled again only once :meth:`done` was called with it."""

    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        self._pieces = pieces
        self._buffers = BodyBuffers()
        self._waiter: asyncio.Future[None] | None = None

    async def chunks(self) -> AsyncGenerator[memoryview]:
        try:
            buffer = self._buffers.first()
            view, filled = memoryview(buffer), 0
            async for piece in self._pieces:
                data, offset = memoryview(piece), 0
                while offset < len(data):
                    count = min(len(data) - offset, BUFFER_SIZE - filled)
                    view[filled : filled + count] = data[offset : offset + count]
                    filled += count
                    offset += count
                    if filled == BUFFER_SIZE:
                        yield self._buffers.hand(buffer, filled)
                        buffer = await self._next()
                        view, filled = memoryview(buffer), 0
            if filled:
                yield self._buffers.hand(buffer, filled)
        finally:
            self.close()

    async def _next(self) -> mmap.mmap:
        while True:
            buffer = self._buffers.next()
            if buffer is not None:
                return buffer
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def done(self, chunk: bytes | memoryview) -> None:
        """The reader needs ``chunk`` no more: its buffer may be filled again."""
        buffer = self._buffers.handed_back(chunk)
        if buffer is None:
            return
        self._buffers.returned(buffer)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Give the buffers back (idempotent); one the reader holds goes back on ``done``."""
        self._buffers.close()


class SmallBody:
    """A body declared smaller than one buffer: one chunk, its pieces joined (a single
    piece is passed on as it is)."""

    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        self._pieces = pieces

    async def chunks(self) -> AsyncGenerator[bytes]:
        parts = [piece async for piece in self._pieces]
        if parts:
            yield parts[0] if len(parts) == 1 else b"".join(parts)

    def done(self, chunk: bytes | memoryview) -> None:
        """Nothing to do: the chunk is the reader's."""

    def close(self) -> None:
        """Nothing to give back."""
