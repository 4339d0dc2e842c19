"""A blob download in progress, read by its clients while it goes into storage.

The download (:mod:`dockyard.proxy.fetch`) hands every chunk it receives from the upstream
to :meth:`BlobFlight.publish` before the upload writer stores it, and never waits for a
reader. The flight keeps only the most recent :data:`WINDOW` bytes, shared by all readers:
a reader that keeps up gets the chunks as they arrive; one that falls behind the window (a
slow client, or one that came late) waits for the commit and reads the rest from storage.
So memory stays bounded however many clients read, a slow client never slows the download,
and the store write goes on at the upstream's speed.

No reader gets the blob's last bytes before the blob is committed (its digest and size
verified): when the download fails, every reader fails before the end of the body, and the
client's connection is cut short instead of ending with a complete-looking wrong body.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from dockyard.oci import errors
from dockyard.oci.digest import Digest

WINDOW = 8 * 1024 * 1024  # bytes of recent chunks kept for the readers that keep up

StoredReader = Callable[[Digest, int, int], AsyncIterator[bytes]]


class BlobFlight:
    """One upstream download of a blob of known ``size``, read by any number of clients."""

    def __init__(self, digest: Digest, size: int) -> None:
        self.digest = digest
        self.size = size
        self._chunks: deque[tuple[int, bytes]] = deque()  # (offset, chunk), in order
        self._kept = 0  # bytes in _chunks
        self._received = 0  # bytes published so far
        self._committed = False
        self._failure: errors.RegistryError | None = None
        self._changed = asyncio.Event()

    def publish(self, chunk: bytes) -> None:
        """The next chunk from the upstream. The blob's final chunk is not given to
        readers: they read it from storage once it is committed."""
        if self._received + len(chunk) < self.size:
            self._chunks.append((self._received, chunk))
            self._kept += len(chunk)
            while self._kept - len(self._chunks[0][1]) >= WINDOW:
                self._kept -= len(self._chunks.popleft()[1])
        self._received += len(chunk)
        self._wake()

    def committed(self) -> None:
        """The blob is stored and verified: readers go on from storage."""
        self._committed = True
        self._drop()

    def failed(self, failure: errors.RegistryError) -> None:
        """The download failed: nothing was stored, and every reader fails."""
        self._failure = failure
        self._drop()

    def _drop(self) -> None:
        self._chunks.clear()
        self._kept = 0
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed.clear()

    async def read(self, offset: int, length: int, stored: StoredReader) -> AsyncIterator[bytes]:
        """``length`` bytes from ``offset``: from the window while the reader keeps up,
        else from storage (``stored``) after the commit. Raises the download's failure."""
        position, end = offset, offset + length
        while position < end:
            if self._failure is not None:
                raise self._failure
            if self._committed:
                async for piece in stored(self.digest, position, end - position):
                    yield piece
                return
            window = self._at(position, end)
            if window is None:
                await self._changed.wait()
                continue
            position += len(window)
            yield window

    def _at(self, position: int, end: int) -> bytes | None:
        """Bytes at ``position`` from the window (at most up to ``end``); None when they
        have not arrived yet or have left the window already."""
        for start, chunk in self._chunks:
            if start <= position < start + len(chunk):
                if start == position and start + len(chunk) <= end:
                    return chunk  # the whole chunk: no copy
                return chunk[position - start : end - start]
        return None
