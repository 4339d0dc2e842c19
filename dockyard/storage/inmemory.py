"""The in-memory driver: a dict of paths to bytes, for tests and throwaway registries.

It behaves like an object store where that matters to a caller: an upload lives apart
from the files, invisible until it is committed, and is found again only through the
``driver_state`` its caller kept (a token, like a multipart upload id), never by path.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

from dockyard.storage.driver import (
    FileWriter,
    PathNotFoundError,
    StorageDriver,
    WriterState,
    check_file_path,
    check_path,
)
from dockyard.storage.factory import DriverOptions, DriverParameters, register_driver


class InMemoryParameters(DriverParameters):
    """``storage.inmemory``: no keys."""

    in_process: ClassVar[bool] = True


class _Upload:
    def __init__(self, path: str) -> None:
        self.path = path
        self.data = bytearray()


class _MemoryWriter(FileWriter):
    def __init__(self, driver: InMemoryDriver, token: str, upload: _Upload, created: bool) -> None:
        self._driver = driver
        self._token = token
        self._upload = upload
        self._start = len(upload.data)
        self._created = created
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._upload.data)

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        self._upload.data.extend(data)

    async def close(self) -> WriterState:
        if self._closed:
            raise ValueError("writer is closed")
        self._closed = True
        return WriterState(len(self._upload.data), self._token.encode())

    async def abandon(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._created:
            self._driver.uploads.pop(self._token, None)
        else:
            del self._upload.data[self._start :]


class InMemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        # Uploads in progress by token: invisible to every file operation.
        self.uploads: dict[str, _Upload] = {}

    def _get(self, path: str) -> bytearray:
        try:
            return self.files[check_file_path(path)]
        except KeyError:
            raise PathNotFoundError(path) from None

    def _upload(self, path: str, state: WriterState) -> tuple[str, _Upload]:
        """The upload ``state`` describes, holding at least its bytes."""
        token = (state.driver_state or b"").decode("ascii", "replace")
        upload = self.uploads.get(token)
        if upload is None or upload.path != path or len(upload.data) < state.size:
            raise PathNotFoundError(path)
        return token, upload

    async def get_content(self, path: str) -> bytes:
        return bytes(self._get(path))

    async def put_content(self, path: str, data: bytes) -> None:
        self.files[check_file_path(path)] = bytearray(data)

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        data = self._get(path)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative offset {offset} or length {length}")
        end = len(data) if length is None else min(len(data), offset + length)
        step = 1024 * 1024
        for start in range(offset, end, step):
            yield bytes(data[start : min(start + step, end)])

    async def writer(
        self, path: str, resume: WriterState | None = None, destination: str | None = None
    ) -> FileWriter:
        check_file_path(path)
        if destination is not None:
            check_file_path(destination)
        if resume is None or resume.driver_state is None:
            if resume is not None and resume.size:
                raise PathNotFoundError(path)
            token, upload = uuid.uuid4().hex, _Upload(path)
            self.uploads[token] = upload
            return _MemoryWriter(self, token, upload, created=True)
        token, upload = self._upload(path, resume)
        del upload.data[resume.size :]
        return _MemoryWriter(self, token, upload, created=False)

    async def commit(self, path: str, state: WriterState, destination: str) -> None:
        check_file_path(path)
        check_file_path(destination)
        if state == WriterState():  # an upload never written: an empty file
            self.files[destination] = bytearray()
            return
        token, upload = self._upload(path, state)
        self.files[destination] = upload.data[: state.size]
        del self.uploads[token]

    async def abort(self, path: str, state: WriterState) -> None:
        check_file_path(path)
        token = (state.driver_state or b"").decode("ascii", "replace")
        upload = self.uploads.get(token)
        if upload is not None and upload.path == path:
            del self.uploads[token]

    async def stat(self, path: str) -> int | None:
        data = self.files.get(check_path(path))
        return None if data is None else len(data)

    async def list(self, path: str) -> list[str]:
        prefix = check_path(path).rstrip("/") + "/"
        children = {
            prefix + p[len(prefix) :].split("/", 1)[0] for p in self.files if p.startswith(prefix)
        }
        return sorted(children)

    async def move(self, source: str, destination: str) -> None:
        data = self._get(source)
        if check_file_path(destination) == source:
            return
        self.files[destination] = data
        del self.files[source]

    async def delete(self, path: str) -> None:
        check_file_path(path)
        prefix = path.rstrip("/") + "/"
        doomed = [p for p in self.files if p == path or p.startswith(prefix)]
        if not doomed:
            raise PathNotFoundError(path)
        for p in doomed:
            del self.files[p]


@register_driver("inmemory", InMemoryParameters)
def _create(_parameters: InMemoryParameters, _options: DriverOptions) -> InMemoryDriver:
    return InMemoryDriver()
