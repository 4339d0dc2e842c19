"""A writer that cuts its stream into fixed-size pieces for an object store (Azure blocks,
GCS resumable-upload chunks), holding at most one piece being filled and one being sent.

A piece is sent only once the buffer holds *more* than a piece, so that :meth:`close`
always has the last bytes in hand (a last piece of any size, never an empty one): GCS
wants every piece but the last to be a multiple of 256 KiB, which whole pieces of a
multiple of 256 KiB are.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import abstractmethod

from dockyard.storage.driver import FileWriter, WriterState


class PieceWriter(FileWriter):
    def __init__(self, size: int, piece_size: int) -> None:
        self._size = size
        self._piece_size = piece_size
        self._buffer = bytearray()
        self._sent = 0  # bytes this writer handed to _send
        self._sending: asyncio.Task[None] | None = None
        self._closed = False
        self._failed = False

    @property
    def size(self) -> int:
        return self._size

    @abstractmethod
    async def _send(self, piece: bytes, offset: int, last: bool) -> None:
        """Store ``piece``, at ``offset`` among this writer's bytes; ``last`` ends them."""

    @abstractmethod
    async def _finish(self, written: int) -> WriterState:
        """Everything is sent (``written`` bytes): the state that keeps it."""

    @abstractmethod
    async def _discard(self) -> None:
        """Drop whatever this writer stored."""

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed or self._failed:
            raise ValueError("writer is closed")
        try:
            self._buffer += data
            self._size += len(data)
            while len(self._buffer) > self._piece_size:
                piece = bytes(self._buffer[: self._piece_size])
                del self._buffer[: self._piece_size]
                await self._hand_off(piece, last=False)
        except BaseException:
            self._failed = True
            raise

    async def _hand_off(self, piece: bytes, last: bool) -> None:
        """Send ``piece`` once the one before it is stored; wait for it if it is the last."""
        if self._sending is not None:
            await self._sending
        offset, self._sent = self._sent, self._sent + len(piece)
        self._sending = asyncio.ensure_future(self._send(piece, offset, last))
        if last:
            await self._sending

    async def close(self) -> WriterState:
        if self._closed or self._failed:
            raise ValueError("writer is closed")
        try:
            if self._buffer:
                piece, self._buffer = bytes(self._buffer), bytearray()
                await self._hand_off(piece, last=True)
            elif self._sending is not None:
                await self._sending
            state = await self._finish(self._sent)
        except BaseException:
            self._failed = True
            raise
        self._closed = True
        return state

    async def abandon(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        if self._sending is not None:
            self._sending.cancel()
            with contextlib.suppress(BaseException):
                await self._sending
        await self._discard()
