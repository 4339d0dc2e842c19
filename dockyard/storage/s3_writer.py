"""The S3 driver's writer: an upload sent as the parts of one multipart upload.

Bytes gather in a buffer of ``chunksize``; a full buffer goes out as the next part while
the following bytes gather in a new one. Up to :data:`PARTS_IN_FLIGHT` parts are sent at
once (the store writes them side by side), so an upload holds at most that many parts and
the one being filled in memory (three times ``chunksize``, 30 MiB by default) whatever its
size. On ``close`` what is left goes out as a part when it is 5 MiB or more, else as the
upload's tail object (:mod:`dockyard.storage.s3_progress`). The multipart upload is created
with the first part: an upload that never reaches 5 MiB is only a tail, committed by one
copy.

When the caller says how many bytes are coming (:meth:`S3Writer.expect`: a request's
``Content-Length``), the tail and those bytes are planned as parts that are sent while the
bytes arrive (:mod:`dockyard.storage.s3_stream`): nothing waits for a part to fill, no part
is held whole, and the request leaves no tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError, UnseekableStreamError

from dockyard.storage.driver import FileWriter, StorageError, WriterState
from dockyard.storage.s3 import MIN_PART
from dockyard.storage.s3_bucket import Bucket, is_not_found, not_found
from dockyard.storage.s3_progress import TAIL_MARK, Part, Progress
from dockyard.storage.s3_stream import PartBody, etag_matches, plan_parts

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

#: Parts of one upload being sent at once. Two keep the store busy while a request's last
#: part goes out behind the one before it; more would only hold more memory.
PARTS_IN_FLIGHT: Final = 2


class S3Writer(FileWriter):
    def __init__(
        self,
        bucket: Bucket,
        path: str,
        progress: Progress,
        tail: bytes,
        chunksize: int,
    ) -> None:
        """Resume ``progress`` of the upload at ``path``, whose tail bytes are ``tail``."""
        self._bucket = bucket
        self._path = path
        self._start = progress
        self._chunksize = chunksize
        self._upload_id = progress.upload_id
        self._created = progress.created
        self._created_upload = False
        self._parts = list(progress.parts)
        self._buffer = bytearray(tail)
        self._size = progress.size
        self._sending: deque[asyncio.Task[Part]] = deque()
        self._closed = False
        # Streaming (after ``expect``): the sizes of the parts still to start, and the one
        # being fed with the task sending it.
        self._planned: deque[int] | None = None
        self._streamed: tuple[PartBody, asyncio.Task[Part]] | None = None

    @property
    def size(self) -> int:
        return self._size

    def expect(self, length: int) -> None:
        """Stream the next ``length`` bytes as planned parts, when the bucket allows it and
        they and the tail make a part at least (else they gather as before)."""
        total = len(self._buffer) + length
        if (
            self._bucket.streaming is None
            or self._planned is not None
            or self._size != self._start.size
            or total < MIN_PART
        ):
            return
        self._planned = deque(plan_parts(total, self._chunksize))

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        if self._planned is not None:
            await self._stream(memoryview(data))
            return
        self._buffer += data
        self._size += len(data)
        if len(self._buffer) >= self._chunksize:
            await self._send_buffer()

    async def _stream(self, data: memoryview) -> None:
        """Feed ``data`` to the streamed parts, starting the next one when one is full."""
        assert self._planned is not None
        while data:
            if self._streamed is None or not self._streamed[0].missing:
                if not self._planned:
                    raise StorageError(f"more bytes written to {self._path} than expected")
                await self._start_streamed(self._planned.popleft())
            assert self._streamed is not None
            body, sending = self._streamed
            piece = data[: body.missing]
            await body.feed(bytes(piece), sending)  # a copy of its own: the caller reuses data
            self._size += len(piece)
            data = data[len(piece) :]

    async def _start_streamed(self, size: int) -> None:
        """Start the next part, of ``size`` bytes; the tail (kept before this request) is its
        first bytes."""
        number = await self._next_part_number()
        body = PartBody(size, self._bucket.integrity)
        sending = asyncio.create_task(self._send(number, body, size))
        self._sending.append(sending)
        self._streamed = (body, sending)
        if self._buffer:
            tail, self._buffer = bytes(self._buffer), bytearray()
            await body.feed(tail, sending)

    async def _send_buffer(self) -> None:
        """Send the buffer as the next part, without waiting for it (only for a part sent
        before it, when :data:`PARTS_IN_FLIGHT` are out): the next bytes gather meanwhile."""
        number = await self._next_part_number()
        # The buffer itself goes out (no copy of a part): the next bytes gather in a new one.
        part, self._buffer = self._buffer, bytearray()
        self._sending.append(asyncio.create_task(self._send(number, part, len(part))))

    async def _next_part_number(self) -> int:
        """The number of the part to send next, once fewer than :data:`PARTS_IN_FLIGHT` are
        out; the multipart upload is created before its first part."""
        await self._sent(keep=PARTS_IN_FLIGHT - 1)
        if not self._upload_id:
            created = await self._bucket.client.create_multipart_upload(
                Bucket=self._bucket.name,
                Key=self._start.key,
                **self._bucket.new_object,  # type: ignore[arg-type]
            )
            self._upload_id = created["UploadId"]
            self._created = int(time.time())
            self._created_upload = True
        return len(self._parts) + len(self._sending) + 1

    async def _send(self, number: int, data: bytearray | PartBody, size: int) -> Part:
        client = self._bucket.client
        if isinstance(data, PartBody) and self._bucket.streaming is not None:
            client = self._bucket.streaming
        try:
            sent = await client.upload_part(
                Bucket=self._bucket.name,
                Key=self._start.key,
                UploadId=self._upload_id,
                PartNumber=number,
                ContentLength=size,  # a framed body's own length is set before signing
                Body=data,  # type: ignore[arg-type]  # botocore takes a bytearray as a blob
            )
        except ClientError as exc:
            raise not_found(self._path, exc) from exc
        except UnseekableStreamError as exc:  # a retry of a part past its first piece
            raise StorageError(
                f"part {number} of {self._path}: the connection to the store broke after the "
                "part's first piece went out, and it cannot be sent again"
            ) from exc
        if isinstance(data, PartBody):
            _check_streamed(self._path, number, data, sent["ETag"], await data.md5_hex())
        return Part(sent["ETag"], size)

    async def _sent(self, keep: int = 0) -> None:
        """Wait for the parts being sent, oldest first, until at most ``keep`` are still
        out; count them."""
        while len(self._sending) > keep:
            self._parts.append(await self._sending[0])
            self._sending.popleft()

    async def close(self) -> WriterState:
        if self._closed:
            raise ValueError("writer is closed")
        if self._size == self._start.size:  # nothing written: the state it was opened at
            self._closed = True
            return WriterState(self._size, self._start.encode())
        if self._planned or (self._streamed is not None and self._streamed[0].missing):
            raise StorageError(f"fewer bytes written to {self._path} than expected")
        if len(self._buffer) >= MIN_PART:
            await self._send_buffer()
        await self._sent()
        tail = ""
        if self._buffer:
            tail = f"{self._bucket.key(self._path)}{TAIL_MARK}{uuid.uuid4().hex}"
            await self._bucket.client.put_object(
                Bucket=self._bucket.name,
                Key=tail,
                Body=bytes(self._buffer),
                **self._bucket.new_object,  # type: ignore[arg-type]
            )
        progress = Progress(
            key=self._start.key,
            upload_id=self._upload_id,
            parts=tuple(self._parts),
            tail=tail,
            tail_size=len(self._buffer),
            stale=(self._start.tail,) if self._start.tail else (),
            created=self._created,
        )
        self._closed = True
        self._buffer = bytearray()
        # The tails before the one this writer resumed from: nobody goes back to them.
        await delete_keys(self._bucket, self._start.stale)
        return WriterState(progress.size, progress.encode())

    async def abandon(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        for sending in self._sending:
            sending.cancel()
        for sending in self._sending:
            with contextlib.suppress(BaseException):
                await sending
        self._sending.clear()
        if self._created_upload:
            await abort_upload(self._bucket, self._start.key, self._upload_id)


def _check_streamed(path: str, number: int, body: PartBody, etag: str, md5_hex: str | None) -> None:
    """A streamed part the store took: all its bytes were sent, and (when
    checked by its ETag) the store's ETag is their MD5."""
    if body.missing:
        raise StorageError(f"part {number} of {path} was answered {body.missing} bytes early")
    if md5_hex is not None and not etag_matches(etag, md5_hex):
        raise StorageError(
            f"part {number} of {path}: the store's ETag {etag} is not the MD5 {md5_hex} "
            "of the bytes sent"
        )


async def abort_upload(bucket: Bucket, key: str, upload_id: str) -> None:
    """Abort a multipart upload; harmless when it is gone already."""
    try:
        await bucket.client.abort_multipart_upload(Bucket=bucket.name, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if not is_not_found(exc):
            raise


async def delete_keys(bucket: Bucket, keys: tuple[str, ...] | list[str]) -> None:
    """Delete objects by key, a thousand per request (S3's limit); missing ones are fine."""
    for start in range(0, len(keys), 1000):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[start : start + 1000]]
        await bucket.client.delete_objects(
            Bucket=bucket.name, Delete={"Objects": batch, "Quiet": True}
        )
