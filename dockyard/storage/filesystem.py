"""The filesystem driver: files under a root directory, made visible by rename.

An upload is written in place (``_uploads/<id>/data``) by a
:class:`~dockyard.storage.filesystem_writer.FilesystemWriter` and needs no state beyond its
size: resuming cuts the file back to the size the caller kept, and committing cuts it
there too, ``fdatasync``s it and renames it to its destination. The driver has the
:class:`~dockyard.storage.local.LocalFiles` powers (a local path to ``sendfile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import ClassVar

from pydantic import field_validator

from dockyard.storage.driver import (
    FileWriter,
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    StorageError,
    WriterState,
    check_path,
)
from dockyard.storage.factory import DriverOptions, DriverParameters, register_driver
from dockyard.storage.filesystem_writer import FilesystemWriter, remove_if_empty, space_at
from dockyard.storage.local import LocalFiles

READ_CHUNK = 1024 * 1024
# Linux limits: a name of at most 255 bytes, a path of fewer than 4096.
NAME_MAX = 255
PATH_MAX = 4096
# put_content writes a temporary beside its target first: a fixed-length name, so that it
# fits wherever its target fits, which list() leaves out.
_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.tmp")
_TEMPORARY_NAME_LENGTH = 37
_NOT_A_FILE = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
# delete_many: at most this many threads of its own, each given at least this many paths
# (measured here: 1,000 blob directories in 0.6-2.1 s from one thread, 0.3-0.4 s from 8,
# 0.25-0.35 s from 16; asyncio's default pool has only cores + 4 threads).
DELETE_JOBS = 16
DELETES_PER_JOB = 32
# The one file of a blob's directory.
_BLOB_FILE = "data"
# Paths per thread hop of walk().
WALK_CHUNK = 2000
# What deleting raises when nothing is at a path (a parent may be a file).
_NOTHING_THERE = (FileNotFoundError, NotADirectoryError)


def _make_directory(directory: str) -> None:
    """``mkdir -p``, in one system call when only the last directory is missing."""
    try:
        os.mkdir(directory)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)


def _fsync_dir(directory: str | Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemParameters(DriverParameters):
    """``storage.filesystem``."""

    local_root_key: ClassVar[str | None] = "rootdirectory"

    rootdirectory: str = "/var/lib/registry"
    # true: uploads written through the page cache and their pages kept for the first
    # pull; false: around it with O_DIRECT where the buffers allow (docs/storage.md).
    cacheuploads: bool = False

    @field_validator("rootdirectory")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def local_root(self) -> str:
        return self.rootdirectory


class FilesystemDriver(StorageDriver, LocalFiles):
    name = "filesystem"

    def __init__(self, root: str | os.PathLike[str], cache_uploads: bool = False) -> None:
        self.root = Path(root).absolute()
        self._cache_uploads = cache_uploads
        # Paths are built as text (pathlib's joining costs more than the rest of a small
        # blob's bookkeeping); a checked driver path is ASCII, so its bytes are its length.
        self._root_text = str(self.root).rstrip("/")
        self._root_bytes = len(os.fsencode(self._root_text))
        self._deleters: ThreadPoolExecutor | None = None

    def _full(self, path: str, file: bool = True) -> Path:
        """The local path of a driver path; ``file`` paths may not be the root itself."""
        check_path(path)
        if path == "/":
            if file:
                raise InvalidPathError(path)
            return self.root
        last = path.rfind("/")
        name_length = max(len(path) - last - 1, _TEMPORARY_NAME_LENGTH)
        longest = self._root_bytes + last + 1 + name_length
        if longest >= PATH_MAX or any(len(part) > NAME_MAX for part in path.split("/")):
            raise InvalidPathError(path)
        return Path(self._root_text + path)

    def local_path(self, path: str) -> Path:
        return self._full(path)

    def upload_file(self, path: str) -> Path:
        return self._full(path)  # the writer appends there, whatever the destination

    async def get_content(self, path: str) -> bytes:
        full = self._full(path)
        try:
            return await asyncio.to_thread(full.read_bytes)
        except _NOT_A_FILE:
            raise PathNotFoundError(path) from None

    async def put_content(self, path: str, data: bytes) -> None:
        full = self._full(path)
        with space_at(full):
            await asyncio.to_thread(self._put_sync, full, data)

    @staticmethod
    def _put_sync(full: Path, data: bytes) -> None:
        """Write ``data`` to a temporary beside ``full``, make it durable and rename it
        into place: one thread job, few system calls (a blob's own directory is new, its
        parents mostly exist)."""
        directory = os.path.dirname(full)
        _make_directory(directory)
        # Unique, not secret: the process's generator, without uuid4's system call.
        temporary = os.path.join(directory, f".{random.getrandbits(128):032x}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, full)
            _fsync_dir(directory)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    async def reader(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        full = self._full(path)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"negative offset {offset} or length {length}")
        try:
            handle = await asyncio.to_thread(open, full, "rb")
        except _NOT_A_FILE:
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

    async def writer(
        self, path: str, resume: WriterState | None = None, destination: str | None = None
    ) -> FileWriter:
        full = self._full(path)
        if destination is not None:
            self._full(destination)  # checked like every path; the upload stays at path
        keep = resume.size if resume is not None else 0

        def open_sync() -> tuple[int, bool]:
            try:
                fd, created = os.open(full, os.O_WRONLY), False
            except FileNotFoundError:
                if keep:
                    raise PathNotFoundError(path) from None
                full.parent.mkdir(parents=True, exist_ok=True)
                fd, created = os.open(full, os.O_WRONLY | os.O_CREAT, 0o644), True
            except (IsADirectoryError, NotADirectoryError):
                raise PathNotFoundError(path) from None
            try:
                _cut(fd, keep, path)
            except BaseException:
                os.close(fd)
                raise
            return fd, created

        with space_at(full):
            fd, created = await asyncio.to_thread(open_sync)
        return FilesystemWriter(full, self.root, fd, keep, created, self._cache_uploads)

    async def commit(self, path: str, state: WriterState, destination: str) -> None:
        source, target = self._full(path), self._full(destination)

        def commit_sync() -> None:
            try:
                fd = os.open(source, os.O_WRONLY)
            except _NOT_A_FILE:
                if state.size:
                    raise PathNotFoundError(path) from None
                self._put_sync(target, b"")  # an upload never written: an empty file
                return
            try:
                _cut(fd, state.size, path)
                os.fdatasync(fd)
            finally:
                os.close(fd)
            if target == source:
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            _fsync_dir(target.parent)
            remove_if_empty(source.parent, self.root)

        with space_at(target):
            await asyncio.to_thread(commit_sync)

    async def abort(self, path: str, state: WriterState) -> None:
        full = self._full(path)

        def abort_sync() -> None:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                full.unlink()
            remove_if_empty(full.parent, self.root)

        await asyncio.to_thread(abort_sync)

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

    async def walk(self, path: str) -> AsyncIterator[str]:
        """The default walk's files, in its order, read with ``os.scandir`` in a thread a
        chunk of paths at a time: the default's two thread hops per path took minutes
        over a store of 100,000 blobs (fsck, import)."""
        found = _files_below(self._full(path, file=False), path.rstrip("/"))
        while chunk := await asyncio.to_thread(list, islice(found, WALK_CHUNK)):
            for child in chunk:
                yield child

    async def move(self, source: str, destination: str) -> None:
        src, dst = self._full(source), self._full(destination)

        def move_sync() -> None:
            if not src.is_file():
                raise PathNotFoundError(source)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            _fsync_dir(dst.parent)

        with space_at(dst):
            await asyncio.to_thread(move_sync)

    async def delete(self, path: str) -> None:
        full = self._full(path)

        def delete_sync() -> None:
            try:
                _remove(full)
            except _NOTHING_THERE:
                raise PathNotFoundError(path) from None

        await asyncio.to_thread(delete_sync)

    async def delete_many(self, paths: Sequence[str]) -> dict[str, StorageError]:
        """Threads of its own, each deleting a share of ``paths``: a thread hop per path
        cost more than deleting a small blob's directory, and one thread alone waits for
        the disk between deletes (docs/performance.md, garbage collection)."""
        full = [(path, self._full(path)) for path in paths]
        size = max(DELETES_PER_JOB, -(-len(full) // DELETE_JOBS))
        shares = [full[start : start + size] for start in range(0, len(full), size)]
        if self._deleters is None:
            self._deleters = ThreadPoolExecutor(DELETE_JOBS, thread_name_prefix="delete")
        loop = asyncio.get_running_loop()
        jobs = (loop.run_in_executor(self._deleters, _remove_all, share) for share in shares)
        failures: dict[str, StorageError] = {}
        for share in await asyncio.gather(*jobs):
            failures.update(share)
        return failures

    async def close(self) -> None:
        if self._deleters is not None:
            self._deleters.shutdown(wait=False)
            self._deleters = None


def _files_below(directory: Path, prefix: str) -> Iterator[str]:
    """Driver paths of the files below ``directory``, depth first in name order, as
    ``list`` and ``stat`` see them (temporaries left out)."""
    try:
        with os.scandir(directory) as scan:
            entries = sorted(
                (e for e in scan if not _TEMPORARY.fullmatch(e.name)), key=lambda e: e.name
            )
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        child = f"{prefix}/{entry.name}"
        if entry.is_file():
            yield child
        elif entry.is_dir():
            yield from _files_below(Path(entry.path), child)


def _remove_all(share: list[tuple[str, Path]]) -> dict[str, StorageError]:
    failures: dict[str, StorageError] = {}
    for path, local in share:
        try:
            _remove(local)
        except _NOTHING_THERE:
            pass
        except OSError as exc:
            failures[path] = StorageError(f"cannot delete {path}: {exc}")
    return failures


def _remove(full: Path) -> None:
    """Delete a file or a directory tree; one of ``_NOTHING_THERE`` if nothing is. A
    blob's directory (its one file ``data``) takes four system calls; another directory
    of files only is emptied with plain unlinks, cheaper than ``shutil.rmtree``."""
    if _remove_blob_directory(str(full)):
        return
    if full.is_symlink() or not full.is_dir():
        full.unlink()
        return
    with os.scandir(full) as scan:
        children = list(scan)
    if any(child.is_dir(follow_symlinks=False) for child in children):
        shutil.rmtree(full)
        return
    for child in children:
        os.unlink(child.path)
    os.rmdir(full)


def _remove_blob_directory(directory: str) -> bool:
    """Delete ``directory`` if it is a real directory (not a link to one) that holds the
    file ``data`` and nothing else; False, with whatever is left there, if not."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        os.unlink(_BLOB_FILE, dir_fd=fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        os.rmdir(directory)
    except OSError:
        return False
    return True


def _cut(fd: int, size: int, path: str) -> None:
    """Cut an upload's file back to the ``size`` bytes its caller kept: what lies past them
    is a chunk that failed. Fewer bytes than that: the upload is lost."""
    actual = os.fstat(fd).st_size
    if actual < size:
        raise PathNotFoundError(path)
    if actual > size:
        os.ftruncate(fd, size)


@register_driver("filesystem", FilesystemParameters)
def _create(parameters: FilesystemParameters, _options: DriverOptions) -> FilesystemDriver:
    return FilesystemDriver(parameters.rootdirectory, parameters.cacheuploads)
