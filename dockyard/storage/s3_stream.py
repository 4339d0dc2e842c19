"""Parts sent while their bytes arrive: an ``UploadPart`` of a planned size whose body is fed
piece by piece as a request's body comes in, so that receiving and sending overlap.

A request whose length is known (a ``PATCH`` with ``Content-Length``) is planned as parts
up front (:func:`plan_parts`). Each part goes out with its ``Content-Length`` and an
``UNSIGNED-PAYLOAD`` signature (a body not yet received cannot be hashed first); over plain
HTTP the part's MD5, computed beside its sending, is checked against the ETag the store answers
(:func:`etag_matches`), in place of the SigV4 payload hash a buffered part gets.

A part whose body stops short never becomes a part: the store wants every byte its
``Content-Length`` promised, and the writer cancels the request (the connection closes).
Nothing rewinds a streamed body: a retry by botocore fails (no ``seek``), and so does the
chunk, which the client sends again from the last ``202``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from dockyard.storage.driver import StorageError
from dockyard.storage.s3 import MAX_PART, MIN_PART

if TYPE_CHECKING:
    from _hashlib import HASH

#: Pieces waiting for the connection, besides the one being written: a slow store holds
#: back the request body, one piece (up to a body buffer, 4 MiB) behind.
QUEUED: Final = 1
#: Pieces being hashed (MD5) at once, in order, while they are sent.
HASHING: Final = 2
# Pieces at least this large are hashed in a thread (as the blob's sha256 is).
_HASH_IN_THREAD: Final = 256 * 1024


def plan_parts(total: int, chunksize: int) -> list[int]:
    """The sizes of the parts ``total`` bytes (at least :data:`MIN_PART`) go out as:
    ``chunksize`` each, and what is left as a part of its own when it is :data:`MIN_PART`
    or more, else added to the last one (the last two halved if that one would pass
    :data:`MAX_PART`)."""
    whole, rest = divmod(total, chunksize)
    sizes = [chunksize] * whole
    if rest >= MIN_PART or not sizes:
        sizes.append(rest)
    elif sizes[-1] + rest <= MAX_PART:
        sizes[-1] += rest
    else:
        both = sizes.pop() + rest
        sizes += [both // 2, both - both // 2]
    return sizes


def etag_matches(etag: str, md5_hex: str) -> bool:
    """Whether a part's ETag is the MD5 of what was sent (S3's, SeaweedFS's, MinIO's ETag
    of a part, unless the part is encrypted with KMS)."""
    return etag.strip('"').lower() == md5_hex


class PartBody:
    """The body of one streamed part: :meth:`feed` hands it pieces, aiohttp iterates them.

    ``read`` exists only so that botocore takes it as a file-like body; aiohttp sends it as
    an async iterable. It has no ``seek``: a retry cannot rewind it, and fails."""

    def __init__(self, size: int, check_md5: bool) -> None:
        self.size = size
        self.fed = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUED)
        self._md5: HASH | None = hashlib.md5(usedforsecurity=False) if check_md5 else None
        # The MD5 of the pieces fed so far, hashed in order beside their sending: the
        # newest pieces' hashing, at most :data:`HASHING` (each holds its piece).
        self._hashing: deque[asyncio.Future[None]] = deque()
        self._iterated = False

    @property
    def missing(self) -> int:
        return self.size - self.fed

    async def md5_hex(self) -> str | None:
        """The MD5 of the pieces fed (None: not checked), once they are all hashed."""
        if self._md5 is None:
            return None
        while self._hashing:
            await self._hashing.popleft()
        return self._md5.hexdigest()

    async def _hash_after(self, previous: asyncio.Future[None] | None, piece: bytes) -> None:
        assert self._md5 is not None
        if previous is not None:
            await previous
        if len(piece) >= _HASH_IN_THREAD:
            await asyncio.to_thread(self._md5.update, piece)
        else:
            self._md5.update(piece)

    async def feed(self, piece: bytes, sending: asyncio.Future[Any]) -> None:
        """Queue ``piece`` (the body's own copy) once there is room; fails when the request
        ``sending`` it ended first (the store answered, or the connection broke)."""
        if len(piece) > self.missing:
            raise StorageError(f"{len(piece)} bytes for a part missing {self.missing}")
        if self._md5 is not None:
            if len(self._hashing) == HASHING:
                await self._hashing.popleft()
            previous = self._hashing[-1] if self._hashing else None
            self._hashing.append(asyncio.ensure_future(self._hash_after(previous, piece)))
        if self._queue.full():
            put = asyncio.ensure_future(self._queue.put(piece))
            await asyncio.wait((put, sending), return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
                sending.result()  # its error, if it failed
                raise StorageError("the store answered a part before it had all its bytes")
        else:
            self._queue.put_nowait(piece)
        self.fed += len(piece)

    def read(self, size: int = -1) -> bytes:
        raise StorageError("a streamed part is sent by iterating it")

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            raise StorageError("a streamed part cannot be sent twice")
        self._iterated = True
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.size:
            piece = await self._queue.get()
            sent += len(piece)
            yield piece


def drop_expect_header(request: object, **_: object) -> None:
    """``before-send`` hook: botocore asks for ``100-continue`` before any file-like body;
    a streamed part goes out at once (the wait would be a round trip per part)."""
    body = getattr(request, "body", None)
    headers = getattr(request, "headers", None)
    if isinstance(body, PartBody) and headers is not None and "Expect" in headers:
        del headers["Expect"]
