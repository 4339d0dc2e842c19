"""The in-memory driver: a dict of paths to bytes, for tests and throwaway registries."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard.storage.driver import (
    FileWriter,
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    check_path,
)


def _check_file_path(path: str) -> str:
    """A path that may name a file: any checked path but the root."""
    if check_path(path) == "/":
        raise InvalidPathError(path)
    return path


class _MemoryWriter(FileWriter):
    def __init__(self, driver: InMemoryDriver, path: str, data: bytearray) -> None:
        self._driver = driver
        self._path = path
        self._data = data
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._data)

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        self._data.extend(data)

    async def truncate(self, size: int) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        if not 0 <= size <= len(self._data):
            raise ValueError(f"cannot truncate a {len(self._data)}-byte file to {size} bytes")
        del self._data[size:]

    async def close(self) -> None:
        self._closed = True

    async def commit(self) -> None:
        await self.close()

    async def cancel(self) -> None:
        self._closed = True
        self._driver.files.pop(self._path, None)


class InMemoryDriver(StorageDriver):
    name = "inmemory"

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}

    def _get(self, path: str) -> bytearray:
        try:
            return self.files[_check_file_path(path)]
        except KeyError:
            raise PathNotFoundError(path) from None

    async def get_content(self, path: str) -> bytes:
        return bytes(self._get(path))

    async def put_content(self, path: str, data: bytes) -> None:
        self.files[_check_file_path(path)] = bytearray(data)

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

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        _check_file_path(path)
        if not append or path not in self.files:
            self.files[path] = bytearray()
        return _MemoryWriter(self, path, self.files[path])

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
        if _check_file_path(destination) == source:
            return
        self.files[destination] = data
        del self.files[source]

    async def delete(self, path: str) -> None:
        _check_file_path(path)
        prefix = path.rstrip("/") + "/"
        doomed = [p for p in self.files if p == path or p.startswith(prefix)]
        if not doomed:
            raise PathNotFoundError(path)
        for p in doomed:
            del self.files[p]
