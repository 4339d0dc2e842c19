"""Blob uploads: sessions, chunks, and the commit that makes a verified blob visible.

An upload's bytes go to ``_uploads/<id>/data``. Each chunk is all-or-nothing: a chunk that
fails (bad range, short body, lost connection) is cut off again, so the upload always holds
whole chunks. At the final ``PUT`` the bytes are verified against the digest and then moved
to the blob path in one step; only then does the database link the blob into the repository.

The sha256 of the bytes so far is kept in this process between chunks. When a chunk arrives
at a process that did not see the earlier ones (another worker or replica, or after a
restart), the stored prefix is hashed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest, Hasher, new_hasher
from dockyard.oci.ranges import ByteRange
from dockyard.storage import paths
from dockyard.storage.driver import FileWriter, PathNotFoundError, StorageDriver

_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_CACHED_HASHERS = 10_000
COPY_BUFFER = 4 * 1024 * 1024
# A final request with at most this many bytes and nothing stored before is verified in memory.
SMALL_BODY = COPY_BUFFER


class IncompleteBodyError(Exception):
    """The request body ended before the length the client declared."""


@dataclass
class _HashState:
    offset: int
    hasher: Hasher


def _unknown(upload_id: str) -> errors.RegistryError:
    return errors.RegistryError(errors.BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id[:100]})


class UploadService:
    def __init__(self, metadata: MetadataStore, storage: StorageDriver) -> None:
        self._metadata = metadata
        self._storage = storage
        self._hashes: OrderedDict[str, _HashState] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    # -- sessions -------------------------------------------------------------------------

    async def start(self, name: str) -> str:
        """A new session; its data file appears with the first bytes (the row is the session)."""
        upload_id = str(uuid.uuid4())
        await self._metadata.create_upload(upload_id, name)
        self._remember(upload_id, _HashState(0, new_hasher()))
        return upload_id

    async def _check(self, name: str, upload_id: str) -> None:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise _unknown(upload_id)
        record = await self._metadata.get_upload(upload_id)
        if record is None or record.repository != name:
            raise _unknown(upload_id)

    async def status(self, name: str, upload_id: str) -> int:
        await self._check(name, upload_id)
        return await self._storage.stat(paths.upload_data(name, upload_id)) or 0

    async def cancel(self, name: str, upload_id: str) -> None:
        async with self._lock(upload_id):
            await self._check(name, upload_id)
            await self._discard(name, upload_id)

    async def _discard(self, name: str, upload_id: str) -> None:
        await self._metadata.delete_upload(upload_id)
        await self._forget(name, upload_id)

    async def _forget(self, name: str, upload_id: str) -> None:
        """Drop what is left of an ended session: its hash state, lock and files.

        The lock lives as long as the session, so that requests on one upload never
        overlap; a request still waiting on it finds the session gone."""
        self._hashes.pop(upload_id, None)
        self._locks.pop(upload_id, None)
        with contextlib.suppress(PathNotFoundError):
            await self._storage.delete(paths.upload_dir(name, upload_id))

    def _lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = asyncio.Lock()
        return lock

    def _remember(self, upload_id: str, state: _HashState) -> None:
        self._hashes[upload_id] = state
        self._hashes.move_to_end(upload_id)
        while len(self._hashes) > MAX_CACHED_HASHERS:
            self._hashes.popitem(last=False)

    # -- chunks ---------------------------------------------------------------------------

    async def append(
        self,
        name: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        """Append one chunk; returns the upload's new size."""
        async with self._lock(upload_id):
            await self._check(name, upload_id)
            writer = await self._storage.writer(paths.upload_data(name, upload_id), append=True)
            try:
                await self._write_chunk(upload_id, writer, body, content_range, content_length)
                return writer.size
            finally:
                await writer.close()

    async def _write_chunk(
        self,
        upload_id: str,
        writer: FileWriter,
        body: AsyncIterator[bytes],
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> None:
        start = writer.size
        limit = content_length
        if content_range is not None:
            if content_range.start != start:
                raise errors.RegistryError(
                    errors.BLOB_UPLOAD_RANGE_INVALID,
                    f"chunk starts at {content_range.start}; the upload holds {start} bytes",
                    headers={"Range": f"0-{max(start - 1, 0)}"},
                )
            if content_length is not None and content_length != content_range.length:
                raise errors.RegistryError(
                    errors.SIZE_INVALID,
                    f"Content-Length {content_length} does not match Content-Range "
                    f"length {content_range.length}",
                )
            limit = content_range.length
        state = self._hashes.get(upload_id)
        if state is None or state.offset != start:
            state = _HashState(start, await self._hash_prefix(upload_id, start))
        self._hashes.pop(upload_id, None)
        try:
            written = await _copy(body, writer, state.hasher, limit)
        except BaseException:
            await writer.truncate(start)
            raise
        if limit is not None and written != limit:
            await writer.truncate(start)
            raise errors.RegistryError(
                errors.SIZE_INVALID,
                f"chunk has {written} bytes; {limit} were declared",
            )
        self._remember(upload_id, _HashState(start + written, state.hasher))

    async def _hash_prefix(self, upload_id: str, size: int) -> Hasher:
        hasher = new_hasher()
        if size == 0:
            return hasher
        name = await self._repository_of(upload_id)
        async for chunk in self._storage.reader(paths.upload_data(name, upload_id), 0, size):
            await _update(hasher, chunk)
        return hasher

    async def _repository_of(self, upload_id: str) -> str:
        record = await self._metadata.get_upload(upload_id)
        if record is None:
            raise _unknown(upload_id)
        return record.repository

    # -- completion -----------------------------------------------------------------------

    async def complete(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        """Append an optional last chunk, verify the digest and commit the blob."""
        async with self._lock(upload_id):
            await self._check(name, upload_id)
            data_path = paths.upload_data(name, upload_id)
            small = (
                body is not None
                and content_length is not None
                and 0 < content_length <= SMALL_BODY
                and (content_range is None or content_range.start == 0)
            )
            if small and not await self._storage.stat(data_path):
                assert body is not None and content_length is not None
                return await self._complete_in_memory(name, upload_id, digest, body, content_length)
            writer = await self._storage.writer(data_path, append=True)
            try:
                if body is not None:
                    await self._write_chunk(upload_id, writer, body, content_range, content_length)
                size = writer.size
                await writer.commit()
            except BaseException:
                await writer.close()
                raise
            actual = await self._digest_of(upload_id, data_path, digest.algorithm, size)
            await self._require_digest(name, upload_id, digest, actual)
            if await self._metadata.blob_size(str(digest)) is None:
                await self._storage.move(data_path, paths.blob_data(digest))
            await self._metadata.commit_blob(name, str(digest), size, upload_id)
            await self._forget(name, upload_id)
            return size

    async def _complete_in_memory(
        self, name: str, upload_id: str, digest: Digest, body: AsyncIterator[bytes], length: int
    ) -> int:
        """A whole small blob in one request: verify it in memory and write it straight to
        its blob path (atomically), skipping the upload file."""
        pieces: list[bytes] = []
        received = 0
        async for chunk in body:
            received += len(chunk)
            if received > length:
                break
            pieces.append(chunk)
        if received != length:
            raise errors.RegistryError(
                errors.SIZE_INVALID, f"body has {received} bytes; {length} were declared"
            )
        data = b"".join(pieces)
        hasher = new_hasher(digest.algorithm)
        await _update(hasher, data)
        await self._require_digest(name, upload_id, digest, hasher.hexdigest())
        if await self._metadata.blob_size(str(digest)) is None:
            await self._storage.put_content(paths.blob_data(digest), data)
        await self._metadata.commit_blob(name, str(digest), length, upload_id)
        await self._forget(name, upload_id)
        return length

    async def _require_digest(
        self, name: str, upload_id: str, digest: Digest, actual_hex: str
    ) -> None:
        """A mismatch ends the upload, commits nothing and answers DIGEST_INVALID."""
        if actual_hex != digest.hex:
            await self._discard(name, upload_id)
            raise errors.RegistryError(
                errors.DIGEST_INVALID,
                f"content digest is {digest.algorithm}:{actual_hex}, not {digest}",
                detail={"digest": str(digest)},
            )

    async def _digest_of(self, upload_id: str, path: str, algorithm: str, size: int) -> str:
        state = self._hashes.get(upload_id)
        if algorithm == "sha256" and state is not None and state.offset == size:
            return state.hasher.hexdigest()
        hasher = new_hasher(algorithm)
        async for chunk in self._storage.reader(path, 0, size):
            await _update(hasher, chunk)
        return hasher.hexdigest()

    async def monolithic(
        self, name: str, digest: Digest, body: AsyncIterator[bytes], content_length: int | None
    ) -> int:
        """A single-request upload (``POST ?digest=``)."""
        upload_id = await self.start(name)
        try:
            return await self.complete(name, upload_id, digest, body, None, content_length)
        except BaseException:
            if await self._metadata.get_upload(upload_id) is not None:
                await self._discard(name, upload_id)
            raise

    async def mount(self, name: str, digest: Digest, source: str | None) -> int | None:
        """Link a blob another repository (or, without ``source``, the store) holds."""
        return await self._metadata.mount_blob(name, str(digest), source)

    async def purge(self, older_than: timedelta, dry_run: bool = False) -> list[str]:
        """Delete uploads started before ``now - older_than``; returns their ids."""
        records = await self._metadata.uploads_started_before(datetime.now(UTC) - older_than)
        if not dry_run:
            for record in records:
                await self._discard(record.repository, record.id)
        return [r.id for r in records]


async def _update(hasher: Hasher, chunk: bytes) -> None:
    if len(chunk) >= 256 * 1024:
        await asyncio.to_thread(hasher.update, chunk)
    else:
        hasher.update(chunk)


async def _copy(
    body: AsyncIterator[bytes], writer: FileWriter, hasher: Hasher, limit: int | None
) -> int:
    """Stream ``body`` into ``writer`` and ``hasher``; stops one byte past ``limit``.

    Incoming pieces (often 64 KiB) are gathered into buffers of ``COPY_BUFFER`` bytes; each
    buffer is hashed and written in worker threads while the event loop receives the next
    one. Two buffers at most are in memory per upload, and the thread hand-offs stay few.
    """
    written = 0
    pieces: list[bytes] = []
    gathered = 0
    pending: asyncio.Future[object] | None = None
    try:
        async for chunk in body:
            if limit is not None and written + gathered + len(chunk) > limit:
                return written + gathered + len(chunk)
            pieces.append(chunk)
            gathered += len(chunk)
            if gathered >= COPY_BUFFER:
                if pending is not None:
                    await pending
                pending = _flush(writer, hasher, pieces)
                written += gathered
                pieces, gathered = [], 0
        if pending is not None:
            await pending
            pending = None
        if pieces:
            await _flush(writer, hasher, pieces)
            written += gathered
        return written
    finally:
        if pending is not None and not pending.done():
            await asyncio.wait([pending])


def _flush(writer: FileWriter, hasher: Hasher, pieces: list[bytes]) -> asyncio.Future[object]:
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return asyncio.ensure_future(
        asyncio.gather(writer.write(data), asyncio.to_thread(hasher.update, data))
    )
