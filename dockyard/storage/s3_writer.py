"""The S3 driver's writer: an upload sent as the parts of one multipart upload.

Bytes gather in a buffer of ``chunksize``; a full buffer goes out as the next part while
the following bytes gather in a new one. Up to :data:`PARTS_IN_FLIGHT` parts are sent at
once (the store writes them side by side), so an upload holds at most that many parts and
the one being filled in memory (three times ``chunksize``, 30 MiB by default) whatever its
size. On ``close`` what is left goes out as a part when it is 5 MiB or more, else as the
upload's tail object (:mod:`dockyard.storage.s3_progress`). The multipart upload is created
with the first part: an upload that never reaches 5 MiB is only a tail, committed by one
copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from dockyard.storage.driver import FileWriter, WriterState
from dockyard.storage.s3 import MIN_PART
from dockyard.storage.s3_bucket import Bucket, is_not_found, not_found
from dockyard.storage.s3_progress import TAIL_MARK, Part, Progress

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

    @property
    def size(self) -> int:
        return self._size

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        self._buffer += data
        self._size += len(data)
        if len(self._buffer) >= self._chunksize:
            await self._send_buffer()

    async def _send_buffer(self) -> None:
        """Send the buffer as the next part, without waiting for it (only for a part sent
        before it, when :data:`PARTS_IN_FLIGHT` are out): the next bytes gather meanwhile."""
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
        # The buffer itself goes out (no copy of a part): the next bytes gather in a new one.
        part, self._buffer = self._buffer, bytearray()
        number = len(self._parts) + len(self._sending) + 1
        self._sending.append(asyncio.create_task(self._send(number, part)))

    async def _send(self, number: int, data: bytearray) -> Part:
        try:
            sent = await self._bucket.client.upload_part(
                Bucket=self._bucket.name,
                Key=self._start.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,  # type: ignore[arg-type]  # botocore takes a bytearray as a blob
            )
        except ClientError as exc:
            raise not_found(self._path, exc) from exc
        return Part(sent["ETag"], len(data))

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
