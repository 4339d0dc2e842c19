"""The Azure Blob Storage driver (azure-storage-blob's asyncio client).

Files are block blobs named ``<rootdirectory>/<path>``. An upload stages blocks on the
blob at its own path (``_uploads/<id>/data``), one per :data:`BLOCK_SIZE` of bytes and
one for the tail of each request: staged blocks are invisible, and their ids live only
in the upload's ``driver_state`` (:mod:`dockyard.storage.azure_blocks`), so any process
or replica continues it. ``commit`` commits the kept block list on the upload's blob
(Azure drops every other staged block then), copies the blob server-side to its
destination (Copy Blob has no size limit, unlike a single Put Blob) and deletes the upload.
``abort`` commits an empty list on a blob that does not exist yet, dropping the staged
blocks, and deletes what that made.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobClient, BlobPrefix, ContainerClient

from dockyard.storage.azure_blocks import (
    BadStateError,
    Block,
    StagedBlocks,
    block_id,
    new_nonce,
)
from dockyard.storage.driver import (
    FileWriter,
    PathNotFoundError,
    StorageError,
    WriterState,
)
from dockyard.storage.object_store import Listed, ObjectStoreDriver, kept_state
from dockyard.storage.piece_writer import PieceWriter

if TYPE_CHECKING:
    from obstore import GetOptions, GetResult
    from obstore.store import AzureStore

MiB = 1024 * 1024
BLOCK_SIZE = 8 * MiB
STREAM_CHUNK = MiB  # what obstore gathers before handing on
YIELD_SIZE = MiB  # what the reader hands on at a time, at most
DEFAULT_REDIRECT_EXPIRY = timedelta(minutes=20)
# A server-side copy is polled until it is done, waiting longer each time up to this.
_COPY_POLL_MAX = 2.0


def _status(error: HttpResponseError) -> int:
    return int(error.status_code or 0)


class _BlockWriter(PieceWriter):
    def __init__(self, blob: BlobClient, kept: StagedBlocks, created: bool) -> None:
        super().__init__(kept.size, BLOCK_SIZE)
        self._blob = blob
        self._kept = kept
        self._created = created
        self._nonce = new_nonce()
        self._new: list[Block] = []

    async def _send(self, piece: bytes, offset: int, last: bool) -> None:
        identifier = block_id(self._nonce, len(self._new))
        await self._blob.stage_block(identifier, io.BytesIO(piece), length=len(piece))
        self._new.append(Block(identifier, len(piece)))

    async def _finish(self, written: int) -> WriterState:
        try:
            staged = self._kept.plus(self._new)
        except BadStateError as exc:
            raise StorageError(str(exc)) from None
        return WriterState(staged.size, staged.encode())

    async def _discard(self) -> None:
        # A resumed upload's kept blocks and these can only be dropped together (at the
        # commit or abort, which ignore these); a new upload keeps nothing.
        if self._created and self._new:
            await _drop_staged(self._blob)


async def _drop_staged(blob: BlobClient) -> None:
    """Drop the blocks staged on a blob that was never committed."""
    try:
        await blob.commit_block_list([], match_condition=MatchConditions.IfMissing)
    except HttpResponseError as exc:
        if _status(exc) in (409, 412):
            return  # a committed blob (an upload committed in place): an ordinary file
        raise
    with contextlib.suppress(ResourceNotFoundError):
        await blob.delete_blob()


class AzureDriver(ObjectStoreDriver):
    name = "azure"

    def __init__(
        self,
        *,
        account_name: str,
        account_key: str,
        container: str,
        service_url: str,
        rootdirectory: str = "",
        redirect_expiry: timedelta | None = DEFAULT_REDIRECT_EXPIRY,
    ) -> None:
        super().__init__(rootdirectory)
        self.account_name = account_name
        self._account_key = account_key
        self.container = container
        self.service_url = service_url.rstrip("/")
        self.redirect_expiry = redirect_expiry
        self._client: ContainerClient | None = None
        self._obstore: AzureStore | None = None

    def _container(self) -> ContainerClient:
        """The client, made inside the running event loop on first use."""
        if self._client is None:
            self._client = ContainerClient(
                self.service_url,
                self.container,
                credential={"account_name": self.account_name, "account_key": self._account_key},
            )
        return self._client

    def _reads(self) -> AzureStore:
        """obstore's client, which reads: it streams a GET several times faster than
        azure-storage-blob's ranged downloads (docs/storage.md)."""
        if self._obstore is None:
            from obstore.store import AzureStore

            self._obstore = AzureStore(
                self.container,
                account_name=self.account_name,
                account_key=self._account_key,
                endpoint=self.service_url,
                client_options={"allow_http": self.service_url.startswith("http://")},
            )
        return self._obstore

    def _blob(self, key: str) -> BlobClient:
        return self._container().get_blob_client(key)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- whole files ----------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.reader(path)])

    async def put_content(self, path: str, data: bytes) -> None:
        # A stream: aiohttp warns that a large bytes body might block the loop.
        await self._blob(self.key(path)).upload_blob(
            io.BytesIO(data), length=len(data), overwrite=True, blob_type="BlockBlob"
        )

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        blob = self._blob(self.key(path))
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative offset {offset} or length {length}")
        if length == 0:
            if await self.size_of(blob.blob_name) is None:
                raise PathNotFoundError(path)
            return
        found = await self._get(blob.blob_name, offset, length)
        if found is None:
            return
        async for chunk in found.stream(min_chunk_size=STREAM_CHUNK):
            view = memoryview(chunk)
            for start in range(0, len(view), YIELD_SIZE):
                yield bytes(view[start : start + YIELD_SIZE])

    async def _get(self, key: str, offset: int, length: int | None) -> GetResult | None:
        """obstore's streaming GET of ``length`` bytes (or all) from ``offset``; None when
        that starts at or past the end. obstore refuses ranges past the end: then the
        object's size says what to read."""
        import obstore

        wanted: GetOptions = {}
        if length is not None:
            wanted["range"] = (offset, offset + length)
        elif offset:
            wanted["range"] = {"offset": offset}
        try:
            return await obstore.get_async(self._reads(), key, options=wanted)
        except FileNotFoundError:
            raise PathNotFoundError(self._path(key)) from None
        except Exception:
            size = await self.size_of(key)
            if size is None:
                raise PathNotFoundError(self._path(key)) from None
            if offset >= size:
                return None
            if length is None or offset + length <= size:
                raise
            return await self._get(key, offset, size - offset)

    # -- uploads --------------------------------------------------------------------------

    async def writer(
        self, path: str, resume: WriterState | None = None, destination: str | None = None
    ) -> FileWriter:
        blob = self._blob(self.upload_key(path, destination))
        kept = kept_state(path, resume, StagedBlocks.decode)
        if kept.blocks:
            try:
                _, uncommitted = await blob.get_block_list("uncommitted")
            except ResourceNotFoundError:
                raise PathNotFoundError(path) from None
            staged = {block.id for block in uncommitted}
            if any(block.id not in staged for block in kept.blocks):
                raise PathNotFoundError(path)
        return _BlockWriter(blob, kept, created=not kept.blocks)

    async def commit(self, path: str, state: WriterState, destination: str) -> None:
        key, target = self.key(path), self.key(destination)
        kept = kept_state(path, state, StagedBlocks.decode)
        blob = self._blob(key)
        if not kept.blocks:
            await self.put_content(destination, b"")
            if target != key:
                await _drop_staged(blob)
            return
        try:
            await blob.commit_block_list([BlobBlock(block.id) for block in kept.blocks])
        except HttpResponseError as exc:
            if _status(exc) in (400, 404):  # InvalidBlockList: the blocks are gone
                raise PathNotFoundError(path) from None
            raise
        if target != key:
            await self._copy(key, target, path)
            await self.delete_key(key)

    async def abort(self, path: str, state: WriterState) -> None:
        await _drop_staged(self._blob(self.key(path)))

    # -- copies ---------------------------------------------------------------------------

    async def _copy(self, source: str, target: str, path: str) -> None:
        """Copy a blob server-side and wait until the copy is done."""
        destination = self._blob(target)
        try:
            copy: dict[str, Any] = await destination.start_copy_from_url(self._blob(source).url)
        except ResourceNotFoundError:
            raise PathNotFoundError(path) from None
        status, delay = copy.get("copy_status"), 0.05
        while status == "pending":
            await asyncio.sleep(delay)
            delay = min(delay * 2, _COPY_POLL_MAX)
            status = (await destination.get_blob_properties()).copy.status
        if status != "success":
            raise StorageError(f"copying {source} to {target} ended {status}")

    async def move(self, source: str, destination: str) -> None:
        if await self.same_key_move(source, destination):
            return
        key, target = self.key(source), self.key(destination)
        await self._copy(key, target, source)
        await self.delete_key(key)

    # -- primitives -----------------------------------------------------------------------

    async def list_keys(self, prefix: str, delimiter: bool) -> AsyncIterator[Listed]:
        container = self._container()
        if delimiter:
            async for item in container.walk_blobs(name_starts_with=prefix, delimiter="/"):
                yield Listed(item.name, isinstance(item, BlobPrefix))
        else:
            async for name in container.list_blob_names(name_starts_with=prefix):
                yield Listed(name)

    async def delete_key(self, key: str) -> bool:
        try:
            await self._blob(key).delete_blob()
        except ResourceNotFoundError:
            return False
        return True

    async def size_of(self, key: str) -> int | None:
        try:
            properties = await self._blob(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return int(properties.size)

    async def redirect_url(self, path: str, method: str) -> str | None:
        """A read-only service SAS for the blob, signed with the account key."""
        expiry = self.redirect_expiry
        if method not in ("GET", "HEAD") or expiry is None:
            return None
        key = self.key(path)
        now = datetime.now(UTC)
        token = generate_blob_sas(
            self.account_name,
            self.container,
            key,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            start=now - timedelta(minutes=5),  # clock skew
            expiry=now + expiry,
        )
        return f"{self.service_url}/{self.container}/{quote(key)}?{token}"
