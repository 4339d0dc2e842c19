"""Blob uploads: sessions, chunks, and the commit that makes a verified blob visible.

An upload's progress lives in its ``uploads`` row, never in the storage: how many bytes it
holds, its storage driver's state for them (opaque: nothing for the filesystem, an object
store's multipart upload id and parts), and the sha256 state of those bytes
(``oci/resumable.py``). Every request resumes the driver's writer from the row, so any
worker or replica can take the next one, and nothing asks the storage how far an upload
got (``GET`` on an upload answers from the row).

Each chunk is all-or-nothing: only a chunk received whole and written moves the row on.
One that fails (bad range, short body, lost connection) leaves the row where it was, and
the driver drops its bytes when the upload is resumed or committed. At the final ``PUT``
the digest is checked, then the kept state goes to the driver, which makes the bytes the
blob (all at once) before the database links the blob and ends the session
(:meth:`UploadService._commit`). A cancel, a purge or a wrong digest hands it to abort.

A chunk's bytes are hashed in order and written while the next ones arrive, and each is
handed back to the body once both are done (:mod:`dockyard.registry.body`); how the body
receives them, and how the driver writes them, is theirs to know. The running sha256 is
kept in this process between chunks and saved with the row after each. When no saved
state covers the bytes so far (libcrypto missing, a state saved by another kind of
machine, a digest that is not sha256), the final ``PUT`` commits the upload where it is,
hashes it from there and only then moves it to the blob path. A whole small blob in one
request is verified in memory and written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.metadata.blob_links import Placement
from dockyard.metadata.records import UploadProgress, UploadRecord
from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest, Hasher, new_hasher
from dockyard.oci.ranges import ByteRange
from dockyard.oci.resumable import ResumableSha256, new_sha256, saved_state
from dockyard.registry.body import Body
from dockyard.storage import paths
from dockyard.storage.deferred import DeferredCopies
from dockyard.storage.driver import FileWriter, PathNotFoundError, StorageDriver, WriterState
from dockyard.storage.strays import StrayUploads

log = logging.getLogger("dockyard.uploads")

_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_CACHED_HASHERS = 10_000
# A final request with at most this many bytes and nothing stored before is verified in memory.
SMALL_BODY = 4 * 1024 * 1024
# Chunks at least this large are hashed in a thread.
_HASH_IN_THREAD = 256 * 1024
# A whole blob in memory up to this size is hashed on the event loop (under 1 ms): its
# thread hop would cost more CPU than it frees, as nothing else of the blob overlaps it.
_HASH_WHOLE_INLINE = 1024 * 1024


# Chunks of one upload held at once: one being written while the next is hashed.
_HELD = 2


class IncompleteBodyError(Exception):
    """The request body ended before the length the client declared."""


@dataclass(frozen=True)
class _HashState:
    offset: int
    hasher: Hasher
    # Started in this process and no chunk tried since: the storage holds nothing of it.
    untouched: bool = False


@dataclass(frozen=True)
class _Chunk:
    """An upload after a chunk: the writer's state, and the sha256 of every byte so far
    (None when no state covered the bytes before the chunk)."""

    state: WriterState
    hashed: _HashState | None


def _unknown(upload_id: str) -> errors.RegistryError:
    return errors.RegistryError(errors.BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id[:100]})


def _data(record: UploadRecord) -> str:
    return paths.upload_data(record.repository, record.id)


def _kept(record: UploadRecord) -> WriterState:
    """The writer's state that the row keeps."""
    return WriterState(record.progress.size, record.progress.driver_state)


class UploadService:
    def __init__(self, metadata: MetadataStore, storage: StorageDriver) -> None:
        self._metadata = metadata
        self._storage = storage
        self._hashes: OrderedDict[str, _HashState] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        deferred = storage.capability(DeferredCopies)
        self._deferred = deferred if deferred is not None and deferred.defers_copies else None

    # -- sessions -------------------------------------------------------------------------

    async def start(self, name: str) -> str:
        """A new session: a row; the storage holds nothing until the first bytes."""
        upload_id = str(uuid.uuid4())
        await self._metadata.create_upload(upload_id, name)
        self._remember(upload_id, _HashState(0, new_sha256(), untouched=True))
        return upload_id

    async def _check(self, name: str, upload_id: str) -> UploadRecord:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise _unknown(upload_id)
        record = await self._metadata.get_upload(upload_id)
        if record is None or record.repository != name:
            raise _unknown(upload_id)
        return record

    async def status(self, name: str, upload_id: str) -> int:
        return (await self._check(name, upload_id)).progress.size

    async def cancel(self, name: str, upload_id: str) -> None:
        async with self._lock(upload_id):
            await self._discard(await self._check(name, upload_id))

    async def _discard(self, record: UploadRecord, state: WriterState | None = None) -> None:
        """End a session: its row, then what the storage holds of it (``state``: the
        writer's newest, when a request got further than the row)."""
        await self._metadata.delete_upload(record.id)
        self._forget(record.id)
        await self._storage.abort(_data(record), state or _kept(record))

    def _forget(self, upload_id: str) -> None:
        """Drop what this process keeps of an ended session: its hash state and lock.

        The lock lives as long as the session, so that requests on one upload never
        overlap here; a request still waiting on it finds the session gone."""
        self._hashes.pop(upload_id, None)
        self._locks.pop(upload_id, None)

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
            chunk = await self._write_chunk(record, body, content_range, content_length)
            await self._save(record, chunk)
            return chunk.state.size

    async def _write_chunk(
        self,
        record: UploadRecord,
        body: Body,
        content_range: ByteRange | None,
        content_length: int | None,
        destination: str | None = None,
    ) -> _Chunk:
        """Write one chunk after what the row keeps; nothing of it is kept on failure."""
        limit = _chunk_limit(record.progress.size, content_range, content_length)
        hashed = self._hash_state_at(record)
        self._hashes.pop(record.id, None)  # the hasher changes as the chunk goes in
        writer = await self._resume(record, destination)
        if limit is not None:
            writer.expect(limit)
        try:
            written = await _copy(body, writer, hashed.hasher if hashed else None, limit)
            if limit is not None and written != limit:
                raise errors.RegistryError(
                    errors.SIZE_INVALID,
                    f"chunk has {written} bytes; {limit} were declared",
                )
            state = await writer.close()
        except PathNotFoundError:
            # What the row keeps is gone, found only as the chunk went in (a driver may
            # resume without asking the store first): the session cannot go on.
            await writer.abandon()
            await self._discard(record)
            raise _unknown(record.id) from None
        except BaseException:
            await writer.abandon()
            raise
        if hashed is None:
            return _Chunk(state, None)
        hashed = _HashState(state.size, hashed.hasher)
        self._remember(record.id, hashed)
        return _Chunk(state, hashed)

    async def _resume(self, record: UploadRecord, destination: str | None) -> FileWriter:
        try:
            return await self._storage.writer(_data(record), _kept(record), destination)
        except PathNotFoundError:
            # The bytes the row keeps are gone (removed behind Dockyard's back, or lost
            # in a crash of the machine): the session cannot go on.
            await self._discard(record)
            raise _unknown(record.id) from None

    async def _save(self, record: UploadRecord, chunk: _Chunk) -> None:
        """Move the row on to ``chunk``: its size, driver state and hash state."""
        kept = record.progress
        hash_offset, hash_state = kept.hash_offset, kept.hash_state
        saved = saved_state(chunk.hashed.hasher) if chunk.hashed is not None else None
        if saved is not None:
            hash_offset, hash_state = chunk.state.size, saved
        progress = UploadProgress(
            chunk.state.size, chunk.state.driver_state, hash_offset, hash_state
        )
        if await self._metadata.save_upload_progress(record.id, kept.size, progress):
            return
        self._hashes.pop(record.id, None)
        if await self._metadata.get_upload(record.id) is None:
            raise _unknown(record.id)
        raise errors.RegistryError(
            errors.BLOB_UPLOAD_INVALID,
            "another request moved this upload on while this chunk was written; "
            "the chunk was not kept (send one chunk at a time)",
        )

    def _hash_state_at(self, record: UploadRecord) -> _HashState | None:
        """The sha256 of the bytes the row keeps: this process's own, or the state saved
        with the row; None when neither covers them (the final ``PUT`` reads them back)."""
        size = record.progress.size
        state = self._hashes.get(record.id)
        if state is not None and state.offset == size:
            return state
        if size == 0:
            return _HashState(0, new_sha256())
        saved, offset = record.progress.hash_state, record.progress.hash_offset
        if saved is not None and offset == size:
            restored = ResumableSha256.restore(saved)
            if restored is not None:
                return _HashState(size, restored)
        return None

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
            fresh = record.progress.size == 0
            if (
                fresh
                and body is not None
                and content_length is not None
                and 0 < content_length <= SMALL_BODY
                and (content_range is None or content_range.start == 0)
            ):
                return await self._complete_in_memory(record, digest, body, content_length)
            if body is None:
                chunk = _Chunk(_kept(record), self._hash_state_at(record))
            else:
                # Nothing stored yet: the driver may write straight to the blob's place
                # (sha256 only: any other digest is committed where it is, to be hashed).
                sha256 = digest.algorithm == "sha256"
                destination = paths.blob_data(digest) if fresh and sha256 else None
                chunk = await self._write_chunk(
                    record, body, content_range, content_length, destination
                )
            if digest.algorithm == "sha256" and chunk.hashed is not None:
                await self._commit_hashed(record, digest, chunk.state, chunk.hashed)
            else:
                await self._commit_read_back(record, digest, chunk.state)
            self._forget(upload_id)
            return chunk.state.size

    async def _commit_hashed(
        self, record: UploadRecord, digest: Digest, state: WriterState, hashed: _HashState
    ) -> None:
        await self._require_digest(record, digest, hashed.hasher.hexdigest(), state)
        path = _data(record)
        blob = paths.blob_data(digest)
        deferred = self._deferred

        async def make_visible() -> str | None:
            if deferred is None:
                await self._storage.commit(path, state, blob)
                return None
            # Completed where it is; the mover copies it to the blob's path later.
            place = await deferred.commit_in_place(path, state, blob)
            return None if place == blob else place

        try:
            placed = await self._commit(
                record.repository, record.id, digest, state.size, make_visible
            )
        except PathNotFoundError:
            await self._discard(record, state)  # the kept bytes are gone
            raise _unknown(record.id) from None
        if not placed:
            await self._storage.abort(path, state)
        elif deferred is not None:
            deferred.moves_waiting().set()

    async def _commit_read_back(
        self, record: UploadRecord, digest: Digest, state: WriterState
    ) -> None:
        """Commit an upload no running hash covers: where it is first, so that it can be
        read and hashed, then (verified) to the blob path."""
        path = _data(record)
        try:
            await self._storage.commit(path, state, path)
        except PathNotFoundError:
            await self._discard(record, state)
            raise _unknown(record.id) from None
        hasher = new_hasher(digest.algorithm)
        try:
            async for piece in self._storage.reader(path, 0, state.size):
                await _update(hasher, piece)
            await self._require_digest(record, digest, hasher.hexdigest())
            await self._commit(
                record.repository,
                record.id,
                digest,
                state.size,
                lambda: _none(self._storage.move(path, paths.blob_data(digest))),
            )
        finally:
            # The committed file is no upload any more: abort would not find it.
            with contextlib.suppress(PathNotFoundError):
                await self._storage.delete(paths.upload_dir(record.repository, record.id))

    async def _complete_in_memory(
        self, record: UploadRecord, digest: Digest, body: Body, length: int
    ) -> int:
        """A whole small blob in one request: verify it in memory and write it straight to
        its blob path (atomically), skipping the upload's writer.

        What an earlier chunk may have left of the upload is discarded after, unless
        nothing can be left: this process started the upload and tried no chunk since,
        and the row saved none (a chunk another worker finished, even an empty one, saved
        its sha256 state). That saves a thread hop per small blob. Bytes could be left
        only by a worker killed in the middle of a first chunk (a failed chunk's writer
        removes what it created), or by an empty chunk on another worker where no sha256
        state can be saved (no libcrypto)."""
        known = self._hashes.get(record.id)
        untouched = known is not None and known.untouched and record.progress.hash_state is None
        pieces: list[bytes] = []
        received = 0
        async for chunk in body:
            received += len(chunk)
            if received > length:
                body.done(chunk)
                break
            pieces.append(bytes(chunk))  # a copy of its own: the body may reuse the buffer
            body.done(chunk)
        if received != length:
            raise errors.RegistryError(
                errors.SIZE_INVALID, f"body has {received} bytes; {length} were declared"
            )
        data = b"".join(pieces)
        hasher = new_hasher(digest.algorithm)
        if length <= _HASH_WHOLE_INLINE:
            hasher.update(data)
        else:
            await _update(hasher, data)
        await self._require_digest(record, digest, hasher.hexdigest())
        await self._commit(
            record.repository,
            record.id,
            digest,
            length,
            lambda: _none(self._storage.put_content(paths.blob_data(digest), data)),
        )
        if not untouched:
            await self._storage.abort(_data(record), _kept(record))
        self._forget(record.id)
        return length

    async def _commit(
        self,
        name: str,
        upload_id: str,
        digest: Digest,
        size: int,
        make_visible: Callable[[], Awaitable[str | None]],
    ) -> bool:
        """Make a verified blob visible and link it into ``name``, safe beside a collector;
        whether ``make_visible`` ran and its bytes are the blob's (False: the store held
        the bytes already, and the upload's own are left to discard).

        ``make_visible`` puts the bytes in place and returns None, or the path other than
        the blob's own where it left them (a deferred copy: the row points there).

        When the store lacks the blob, its bytes are put in place before the transaction
        (so that no lock is held while they are written). The transaction then checks again
        under the blob's row lock: in the rare case that a collector removed the blob since
        the first look, the bytes are put in place inside it. (A collector deletes bytes
        under the same lock, before its transaction commits: docs/architecture.md.) In the
        rare case that another commit of the digest came first, bytes left at a path of
        their own are deleted again.
        """
        placement = Placement()
        if await self._metadata.blob_size(str(digest)) is None:
            placement.pending_path = await make_visible()
            placement.written = True
        async with self._metadata.committing_blob(
            name, str(digest), size, upload_id, placement
        ) as present:
            if not present and not placement.written:
                placement.pending_path = await make_visible()
                placement.written = True
        if present and placement.written and placement.pending_path is not None:
            with contextlib.suppress(PathNotFoundError):
                await self._storage.delete(placement.pending_path)
            return True  # nothing of the upload is left to abort
        return placement.written

    async def _require_digest(
        self,
        record: UploadRecord,
        digest: Digest,
        actual_hex: str,
        state: WriterState | None = None,
    ) -> None:
        """A mismatch ends the upload, commits nothing and answers DIGEST_INVALID."""
        if actual_hex != digest.hex:
            await self._discard(record, state)
            raise errors.RegistryError(
                errors.DIGEST_INVALID,
                f"content digest is {digest.algorithm}:{actual_hex}, not {digest}",
                detail={"digest": str(digest)},
            )

    async def monolithic(
        self, name: str, digest: Digest, body: Body, content_length: int | None
    ) -> int:
        """A single-request upload (``POST ?digest=``)."""
        upload_id = await self.start(name)
        try:
            return await self.complete(name, upload_id, digest, body, None, content_length)
        except BaseException:
            record = await self._metadata.get_upload(upload_id)
            if record is not None:
                await self._discard(record)
            raise

    async def mount(self, name: str, digest: Digest, source: str | None) -> int | None:
        """Link a blob another repository (or, without ``source``, the store) holds."""
        return await self._metadata.mount_blob(name, str(digest), source)

    async def purge(self, older_than: timedelta, dry_run: bool = False) -> list[str]:
        """Delete uploads started before ``now - older_than``; returns their ids."""
        records = await self._metadata.uploads_started_before(datetime.now(UTC) - older_than)
        if not dry_run:
            for record in records:
                await self._discard(record)
            strays = self._storage.capability(StrayUploads)
            if strays is not None:
                aborted = await strays.abort_uploads_older_than(older_than)
                if aborted:
                    log.info("upload purge: %d stray storage uploads aborted", aborted)
        return [r.id for r in records]


async def _none(done: Awaitable[None]) -> None:
    """``done``, as a ``make_visible`` that leaves the bytes at the blob's own path."""
    await done


def _chunk_limit(start: int, content_range: ByteRange | None, length: int | None) -> int | None:
    """How many bytes the chunk must have (None: as many as come), after checking that
    its ``Content-Range`` starts where the upload ends and agrees with its length."""
    if content_range is None:
        return length
    if content_range.start != start:
        raise errors.RegistryError(
            errors.BLOB_UPLOAD_RANGE_INVALID,
            f"chunk starts at {content_range.start}; the upload holds {start} bytes",
            headers={"Range": f"0-{max(start - 1, 0)}"},
        )
    if length is not None and length != content_range.length:
        raise errors.RegistryError(
            errors.SIZE_INVALID,
            f"Content-Length {length} does not match Content-Range length {content_range.length}",
        )
    return content_range.length


async def _update(hasher: Hasher, chunk: bytes | memoryview) -> None:
    if len(chunk) >= _HASH_IN_THREAD:
        await asyncio.to_thread(hasher.update, chunk)
    else:
        hasher.update(chunk)


async def _copy(body: Body, writer: FileWriter, hasher: Hasher | None, limit: int | None) -> int:
    """Stream ``body`` into ``writer`` (and ``hasher``); stops one chunk past ``limit``.

    Chunks are hashed in order and written in order, one write at a time (the writer's
    contract), while the next chunk arrives and is hashed: at most :data:`_HELD` are held,
    each handed back to the body once it is hashed and written. Returns (or raises) only
    when no chunk is being written any more.
    """
    written = 0
    hashed: asyncio.Future[None] | None = None
    held: deque[asyncio.Future[None]] = deque()
    try:
        async for chunk in body:
            if limit is not None and written + len(chunk) > limit:
                body.done(chunk)
                return written + len(chunk)
            if hasher is not None:
                hashed = asyncio.ensure_future(_hash_after(hashed, hasher, chunk))
            if len(held) == _HELD:
                try:
                    await held.popleft()
                except BaseException:  # a failed write, or the request cancelled
                    held.append(asyncio.ensure_future(_hand_back(hashed, body, chunk)))
                    raise
            previous = held[-1] if held else None
            held.append(asyncio.ensure_future(_write_after(previous, writer, body, chunk, hashed)))
            written += len(chunk)
        while held:
            await held.popleft()
        return written
    finally:
        if held:
            await asyncio.wait(held)
            for job in held:
                if not job.cancelled():
                    job.exception()  # retrieved: the first error is the one raised


async def _hand_back(
    hashed: asyncio.Future[None] | None, body: Body, chunk: bytes | memoryview
) -> None:
    """Hand back a chunk that will not be written, once its hash no longer reads it: a
    chunk never handed back keeps its buffer out of the pool for good."""
    try:
        if hashed is not None:
            await hashed
    finally:
        body.done(chunk)


async def _hash_after(
    previous: asyncio.Future[None] | None, hasher: Hasher, chunk: bytes | memoryview
) -> None:
    if previous is not None:
        await previous
    await _update(hasher, chunk)


async def _write_after(
    previous: asyncio.Future[None] | None,
    writer: FileWriter,
    body: Body,
    chunk: bytes | memoryview,
    hashed: asyncio.Future[None] | None,
) -> None:
    """Write ``chunk`` once the chunk before it is written, and hand it back to ``body``
    once it is hashed too. After a failed write nothing more is written."""
    try:
        if previous is not None:
            await previous
        await writer.write(chunk)
        if hashed is not None:
            await hashed
    finally:
        body.done(chunk)
