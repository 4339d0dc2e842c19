"""Parts sent while their bytes arrive: an ``UploadPart`` of a planned size whose body is fed
piece by piece as a request's body comes in, so that receiving and sending overlap.

A request whose length is known (a ``PATCH`` with ``Content-Length``) is planned as parts
up front (:func:`plan_parts`). Each part goes out with its ``Content-Length`` and an
``UNSIGNED-PAYLOAD`` signature (a body not yet received cannot be hashed first); over plain
HTTP a check stands in for the SigV4 payload hash a buffered part gets: a CRC32 trailer the
store verifies, or the part's MD5, computed beside its sending, checked against the ETag the
store answers (:func:`etag_matches`; :mod:`dockyard.storage.s3_checksums`).

A part whose body stops short never becomes a part: the store wants every byte its
``Content-Length`` promised, and the writer cancels the request (the connection closes).
A streamed body is rewound for a retry only while no more than its first piece went out
(:meth:`PartBody.seek`); past it a failed connection fails the part, and so the chunk,
which the client sends again from the last ``202``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from dockyard.storage.driver import StorageError
from dockyard.storage.s3 import MAX_PART, MIN_PART
from dockyard.storage.s3_checksums import (
    TRAILER_NAME,
    Crc32,
    Integrity,
    chunk_head,
    encoded_length,
    trailer,
)

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

    The pieces are hashed in order beside their sending, as ``integrity`` asks: MD5 (for
    the ETag) or CRC32 (sent as the body's trailer, the body then framed ``aws-chunked``).
    ``read`` exists only so that botocore takes it as a file-like body; aiohttp sends it as
    an async iterable.

    A retry (botocore's, after a connection failed: a pooled connection the store closed
    while idle, a refused connect) rewinds it with :meth:`seek` as long as no more than its
    first piece went out: that piece is kept until the second one goes, so at most one
    piece more is held, and only at the part's start. Past it, ``seek`` fails, and so does
    the request (the client sends the chunk again from the last ``202``)."""

    def __init__(self, size: int, integrity: Integrity, *, wrong_checksum: bool = False) -> None:
        """``wrong_checksum`` (for the store's probe only) sends a CRC32 that does not match."""
        self.size = size
        self.fed = 0
        self.integrity = integrity
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUED)
        self._hash: HASH | Crc32 | None = None
        if integrity is Integrity.ETAG_MD5:
            self._hash = hashlib.md5(usedforsecurity=False)
        elif integrity is Integrity.TRAILER_CRC32:
            self._hash = Crc32()
        self._wrong = wrong_checksum
        # The hash of the pieces fed so far, computed in order beside their sending: the
        # newest pieces' hashing, at most :data:`HASHING` (each holds its piece).
        self._hashing: deque[asyncio.Future[None]] = deque()
        self._iterated = False
        # The first piece, taken from the queue and kept for a retry until the second one
        # is taken; ``_rewindable`` ends then.
        self._first: bytes | None = None
        self._rewindable = True

    @property
    def missing(self) -> int:
        return self.size - self.fed

    @property
    def wire_length(self) -> int:
        """The request's ``Content-Length``: the part, framed when it has a trailer."""
        if self.integrity is Integrity.TRAILER_CRC32:
            return encoded_length(self.size)
        return self.size

    async def _hashed(self) -> None:
        while self._hashing:
            await self._hashing.popleft()

    async def md5_hex(self) -> str | None:
        """The MD5 of the pieces fed (None: not an ETag-checked part), once all are hashed."""
        if self._hash is None or isinstance(self._hash, Crc32):
            return None
        await self._hashed()
        return self._hash.hexdigest()

    async def _hash_after(self, previous: asyncio.Future[None] | None, piece: bytes) -> None:
        assert self._hash is not None
        if previous is not None:
            await previous
        if len(piece) >= _HASH_IN_THREAD:
            await asyncio.to_thread(self._hash.update, piece)
        else:
            self._hash.update(piece)

    async def feed(self, piece: bytes, sending: asyncio.Future[Any]) -> None:
        """Queue ``piece`` (the body's own copy) once there is room; fails when the request
        ``sending`` it ended first (the store answered, or the connection broke)."""
        if len(piece) > self.missing:
            raise StorageError(f"{len(piece)} bytes for a part missing {self.missing}")
        if self._hash is not None:
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

    def seek(self, offset: int, whence: int = 0) -> int:
        """Rewind for a retry (botocore's ``reset_stream``), while only the first piece
        went out; else fail (botocore then gives up, with this error's message)."""
        if offset != 0 or whence != 0:
            raise StorageError("a streamed part can only be sent again from its start")
        if not self._rewindable:
            raise StorageError("a streamed part that went out past its first piece")
        self._iterated = False
        return 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            raise StorageError("a streamed part cannot be sent twice")
        self._iterated = True
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        if isinstance(self._hash, Crc32):
            yield chunk_head(self.size)
        sent = 0
        if self._first is not None:  # a retry: the first piece again
            sent = len(self._first)
            yield self._first
        while sent < self.size:
            piece = await self._queue.get()
            if self._rewindable and self._first is None:
                self._first = piece
            else:
                self._rewindable = False
                self._first = None
            sent += len(piece)
            yield piece
        if isinstance(self._hash, Crc32):
            await self._hashed()
            yield trailer(self._hash.value ^ (1 if self._wrong else 0))


def drop_expect_header(request: object, **_: object) -> None:
    """``before-send`` hook: botocore asks for ``100-continue`` before any file-like body;
    a streamed part goes out at once (the wait would be a round trip per part)."""
    body = getattr(request, "body", None)
    headers = getattr(request, "headers", None)
    if isinstance(body, PartBody) and headers is not None and "Expect" in headers:
        del headers["Expect"]


def frame_with_trailer(request: Any, **_: Any) -> None:
    """``before-sign`` hook: a part checked by its trailer goes out ``aws-chunked``, signed
    as ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (botocore itself sends trailers over HTTPS
    only, from a body it reads, not one it iterates)."""
    body = request.body
    if not isinstance(body, PartBody) or body.integrity is not Integrity.TRAILER_CRC32:
        return
    headers = request.headers
    for name in ("Content-Length", "Content-Encoding", "X-Amz-Trailer"):
        if name in headers:
            del headers[name]  # botocore's headers add a value on assignment
    headers["Content-Length"] = str(body.wire_length)
    headers["Content-Encoding"] = "aws-chunked"
    headers["X-Amz-Decoded-Content-Length"] = str(body.size)
    headers["X-Amz-Trailer"] = TRAILER_NAME
    # What makes botocore's SigV4 signer put STREAMING-UNSIGNED-PAYLOAD-TRAILER in
    # X-Amz-Content-SHA256 (auth.S3SigV4Auth.payload).
    request.context.setdefault("checksum", {})["request_algorithm"] = {
        "algorithm": "crc32",
        "in": "trailer",
        "name": TRAILER_NAME,
    }
