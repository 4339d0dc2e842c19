"""A blob download in progress, read by its clients while it goes into storage.

The download (:mod:`dockyard.proxy.fetch`) hands every chunk it receives from the upstream
to :meth:`BlobFlight.publish` before the upload writer stores it, tells :meth:`written`
once the writer is done with it, and never waits for a reader. The flight keeps only the
most recent :data:`WINDOW` bytes in memory, shared by all readers: a reader that keeps up
gets the chunks as they arrive. One that falls behind the window (a slow client, or one
that came late) reads behind the writer from the upload's local file when the storage has
one (:meth:`LocalFiles.upload_file <dockyard.storage.local.LocalFiles.upload_file>`), and
otherwise waits for the commit and reads the rest from storage. So memory stays bounded
however many clients read, a slow client never slows the download, and the store write
goes on at the upstream's speed.

No reader gets the blob's last chunk before the blob is committed (its digest and size
verified): when the download fails, every reader fails before the end of the body, and the
client's connection is cut short instead of ending with a complete-looking wrong body.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dockyard.oci import errors
from dockyard.oci.digest import Digest

WINDOW = 4 * 1024 * 1024  # bytes of recent chunks kept for the readers that keep up
FILE_PIECE = 1024 * 1024  # bytes read from the upload's file at a time

StoredReader = Callable[[Digest, int, int], AsyncIterator[bytes]]


class BlobFlight:
    """One upstream download of a blob of known ``size``, read by any number of clients."""

    def __init__(self, digest: Digest, size: int) -> None:
        self.digest = digest
        self.size = size
        self._chunks: deque[tuple[int, bytes]] = deque()  # (offset, chunk), in order
        self._kept = 0  # bytes in _chunks
        self._published = 0  # bytes given to readers so far (never the final chunk)
        self._received = 0  # bytes from the upstream so far
        self._written = 0  # bytes the upload's writer is done with
        self._file: Path | None = None  # the upload's local file, when there is one
        self._committed = False
        self._failure: errors.RegistryError | None = None
        self._changed = asyncio.Event()

    def writing_to(self, file: Path) -> None:
        """The upload is written to the local ``file``: readers behind may read it."""
        self._file = file

    def publish(self, chunk: bytes) -> None:
        """The next chunk from the upstream. The blob's final chunk is not given to
        readers: they read it from storage once it is committed."""
        if self._received + len(chunk) < self.size:
            self._chunks.append((self._received, chunk))
            self._kept += len(chunk)
            self._published += len(chunk)
            while self._kept - len(self._chunks[0][1]) >= WINDOW:
                self._kept -= len(self._chunks.popleft()[1])
        self._received += len(chunk)
        self._wake()

    def written(self, length: int) -> None:
        """The writer is done with the next ``length`` bytes (they are in the file)."""
        self._written += length
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
        from the upload's file behind the writer, or from storage (``stored``) after the
        commit. Raises the download's failure."""
        position, end = offset, offset + length
        behind = _FileReader(self._file) if self._file is not None else None
        try:
            while position < end:
                if self._failure is not None:
                    raise self._failure
                if self._committed:
                    async for rest in stored(self.digest, position, end - position):
                        yield rest
                    return
                piece: bytes | None = self._at(position, end)
                if piece is None and behind is not None:
                    # Never past what is published: the final chunk waits for the commit.
                    readable = min(self._written, self._published, end)
                    if position < readable:
                        piece = await behind.read(position, min(readable - position, FILE_PIECE))
                if not piece:
                    await self._changed.wait()
                    continue
                position += len(piece)
                yield piece
        finally:
            if behind is not None:
                behind.close()

    def _at(self, position: int, end: int) -> bytes | None:
        """Bytes at ``position`` from the window (at most up to ``end``); None when they
        have not arrived yet or have left the window already."""
        for start, chunk in self._chunks:
            if start <= position < start + len(chunk):
                if start == position and start + len(chunk) <= end:
                    return chunk  # the whole chunk: no copy
                return chunk[position - start : end - start]
        return None


class _FileReader:
    """One reader's view of the upload's file, opened on first use. A file that is gone
    (the upload aborted) reads as nothing: the flight's failure follows."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    async def read(self, position: int, length: int) -> bytes:
        if self._fd is None:
            try:
                self._fd = await asyncio.to_thread(os.open, self._path, os.O_RDONLY)
            except OSError:
                return b""
        return await asyncio.to_thread(os.pread, self._fd, length, position)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
