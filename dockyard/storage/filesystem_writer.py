"""The filesystem driver's upload writer: appends to a local file as fast as the disk allows.

* A page-aligned buffer at a page-aligned offset (what a taken-over request body is made
  of, ``dockyard.api.direct_body``) goes to the disk with ``O_DIRECT``; any other write
  goes through the page cache, whose pages are recycled behind the writer
  (:mod:`dockyard.storage.pagecache`).
* With ``cache`` (``storage.filesystem.cacheuploads: true``) every write goes through the
  page cache instead and its pages stay there, written out window by window as they
  arrive: the first pull right after a push reads memory, not the disk, for the CPU of
  filling fresh pages (docs/storage.md says when that is dear).
* A large ``O_DIRECT`` write is cut into :data:`WRITES_IN_FLIGHT` pieces written at once
  from threads: the disk takes several writes in flight faster than one
  (docs/performance.md).

``write`` returns only once every piece is on its way to the disk, even when the caller
is cancelled, so the caller's buffer is free again when it returns: the buffer lifetimes
stay inside this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from dockyard.storage.driver import FileWriter, StorageFullError, WriterState
from dockyard.storage.pagecache import ALIGN, PageRecycler, aligned, open_direct, write_direct

WRITES_IN_FLIGHT = 2
# A write is cut into pieces only when each piece gets at least this many bytes.
MIN_PIECE = 512 * 1024

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def space_at(path: Path) -> Iterator[None]:
    """A full disk or quota while writing ``path`` raises StorageFullError naming it."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise StorageFullError(str(path)) from exc
        raise


def remove_if_empty(directory: Path, root: Path) -> None:
    """Remove ``directory`` if nothing is left in it (an upload's own directory), never
    ``root`` itself."""
    if directory != root:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _pieces(
    data: bytes | memoryview, start: int, direct: bool = True
) -> list[tuple[bytes | memoryview, int]]:
    """``data`` cut into the pieces written at once, each with its file offset: a large
    aligned buffer bound for ``O_DIRECT`` (``direct``), cut at page boundaries so that
    every piece is aligned. (A write to the page cache returns once copied: it gains
    nothing from pieces.)"""
    length = len(data)
    if not direct or length < WRITES_IN_FLIGHT * MIN_PIECE or not aligned(data, start):
        return [(data, start)]
    view = memoryview(data)
    step = length // WRITES_IN_FLIGHT // ALIGN * ALIGN
    cuts = [index * step for index in range(WRITES_IN_FLIGHT)] + [length]
    return [(view[begin:end], start + begin) for begin, end in itertools.pairwise(cuts)]


async def _in_threads(calls: Sequence[Callable[[], None]]) -> None:
    """Run ``calls`` at once in threads; return, or raise the first error, only when all
    of them are done, also when cancelled meanwhile (a thread may be reading the buffer)."""
    loop = asyncio.get_running_loop()
    futures = [loop.run_in_executor(None, call) for call in calls]
    try:
        await asyncio.wait(futures)
    finally:
        if not all(future.done() for future in futures):
            await asyncio.wait(futures)
    errors = [error for error in (future.exception() for future in futures) if error]
    if errors:
        raise errors[0]


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class FilesystemWriter(FileWriter):
    """Writes one local file from ``size`` on; ``created`` when the file is this writer's
    (abandoning it then removes the file). ``cache``: every write through the page cache,
    whose pages are kept; otherwise aligned writes go around it with ``O_DIRECT``."""

    def __init__(
        self, path: Path, root: Path, fd: int, size: int, created: bool, cache: bool = False
    ) -> None:
        self._path = path
        self._root = root
        self._fd: int | None = fd
        self._start = size
        self._size = size
        self._created = created
        self._failed = False
        self._pages = PageRecycler(fd, size, keep=cache)
        # A second descriptor for O_DIRECT writes, opened at the first aligned write.
        self._direct_fd: int | None = None
        self._direct_refused = cache
        self._direct_lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def _writable(self) -> int:
        if self._fd is None:
            raise ValueError("writer is closed")
        if self._failed:
            raise ValueError("a write failed: the writer can only be abandoned")
        return self._fd

    async def write(self, data: bytes | memoryview) -> None:
        fd = self._writable()
        start = self._size
        calls = [
            functools.partial(self._write_sync, fd, piece, offset)
            for piece, offset in _pieces(data, start, not self._direct_refused)
        ]
        try:
            with space_at(self._path):
                await _in_threads(calls)
        except BaseException:
            self._failed = True
            raise
        self._size = start + len(data)

    def _write_sync(self, fd: int, data: bytes | memoryview, start: int) -> None:
        if not self._direct_refused and aligned(data, start):
            with self._direct_lock:  # the pieces of one write may all be the first
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

    def _release(self) -> None:
        for fd in (self._fd, self._direct_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._direct_fd = None
        self._direct_refused = True

    async def close(self) -> WriterState:
        self._writable()
        self._release()
        return WriterState(self._size)

    async def abandon(self) -> None:
        fd = self._fd
        if fd is None:
            return

        def undo() -> None:
            # Best effort: a resume cuts the file back anyway; this frees the space now.
            with contextlib.suppress(OSError):
                if self._created and self._start == 0:
                    self._path.unlink()
                    remove_if_empty(self._path.parent, self._root)
                else:
                    os.ftruncate(fd, self._start)

        try:
            await asyncio.to_thread(undo)
        finally:
            self._release()
