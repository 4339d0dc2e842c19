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
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.metadata.records import UploadRecord
from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest, Hasher, new_hasher
from dockyard.oci.ranges import ByteRange
from dockyard.oci.resumable import ResumableSha256, new_sha256, saved_state
from dockyard.storage import paths
from dockyard.storage.driver import FileWriter, PathNotFoundError, StorageDriver

_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_CACHED_HASHERS = 10_000
COPY_BUFFER = 4 * 1024 * 1024
# Buffers of one upload being hashed and written at the same time.
IN_FLIGHT = 2
# A final request with at most this many bytes and nothing stored before is verified in memory.
SMALL_BODY = COPY_BUFFER


# A request body in chunks; a chunk may be a view into a buffer that is reused later.
Body = AsyncIterator[bytes | memoryview]


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
        self._remember(upload_id, _HashState(0, new_sha256()))
        return upload_id

    async def _check(self, name: str, upload_id: str) -> UploadRecord:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise _unknown(upload_id)
        record = await self._metadata.get_upload(upload_id)
        if record is None or record.repository != name:
            raise _unknown(upload_id)
        return record

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

    async def _forget(self, name: str, upload_id: str, files: bool = True) -> None:
        """Drop what is left of an ended session: its hash state, lock and (unless it is
        known to have none) files.

        The lock lives as long as the session, so that requests on one upload never
        overlap; a request still waiting on it finds the session gone."""
        self._hashes.pop(upload_id, None)
        self._locks.pop(upload_id, None)
        if files:
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
        body: Body,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        """Append one chunk; returns the upload's new size."""
        async with self._lock(upload_id):
            record = await self._check(name, upload_id)
            writer = await self._storage.writer(paths.upload_data(name, upload_id), append=True)
            try:
                await self._write_chunk(record, writer, body, content_range, content_length)
                size = writer.size
            finally:
                await writer.close()
            state = self._hashes.get(upload_id)
            if state is not None and state.offset == size:
                saved = saved_state(state.hasher)
                if saved is not None:
                    await self._metadata.save_upload_hash(upload_id, size, saved)
            return size

    async def _write_chunk(
        self,
        record: UploadRecord,
        writer: FileWriter,
        body: Body,
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
        upload_id = record.id
        state = await self._hash_state_at(record, start)
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

    async def _hash_state_at(self, record: UploadRecord, start: int) -> _HashState:
        """The sha256 of the upload's first ``start`` bytes: this process's own state, or
        the one saved with the upload, whichever covers more, brought up to ``start``
        from the stored bytes; from the first byte when neither is there."""
        state = self._hashes.get(record.id)
        if state is not None and state.offset == start:
            return state
        if state is None or state.offset > start:
            state = _HashState(0, new_sha256())
        saved, offset = record.hash_state, record.hash_offset
        if saved is not None and offset is not None and state.offset < offset <= start:
            restored = ResumableSha256.restore(saved)
            if restored is not None:
                state = _HashState(offset, restored)
        if state.offset < start:
            path = paths.upload_data(record.repository, record.id)
            async for chunk in self._storage.reader(path, state.offset, start - state.offset):
                await _update(state.hasher, chunk)
        return _HashState(start, state.hasher)

    # -- completion -----------------------------------------------------------------------

    async def complete(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        body: Body | None,
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        """Append an optional last chunk, verify the digest and commit the blob."""
        async with self._lock(upload_id):
            record = await self._check(name, upload_id)
            data_path = paths.upload_data(name, upload_id)
            small = (
                body is not None
                and content_length is not None
                and 0 < content_length <= SMALL_BODY
                and (content_range is None or content_range.start == 0)
            )
            stored = await self._storage.stat(data_path) if small else None
            if small and not stored:
                # Nothing stored before: written straight to the blob path. Without even
                # an empty data file, the upload has no files to remove afterwards.
                assert body is not None and content_length is not None
                return await self._complete_in_memory(
                    name, upload_id, digest, body, content_length, files=stored is not None
                )
            writer = await self._storage.writer(data_path, append=True)
            try:
                if body is not None:
                    await self._write_chunk(record, writer, body, content_range, content_length)
                size = writer.size
                await writer.commit()
            except BaseException:
                await writer.close()
                raise
            actual = await self._digest_of(record, digest.algorithm, size)
            await self._require_digest(name, upload_id, digest, actual)
            await self._commit(
                name,
                upload_id,
                digest,
                size,
                lambda: self._storage.move(data_path, paths.blob_data(digest)),
            )
            await self._forget(name, upload_id)
            return size

    async def _complete_in_memory(
        self, name: str, upload_id: str, digest: Digest, body: Body, length: int, files: bool
    ) -> int:
        """A whole small blob in one request: verify it in memory and write it straight to
        its blob path (atomically), skipping the upload file."""
        pieces: list[bytes | memoryview] = []
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
        await self._commit(
            name,
            upload_id,
            digest,
            length,
            lambda: self._storage.put_content(paths.blob_data(digest), data),
        )
        await self._forget(name, upload_id, files)
        return length

    async def _commit(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        size: int,
        make_visible: Callable[[], Awaitable[None]],
    ) -> None:
        """Make a verified blob visible and link it into ``name``, safe beside a collector.

        When the store lacks the blob, its bytes are put in place before the transaction
        (so that no lock is held while they are written). The transaction then checks again
        under the blob's row lock: in the rare case that a collector removed the blob since
        the first look, the bytes are put in place inside it. (A collector deletes bytes
        under the same lock, before its transaction commits: docs/architecture.md.)
        """
        written = False
        if await self._metadata.blob_size(str(digest)) is None:
            await make_visible()
            written = True
        async with self._metadata.committing_blob(name, str(digest), size, upload_id) as present:
            if not present and not written:
                await make_visible()

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

    async def _digest_of(self, record: UploadRecord, algorithm: str, size: int) -> str:
        if algorithm == "sha256":
            return (await self._hash_state_at(record, size)).hasher.hexdigest()
        hasher = new_hasher(algorithm)
        path = paths.upload_data(record.repository, record.id)
        async for chunk in self._storage.reader(path, 0, size):
            await _update(hasher, chunk)
        return hasher.hexdigest()

    async def monolithic(
        self, name: str, digest: Digest, body: Body, content_length: int | None
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


async def _update(hasher: Hasher, chunk: bytes | memoryview) -> None:
    if len(chunk) >= 256 * 1024:
        await asyncio.to_thread(hasher.update, chunk)
    else:
        hasher.update(chunk)


async def _copy(body: Body, writer: FileWriter, hasher: Hasher, limit: int | None) -> int:
    """Stream ``body`` into ``writer`` and ``hasher``; stops one byte past ``limit``.

    Incoming pieces (often 64 KiB) are gathered into buffers of ``COPY_BUFFER`` bytes; each
    buffer is hashed and written in worker threads while the event loop receives the next
    ones. Up to ``IN_FLIGHT`` buffers are written at once (a disk takes several writes in
    flight faster than one); hashing stays in order. A chunk of ``body`` is released once
    the iterator has been advanced ``IN_FLIGHT + 1`` more times.
    """
    written = 0
    pieces: list[bytes | memoryview] = []
    gathered = 0
    flights: deque[asyncio.Future[object]] = deque()
    hashed: asyncio.Future[None] | None = None

    def launch() -> None:
        nonlocal hashed, written, pieces, gathered
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        hashed = asyncio.ensure_future(_hash_after(hashed, hasher, data))
        flights.append(asyncio.ensure_future(asyncio.gather(writer.write(data), hashed)))
        written += gathered
        pieces, gathered = [], 0

    try:
        async for chunk in body:
            if limit is not None and written + gathered + len(chunk) > limit:
                return written + gathered + len(chunk)
            pieces.append(chunk)
            gathered += len(chunk)
            if gathered >= COPY_BUFFER:
                if len(flights) == IN_FLIGHT:
                    await flights.popleft()
                launch()
        if pieces:
            launch()
        while flights:
            await flights.popleft()
        return written
    finally:
        if flights:
            await asyncio.wait(flights)


async def _hash_after(
    previous: asyncio.Future[None] | None, hasher: Hasher, data: bytes | memoryview
) -> None:
    if previous is not None:
        await previous
    await asyncio.to_thread(hasher.update, data)
