"""The filesystem driver: files under a root directory, written with rename for atomicity."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from dockyard.storage.driver import (
    FileWriter,
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    StorageFullError,
    check_path,
)
from dockyard.storage.pagecache import PageRecycler, aligned, open_direct, write_direct

READ_CHUNK = 1024 * 1024
# Linux limits: a name of at most 255 bytes, a path of fewer than 4096.
NAME_MAX = 255
PATH_MAX = 4096
# put_content writes a temporary beside its target first: a fixed-length name, so that it
# fits wherever its target fits, which list() leaves out.
_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.tmp")
_TEMPORARY_NAME_LENGTH = 37


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def _space_at(path: Path) -> Iterator[None]:
    """A full disk or quota while writing ``path`` raises StorageFullError naming it."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise StorageFullError(str(path)) from exc
        raise


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
        self._pages = PageRecycler(fd, size)
        # A second descriptor for O_DIRECT writes, opened at the first aligned write.
        self._direct_fd: int | None = None
        self._direct_refused = False
        self._direct_lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError("writer is closed")
        return self._fd

    async def write(self, data: bytes | memoryview) -> None:
        fd = self._require_fd()
        start = self._size
        # Taken before the first await: writes in flight together never overlap. A failed
        # write leaves the size past the data; the caller truncates (as after any failure).
        self._size += len(data)
        with _space_at(self._path):
            await asyncio.to_thread(self._write_sync, fd, data, start)

    def _write_sync(self, fd: int, data: bytes | memoryview, start: int) -> None:
        if not self._direct_refused and aligned(data, start):
            with self._direct_lock:  # two writes in flight may both be the first
                if self._direct_fd is None and not self._direct_refused:
                    self._direct_fd = open_direct(self._path)
                    self._direct_refused = self._direct_fd is None
            if self._direct_fd is not None:
                assert isinstance(data, memoryview)
                done = write_direct(self._direct_fd, data, start)
                if done == len(data):
                    return
                data, start = data[done:], start + done
        _write_all(fd, data, start)
        self._pages.written(start + len(data))

    async def truncate(self, size: int) -> None:
        fd = self._require_fd()
        if not 0 <= size <= self._size:
            raise ValueError(f"cannot truncate a {self._size}-byte file to {size} bytes")
        await asyncio.to_thread(os.ftruncate, fd, size)
        self._size = size
        self._pages.truncated(size)

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None
            self._direct_refused = True

    async def commit(self) -> None:
        fd = self._require_fd()
        with _space_at(self._path):
            await asyncio.to_thread(os.fdatasync, fd)
        await self.close()

    async def cancel(self) -> None:
        await self.close()
        await asyncio.to_thread(self._path.unlink, True)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def _full(self, path: str, file: bool = True) -> Path:
        """The local path of a driver path; ``file`` paths may not be the root itself."""
        check_path(path)
        if file and path == "/":
            raise InvalidPathError(path)
        full = self.root / path.lstrip("/")
        longest = len(os.fsencode(full.parent)) + 1 + max(len(full.name), _TEMPORARY_NAME_LENGTH)
        if longest >= PATH_MAX or any(len(part) > NAME_MAX for part in path.split("/")):
            raise InvalidPathError(path)
        return full

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
        with _space_at(full):
            await asyncio.to_thread(self._put_sync, full, data)

    @staticmethod
    def _put_sync(full: Path, data: bytes) -> None:
        full.parent.mkdir(parents=True, exist_ok=True)
        temporary = full.with_name(f".{uuid.uuid4().hex}.tmp")
        assert len(temporary.name) == _TEMPORARY_NAME_LENGTH
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fdatasync(handle.fileno())
            os.replace(temporary, full)
            _fsync_dir(full.parent)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        full = self._full(path)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative offset {offset} or length {length}")
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
            # Writes go to explicit offsets (the writer's size), also after a truncate.
            flags = os.O_WRONLY | os.O_CREAT | (0 if append else os.O_TRUNC)
            fd = os.open(full, flags, 0o644)
            return fd, os.fstat(fd).st_size

        with _space_at(full):
            fd, size = await asyncio.to_thread(open_sync)
        return _FilesystemWriter(full, fd, size)

    async def stat(self, path: str) -> int | None:
        full = self._full(path, file=False)
        try:
            info = await asyncio.to_thread(full.stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if full.is_file() else None

    async def list(self, path: str) -> list[str]:
        full = self._full(path, file=False)
        try:
            names = await asyncio.to_thread(os.listdir, full)
        except (FileNotFoundError, NotADirectoryError):
            return []
        prefix = path.rstrip("/")
        return sorted(f"{prefix}/{name}" for name in names if not _TEMPORARY.fullmatch(name))

    async def move(self, source: str, destination: str) -> None:
        src, dst = self._full(source), self._full(destination)

        def move_sync() -> None:
            if not src.is_file():
                raise PathNotFoundError(source)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            _fsync_dir(dst.parent)

        with _space_at(dst):
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
