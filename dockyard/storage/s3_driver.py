"""The S3 driver: files as objects of one bucket, under ``rootdirectory``, in Distribution's
layout, so that a bucket ``registry:2`` wrote is read in place (and the other way round).

Everything goes through aiobotocore (docs/storage.md says why, with numbers): reads are
ranged ``GetObject`` streams, ``stat`` a ``HeadObject``, ``list`` a delimited
``ListObjectsV2``, a tree delete listed keys deleted a thousand at a time, ``move`` a copy
(:mod:`dockyard.storage.s3_copy`) and a delete. Uploads are multipart uploads whose state
the caller keeps (:mod:`dockyard.storage.s3_writer`, :mod:`dockyard.storage.s3_progress`):
nothing lists the bucket to learn how far an upload got. An upload whose destination is
known when it starts (a blob pushed in one request) is written at the destination itself
and its commit completes it there, with no copy.

Blob reads may be redirected: ``redirect_url`` presigns a ``GET`` or ``HEAD`` of the object,
valid for ``redirect_expiry`` (signed by :mod:`dockyard.storage.s3_presign` where it can,
botocore otherwise).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from dockyard.storage.deferred import DeferredCopies
from dockyard.storage.driver import (
    FileWriter,
    PathNotFoundError,
    StorageDriver,
    StorageError,
    WriterState,
    check_file_path,
    check_path,
)
from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_bucket import (
    Bucket,
    error_code,
    is_not_found,
    not_found,
    open_client,
    send_body_as_view,
)
from dockyard.storage.s3_checksum_probe import verifies_trailers
from dockyard.storage.s3_checksums import Integrity
from dockyard.storage.s3_copy import CopySettings, copy_key
from dockyard.storage.s3_deletes import delete_trees, keys_below
from dockyard.storage.s3_presign import Presigner
from dockyard.storage.s3_progress import TAIL_MARK, Progress
from dockyard.storage.s3_stream import drop_expect_header, frame_with_trailer
from dockyard.storage.s3_writer import S3Writer, abort_upload, delete_keys
from dockyard.storage.strays import StrayUploads

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

READ_CHUNK: Final = 1024 * 1024
_PRESIGNED: Final = {"GET": "get_object", "HEAD": "head_object"}


class _Probes:
    """Whether the directories (``name/``) a delimited listing gave under ``prefix`` hold
    any object: a listing of one key below each tells (a few at a time)."""

    _AT_ONCE: Final = 16

    def __init__(self, bucket: Bucket, prefix: str) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._limit = asyncio.Semaphore(self._AT_ONCE)

    async def has_objects(self, name: str) -> bool:
        async with self._limit:
            found = await self._bucket.client.list_objects_v2(
                Bucket=self._bucket.name, Prefix=f"{self._prefix}{name}", MaxKeys=1
            )
        return bool(found.get("KeyCount") or found.get("Contents"))


class S3Driver(StorageDriver, StrayUploads, DeferredCopies):
    name = "s3"

    def __init__(self, parameters: S3Parameters, redirect_expiry: timedelta | None = None) -> None:
        self.parameters = parameters
        self.defers_copies = parameters.deferredcopy
        self.redirect_expiry = redirect_expiry
        self._copy = CopySettings(
            parameters.multipartcopychunksize,
            parameters.multipartcopymaxconcurrency,
            parameters.multipartcopythresholdsize,
        )
        # The client is made in the event loop that uses it (after a worker is forked).
        self._opened: Bucket | None = None
        self._presigner: Presigner | None = None
        self._opening = asyncio.Lock()
        self._stack = AsyncExitStack()

    async def bucket(self) -> Bucket:
        if self._opened is None:
            async with self._opening:
                if self._opened is None:
                    client = await self._stack.enter_async_context(open_client(self.parameters))
                    client.meta.events.register("before-send.s3", send_body_as_view)
                    self._presigner = await Presigner.of(client, self.parameters.bucket)
                    streaming = await self._streaming_client(client)
                    integrity = await self._integrity(streaming)
                    self._opened = Bucket.of(client, self.parameters, streaming, integrity)
        return self._opened

    async def _streaming_client(self, client: S3Client) -> S3Client | None:
        """The client for parts streamed as they arrive: over HTTPS the one client (it signs
        no payload); over plain HTTP a second one that signs none either, whose parts are
        checked by a CRC32 trailer or their ETag instead (:meth:`_integrity`); None (parts
        buffered and signed) with ``streamparts`` off, and over plain HTTP with KMS
        encryption, where an ETag is no MD5."""
        if not self.parameters.streamparts:
            return None
        if self.parameters.secure:
            streaming = client
        elif self.parameters.encrypt and self.parameters.keyid:
            return None
        else:
            streaming = await self._stack.enter_async_context(
                open_client(self.parameters, unsigned_payload=True)
            )
        streaming.meta.events.register("before-sign.s3.UploadPart", frame_with_trailer)
        streaming.meta.events.register("before-send.s3", drop_expect_header)
        return streaming

    async def _integrity(self, streaming: S3Client | None) -> Integrity:
        """How streamed parts are checked: by TLS over HTTPS; over plain HTTP by a CRC32
        trailer when the store was seen verifying one, else by the ETag's MD5."""
        if streaming is None or self.parameters.secure:
            return Integrity.TRANSPORT
        root = self.parameters.rootdirectory
        if await verifies_trailers(streaming, self.parameters.bucket, root):
            return Integrity.TRAILER_CRC32
        return Integrity.ETAG_MD5

    async def close(self) -> None:
        self._opened = None
        self._presigner = None
        await self._stack.aclose()

    # -- whole files ----------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        try:
            found = await bucket.client.get_object(Bucket=bucket.name, Key=key)
            async with found["Body"] as body:
                return await body.read()
        except ClientError as exc:
            raise not_found(path, exc) from exc

    async def put_content(self, path: str, data: bytes) -> None:
        bucket = await self.bucket()
        await bucket.client.put_object(
            Bucket=bucket.name,
            Key=bucket.key(check_file_path(path)),
            Body=data,
            **bucket.new_object,  # type: ignore[arg-type]
        )

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative offset {offset} or length {length}")
        end = "" if length is None else str(offset + length - 1)
        try:
            if length == 0:
                await bucket.client.head_object(Bucket=bucket.name, Key=key)
                return
            found = await bucket.client.get_object(
                Bucket=bucket.name, Key=key, Range=f"bytes={offset}-{end}"
            )
        except ClientError as exc:
            if error_code(exc) == "InvalidRange":
                return  # at or past the end: nothing to read
            raise not_found(path, exc) from exc
        async with found["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk

    async def stat(self, path: str) -> int | None:
        if check_path(path) == "/":
            return None
        bucket = await self.bucket()
        try:
            found = await bucket.client.head_object(Bucket=bucket.name, Key=bucket.key(path))
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return found["ContentLength"]

    async def list(self, path: str) -> list[str]:
        bucket = await self.bucket()
        prefix = bucket.prefix(check_path(path))
        files: set[str] = set()
        directories: set[str] = set()
        pages = bucket.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket.name, Prefix=prefix, Delimiter="/"
        )
        async for page in pages:
            for entry in page.get("CommonPrefixes", []):
                directories.add(entry["Prefix"][len(prefix) :])
            for item in page.get("Contents", []):
                files.add(item["Key"][len(prefix) :])
        # Some stores (SeaweedFS) keep a directory listed after its last object is gone.
        probes = _Probes(bucket, prefix)
        candidates = sorted(directories)
        kept = await asyncio.gather(*(probes.has_objects(name) for name in candidates))
        files.update(name.rstrip("/") for name, keep in zip(candidates, kept, strict=True) if keep)
        base = path.rstrip("/")
        return sorted(f"{base}/{name}" for name in files if name and TAIL_MARK not in name)

    async def move(self, source: str, destination: str) -> None:
        size = await self.stat(check_file_path(source))
        check_file_path(destination)
        if size is None:
            raise PathNotFoundError(source)
        if source == destination:
            return
        bucket = await self.bucket()
        source_key = bucket.key(source)
        await copy_key(bucket, self._copy, source_key, bucket.key(destination), size, source)
        await bucket.client.delete_object(Bucket=bucket.name, Key=source_key)

    async def delete(self, path: str) -> None:
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        doomed = await keys_below(bucket, key + "/")
        if await self.stat(path) is not None:
            doomed.append(key)
        if not doomed:
            raise PathNotFoundError(path)
        await delete_keys(bucket, doomed)

    async def delete_many(self, paths: Sequence[str]) -> dict[str, StorageError]:
        """Listed a few paths at a time, deleted a thousand keys per request."""
        return await delete_trees(await self.bucket(), paths)

    async def redirect_url(self, path: str, method: str) -> str | None:
        operation = _PRESIGNED.get(method)
        if self.redirect_expiry is None or operation is None:
            return None
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        expires = max(1, int(self.redirect_expiry.total_seconds()))
        if self._presigner is not None:
            return await self._presigner.url(key, method, expires)
        url: str = await bucket.client.generate_presigned_url(
            operation, Params={"Bucket": bucket.name, "Key": key}, ExpiresIn=expires
        )
        return url

    # -- uploads --------------------------------------------------------------------------

    def _progress(self, path: str, state: WriterState) -> Progress:
        progress = Progress.decode(state.driver_state or b"")
        if progress is None or progress.size != state.size:
            raise PathNotFoundError(path)
        return progress

    async def writer(
        self, path: str, resume: WriterState | None = None, destination: str | None = None
    ) -> FileWriter:
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        if destination is not None:
            bucket.key(check_file_path(destination))
        if resume is None or resume.driver_state is None:
            if resume is not None and resume.size:
                raise PathNotFoundError(path)
            start = Progress(key=bucket.key(destination) if destination else key)
            return S3Writer(bucket, path, start, b"", self.parameters.chunksize)
        progress = self._progress(path, resume)
        tail = b""
        try:
            if progress.tail:
                found = await bucket.client.get_object(Bucket=bucket.name, Key=progress.tail)
                async with found["Body"] as body:
                    tail = await body.read()
            elif progress.upload_id and not progress.is_fresh(time.time()):
                # An older upload may have been aborted behind Dockyard's back: find out
                # before the body is read. (A part sent to a gone upload fails anyway.)
                await bucket.client.list_parts(
                    Bucket=bucket.name, Key=progress.key, UploadId=progress.upload_id, MaxParts=1
                )
        except ClientError as exc:
            raise not_found(path, exc) from exc
        return S3Writer(bucket, path, progress, tail, self.parameters.chunksize)

    async def copy(self, source: str, destination: str) -> None:
        size = await self.stat(check_file_path(source))
        check_file_path(destination)
        if size is None:
            raise PathNotFoundError(source)
        bucket = await self.bucket()
        target = bucket.key(destination)
        await copy_key(bucket, self._copy, bucket.key(source), target, size, source)

    async def commit_in_place(self, path: str, state: WriterState, destination: str) -> str:
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        target = bucket.key(check_file_path(destination))
        progress = None if state == WriterState() else self._progress(path, state)
        if progress is None or not progress.upload_id or progress.key == target:
            await self.commit(path, state, destination)  # no copy to save
            return destination
        if progress.key != key:
            raise StorageError(
                f"the upload at {path} was written for another destination than {destination}"
            )
        await self._complete(bucket, path, progress)
        await self._delete_tails(bucket, key, progress)
        return path

    async def commit(self, path: str, state: WriterState, destination: str) -> None:
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        target = bucket.key(check_file_path(destination))
        if state == WriterState():
            await self.put_content(destination, b"")
            return
        progress = self._progress(path, state)
        if not progress.upload_id:
            if progress.tail:
                await copy_key(bucket, self._copy, progress.tail, target, progress.size, path)
            else:
                await self.put_content(destination, b"")
        else:
            if progress.key not in (target, key):
                raise StorageError(
                    f"the upload at {path} was written for another destination than {destination}"
                )
            await self._complete(bucket, path, progress)
            if progress.key != target:
                await copy_key(bucket, self._copy, progress.key, target, progress.size, path)
                await bucket.client.delete_object(Bucket=bucket.name, Key=progress.key)
        await self._delete_tails(bucket, key, progress)

    async def _complete(self, bucket: Bucket, path: str, progress: Progress) -> None:
        """Complete the multipart upload, its tail copied in as the last part."""
        parts = [
            {"ETag": part.etag, "PartNumber": number}
            for number, part in enumerate(progress.parts, start=1)
        ]
        try:
            if progress.tail:
                copied = await bucket.client.upload_part_copy(
                    Bucket=bucket.name,
                    Key=progress.key,
                    UploadId=progress.upload_id,
                    PartNumber=len(parts) + 1,
                    CopySource={"Bucket": bucket.name, "Key": progress.tail},
                )
                parts.append(
                    {"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": len(parts) + 1}
                )
            await bucket.client.complete_multipart_upload(
                Bucket=bucket.name,
                Key=progress.key,
                UploadId=progress.upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except ClientError as exc:
            raise not_found(path, exc) from exc

    async def abort(self, path: str, state: WriterState) -> None:
        bucket = await self.bucket()
        key = bucket.key(check_file_path(path))
        progress = Progress.decode(state.driver_state) if state.driver_state else None
        if progress is not None and progress.upload_id:
            await abort_upload(bucket, progress.key, progress.upload_id)
        await self._delete_tails(bucket, key, progress)

    async def _delete_tails(self, bucket: Bucket, key: str, progress: Progress | None) -> None:
        """Delete the tails an ended upload knows of, and any a failed request left (the
        one listing of an upload, for cleaning up only)."""
        known = [progress.tail, *progress.stale] if progress is not None else []
        strays = await keys_below(bucket, key + TAIL_MARK)
        await delete_keys(bucket, sorted({k for k in [*known, *strays] if k}))

    async def abort_uploads_older_than(self, age: timedelta) -> int:
        bucket = await self.bucket()
        before = datetime.now(UTC) - age
        stale: builtins.list[tuple[str, str]] = []
        pages = bucket.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket.name, Prefix=bucket.prefix("/")
        )
        async for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < before:
                    stale.append((upload["Key"], upload["UploadId"]))
        for key, upload_id in stale:
            await abort_upload(bucket, key, upload_id)
        return len(stale)
