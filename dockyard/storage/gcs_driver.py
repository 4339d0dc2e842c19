"""The Google Cloud Storage driver: GCS's JSON API over aiohttp, credentials from
google-auth, URLs signed locally (:mod:`dockyard.storage.gcs_signing`).

Files are objects named ``<rootdirectory>/<path>``. An upload is a list of *part*
objects, one per request that wrote to it, kept under
``<rootdirectory>/.dockyard-parts/<hash of the upload's key>/<nonce>``; the list lives
only in the upload's ``driver_state``, so any process or replica continues it. Each
writer streams its bytes into a resumable-upload session of its own, in pieces of
``chunksize`` (a multiple of 256 KiB, as GCS wants of every piece but the last); the
session becomes its part when the writer closes, and is cancelled when it is abandoned,
so a failed request leaves nothing. ``commit`` composes the parts into the destination
(32 at a time, in a tree past that: compose makes objects of up to 5 TiB without copying
bytes) and deletes them; ``abort`` deletes them. Both then sweep the upload's part folder
for parts that a request wrote but could not keep (a lost race).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from dockyard.storage.driver import FileWriter, PathNotFoundError, StorageError, WriterState
from dockyard.storage.gcs_signing import signed_url
from dockyard.storage.object_store import Listed, ObjectStoreDriver, kept_state
from dockyard.storage.piece_writer import PieceWriter

MiB = 1024 * 1024
DEFAULT_CHUNK_SIZE = 5 * MiB
DEFAULT_REDIRECT_EXPIRY = timedelta(minutes=20)
GOOGLE_ENDPOINT = "https://storage.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
MAX_COMPOSE = 32  # sources of one compose request
YIELD_SIZE = MiB
RETRIES = 4
RETRY_DELAY = 0.1  # seconds, doubled at each attempt
_RETRIED = frozenset({408, 429, 500, 502, 503, 504})


class _NotFound(Exception):
    pass


@dataclass(frozen=True)
class _Parts:
    """The part objects an upload keeps, in order: (nonce, size) each."""

    parts: tuple[tuple[str, int], ...] = ()

    @property
    def size(self) -> int:
        return sum(size for _, size in self.parts)

    def encode(self) -> bytes:
        return json.dumps({"v": 1, "parts": [list(part) for part in self.parts]}).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> _Parts:
        if data is None:
            return cls()
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("v") != 1:
            raise ValueError("not a GCS upload state")
        return cls(tuple((str(nonce), int(size)) for nonce, size in document["parts"]))


class _Credentials:
    """Bearer tokens (none for an emulator) and, with a service-account key, a signer."""

    def __init__(self, info: dict[str, Any] | None, emulator: bool) -> None:
        import google.auth
        import google.auth.exceptions
        from google.oauth2 import service_account

        self._emulator = emulator
        self._lock = asyncio.Lock()
        self.signing: service_account.Credentials | None = None
        if info is not None:
            self.signing = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[SCOPE]
            )
            self._tokens: Any = self.signing
        elif emulator:
            self._tokens = None
        else:
            try:
                self._tokens, _project = google.auth.default(scopes=[SCOPE])
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise StorageError(
                    "storage.gcs: no credentials: give keyfile or credentials, or set up "
                    f"Application Default Credentials ({exc})"
                ) from None

    async def headers(self) -> dict[str, str]:
        if self._emulator or self._tokens is None:
            return {}
        async with self._lock:
            if not self._tokens.valid:
                from google.auth.transport.requests import Request

                await asyncio.to_thread(self._tokens.refresh, Request())
        return {"Authorization": f"Bearer {self._tokens.token}"}


class _PartWriter(PieceWriter):
    """Streams one request's bytes into a resumable session that becomes one part."""

    def __init__(self, driver: GcsDriver, upload_key: str, kept: _Parts) -> None:
        super().__init__(kept.size, driver.chunk_size)
        self._driver = driver
        self._kept = kept
        self._nonce = secrets.token_hex(8)
        self._part = driver.part_key(upload_key, self._nonce)
        self._session: str | None = None

    async def _send(self, piece: bytes, offset: int, last: bool) -> None:
        driver = self._driver
        if offset == 0 and last:
            await driver.upload(self._part, piece)
            return
        if self._session is None:
            self._session = await driver.start_session(self._part)
        end = offset + len(piece) - 1
        total = str(offset + len(piece)) if last else "*"
        headers = {"Content-Range": f"bytes {offset}-{end}/{total}"}
        status, _ = await driver.call("PUT", self._session, data=piece, headers=headers)
        if status not in ((200, 201) if last else (308,)):
            raise StorageError(f"GCS resumable upload answered {status} at {offset}")

    async def _finish(self, written: int) -> WriterState:
        parts = self._kept.parts + (((self._nonce, written),) if written else ())
        kept = _Parts(parts)
        return WriterState(kept.size, kept.encode())

    async def _discard(self) -> None:
        if self._session is not None:
            await self._driver.call("DELETE", self._session, expect=(204, 499, 404, 410))
        await self._driver.delete_key(self._part)


class GcsDriver(ObjectStoreDriver):
    name = "gcs"

    def __init__(
        self,
        *,
        bucket: str,
        rootdirectory: str = "",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        credentials: dict[str, Any] | None = None,
        endpoint: str | None = None,
        redirect_expiry: timedelta | None = DEFAULT_REDIRECT_EXPIRY,
    ) -> None:
        super().__init__(rootdirectory)
        self.bucket = bucket
        self.chunk_size = chunk_size
        self.endpoint = (endpoint or GOOGLE_ENDPOINT).rstrip("/")
        self.redirect_expiry = redirect_expiry
        self._credentials = _Credentials(credentials, emulator=endpoint is not None)
        self._session: aiohttp.ClientSession | None = None

    # -- HTTP -----------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _object_url(self, key: str, suffix: str = "", **query: str) -> str:
        url = f"{self.endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o/{quote(key, safe='')}"
        return url + suffix + (f"?{urlencode(query)}" if query else "")

    def _upload_url(self, key: str, kind: str, overwrite: bool = False) -> str:
        query = {"uploadType": kind, "name": key}
        if not overwrite:
            query["ifGenerationMatch"] = "0"  # a new object, never one already there
        bucket = quote(self.bucket, safe="")
        return f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?{urlencode(query)}"

    async def call(
        self,
        method: str,
        url: str,
        *,
        expect: tuple[int, ...] | None = None,
        data: bytes | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One request; its status and JSON body. 404 raises _NotFound; any status
        outside ``expect`` (default: 2xx and 308) raises StorageError. An idempotent
        request (by default GET and DELETE) is tried again after a lost connection or a
        429/5xx, as Google asks of its clients."""
        payload: Any = data
        content_type = None
        if body is not None:
            payload, content_type = json.dumps(body).encode(), "application/json"
        elif data is not None:
            content_type = "application/octet-stream"
        if idempotent is None:
            idempotent = method in ("GET", "DELETE")
        for attempt in range(1, (RETRIES if idempotent else 1) + 1):
            sent = {**(await self._credentials.headers()), **(headers or {})}
            if content_type is not None:
                sent.setdefault("Content-Type", content_type)
            try:
                async with self._http().request(
                    method, URL(url, encoded=True), data=payload, headers=sent
                ) as response:
                    text = await response.read()
                    status = response.status
                    location = response.headers.get("Location")
            except aiohttp.ClientConnectionError:
                if attempt == RETRIES or not idempotent:
                    raise
                await asyncio.sleep(RETRY_DELAY * 2**attempt)
                continue
            if status not in _RETRIED or attempt == RETRIES or not idempotent:
                break
            await asyncio.sleep(RETRY_DELAY * 2**attempt)
        if expect is not None and status in expect:
            pass
        elif status == 404:
            raise _NotFound(url)
        elif not (200 <= status < 300 or status == 308):
            raise StorageError(f"GCS {method} answered {status}: {text[:300]!r}")
        document: dict[str, Any] = {}
        if text.startswith(b"{"):
            document = json.loads(text)
        if location is not None:
            document["_location"] = location
        return status, document

    async def upload(self, key: str, data: bytes, overwrite: bool = False) -> None:
        """One object in one request (media upload)."""
        url = self._upload_url(key, "media", overwrite)
        await self.call("POST", url, data=data, idempotent=overwrite)

    async def start_session(self, key: str) -> str:
        """A resumable-upload session for a new object ``key``: its URI."""
        _, document = await self.call("POST", self._upload_url(key, "resumable"), body={})
        location = document.get("_location")
        if not location:
            raise StorageError("GCS gave no resumable session")
        return str(location)

    def part_key(self, upload_key: str, nonce: str) -> str:
        folder = hashlib.sha256(upload_key.encode()).hexdigest()[:32]
        return f"{self.parts_prefix()}{folder}/{nonce}"

    # -- whole files ----------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.reader(path)])

    async def put_content(self, path: str, data: bytes) -> None:
        await self.upload(self.key(path), data, overwrite=True)

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        key = self.key(path)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative offset {offset} or length {length}")
        if length == 0:
            if await self.size_of(key) is None:
                raise PathNotFoundError(path)
            return
        headers = await self._credentials.headers()
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        url = URL(self._object_url(key, alt="media"), encoded=True)
        async with self._http().get(url, headers=headers) as response:
            if response.status == 404:
                raise PathNotFoundError(path)
            if response.status == 416:
                return
            if response.status not in (200, 206):
                raise StorageError(f"GCS GET answered {response.status}")
            async for chunk in response.content.iter_chunked(YIELD_SIZE):
                yield chunk

    # -- uploads --------------------------------------------------------------------------

    async def writer(
        self, path: str, resume: WriterState | None = None, destination: str | None = None
    ) -> FileWriter:
        key = self.upload_key(path, destination)
        kept = kept_state(path, resume, _Parts.decode)
        if kept.parts:
            nonce, size = kept.parts[0]  # commit and abort delete the first part first
            if await self.size_of(self.part_key(key, nonce)) != size:
                raise PathNotFoundError(path)
        return _PartWriter(self, key, kept)

    async def commit(self, path: str, state: WriterState, destination: str) -> None:
        key, target = self.key(path), self.key(destination)
        kept = kept_state(path, state, _Parts.decode)
        sources = [self.part_key(key, nonce) for nonce, _ in kept.parts]
        if not sources:
            await self.upload(target, b"", overwrite=True)
        else:
            try:
                await self._compose(sources, target, key)
            except (_NotFound, StorageError):
                # GCS answers 404 for a missing source; fake-gcs-server, 500.
                if await self.size_of(sources[0]) is None:
                    raise PathNotFoundError(path) from None
                raise
        await self._remove_parts(key, sources)

    async def _compose(self, sources: list[str], target: str, upload_key: str) -> None:
        """Compose ``sources`` into ``target``; past 32, through intermediate objects."""
        while len(sources) > MAX_COMPOSE:
            grouped = []
            for start in range(0, len(sources), MAX_COMPOSE):
                group = sources[start : start + MAX_COMPOSE]
                middle = self.part_key(upload_key, f"compose-{len(sources)}-{start}")
                await self._compose_once(group, middle)
                grouped.append(middle)
            sources = grouped
        await self._compose_once(sources, target)

    async def _compose_once(self, sources: list[str], target: str) -> None:
        body = {
            "sourceObjects": [{"name": name} for name in sources],
            "destination": {"contentType": "application/octet-stream"},
        }
        await self.call("POST", self._object_url(target, "/compose"), body=body, idempotent=True)

    async def abort(self, path: str, state: WriterState) -> None:
        key = self.key(path)
        try:
            kept = kept_state(path, state, _Parts.decode)
        except PathNotFoundError:
            kept = _Parts()
        await self._remove_parts(key, [self.part_key(key, nonce) for nonce, _ in kept.parts])

    async def _remove_parts(self, upload_key: str, parts: list[str]) -> None:
        """Delete the kept parts (the first first: then the state is void), then whatever
        else the upload's part folder holds."""
        for part in parts:
            await self.delete_key(part)
        folder = self.part_key(upload_key, "")
        async for entry in self.list_keys(folder, delimiter=False):
            await self.delete_key(entry.key)

    # -- copies ---------------------------------------------------------------------------

    async def move(self, source: str, destination: str) -> None:
        if await self.same_key_move(source, destination):
            return
        key = self.key(source)
        try:
            await self._rewrite(key, self.key(destination))
        except _NotFound:
            raise PathNotFoundError(source) from None
        await self.delete_key(key)

    async def _rewrite(self, key: str, target: str) -> None:
        """Copy an object server-side, in as many calls as GCS wants (any size)."""
        suffix = f"/rewriteTo/b/{quote(self.bucket, safe='')}/o/{quote(target, safe='')}"
        query: dict[str, str] = {}
        while True:
            url = self._object_url(key, suffix, **query)
            _, document = await self.call("POST", url, body={}, idempotent=True)
            if document.get("done", True):
                return
            query["rewriteToken"] = document["rewriteToken"]

    # -- primitives -----------------------------------------------------------------------

    async def list_keys(self, prefix: str, delimiter: bool) -> AsyncIterator[Listed]:
        url = f"{self.endpoint}/storage/v1/b/{quote(self.bucket, safe='')}/o"
        query = {"prefix": prefix, "fields": "items(name),prefixes,nextPageToken"}
        if delimiter:
            query["delimiter"] = "/"
        while True:
            _, document = await self.call("GET", f"{url}?{urlencode(query)}")
            for item in document.get("items", []):
                yield Listed(item["name"])
            for common in document.get("prefixes", []):
                yield Listed(common, is_prefix=True)
            token = document.get("nextPageToken")
            if not token:
                return
            query["pageToken"] = token

    async def delete_key(self, key: str) -> bool:
        try:
            await self.call("DELETE", self._object_url(key))
        except _NotFound:
            return False
        return True

    async def size_of(self, key: str) -> int | None:
        try:
            _, document = await self.call("GET", self._object_url(key, fields="size"))
        except _NotFound:
            return None
        return int(document["size"])

    async def redirect_url(self, path: str, method: str) -> str | None:
        """A V4 signed URL, when the credentials are a service-account key."""
        signing, expiry = self._credentials.signing, self.redirect_expiry
        if method not in ("GET", "HEAD") or signing is None or expiry is None:
            return None
        return signed_url(
            method=method,
            bucket=self.bucket,
            key=self.key(path),
            expiry=expiry,
            now=datetime.now(UTC),
            client_email=signing.service_account_email,
            sign=signing.signer.sign,
            endpoint=self.endpoint,
        )
