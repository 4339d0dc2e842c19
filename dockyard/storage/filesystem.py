"""The filesystem driver: files under a root directory, written with rename for atomicity."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from dockyard.storage.driver import FileWriter, PathNotFoundError, StorageDriver, check_path

READ_CHUNK = 1024 * 1024


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FilesystemWriter(FileWriter):
    def __init__(self, path: Path, fd: int, size: int) -> None:
        self._path = path
        self._fd: int | None = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError("writer is closed")
        return self._fd

    async def write(self, data: bytes) -> None:
        fd = self._require_fd()
        await asyncio.to_thread(_write_all, fd, data)
        self._size += len(data)

    async def truncate(self, size: int) -> None:
        fd = self._require_fd()
        await asyncio.to_thread(os.ftruncate, fd, size)
        self._size = size

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def commit(self) -> None:
        fd = self._require_fd()
        await asyncio.to_thread(os.fdatasync, fd)
        await self.close()

    async def cancel(self) -> None:
        await self.close()
        await asyncio.to_thread(self._path.unlink, True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def _full(self, path: str) -> Path:
        return self.root / check_path(path).lstrip("/")

    def local_path(self, path: str) -> Path | None:
        return self._full(path)

    async def get_content(self, path: str) -> bytes:
        full = self._full(path)
        try:
            return await asyncio.to_thread(full.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise PathNotFoundError(path) from None

    async def put_content(self, path: str, data: bytes) -> None:
        full = self._full(path)
        await asyncio.to_thread(self._put_sync, full, data)

    @staticmethod
    def _put_sync(full: Path, data: bytes) -> None:
        full.parent.mkdir(parents=True, exist_ok=True)
        temporary = full.with_name(f".{full.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fdatasync(handle.fileno())
            os.replace(temporary, full)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        full = self._full(path)
        try:
            handle = await asyncio.to_thread(open, full, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise PathNotFoundError(path) from None
        try:
            handle.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        full = self._full(path)

        def open_sync() -> tuple[int, int]:
            full.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
            fd = os.open(full, flags, 0o644)
            return fd, os.fstat(fd).st_size

        fd, size = await asyncio.to_thread(open_sync)
        return _FilesystemWriter(full, fd, size)

    async def stat(self, path: str) -> int | None:
        full = self._full(path)
        try:
            info = await asyncio.to_thread(full.stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if full.is_file() else None

    async def list(self, path: str) -> list[str]:
        full = self._full(path)
        try:
            names = await asyncio.to_thread(os.listdir, full)
        except (FileNotFoundError, NotADirectoryError):
            return []
        prefix = path.rstrip("/")
        # Dot-files are this driver's own temporaries, never content.
        return sorted(f"{prefix}/{name}" for name in names if not name.startswith("."))

    async def move(self, source: str, destination: str) -> None:
        src, dst = self._full(source), self._full(destination)

        def move_sync() -> None:
            if not src.is_file():
                raise PathNotFoundError(source)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            _fsync_dir(dst.parent)

        await asyncio.to_thread(move_sync)

    async def delete(self, path: str) -> None:
        full = self._full(path)

        def delete_sync() -> None:
            if full.is_dir() and not full.is_symlink():
                shutil.rmtree(full)
            elif full.exists() or full.is_symlink():
                full.unlink()
            else:
                raise PathNotFoundError(path)

        await asyncio.to_thread(delete_sync)
