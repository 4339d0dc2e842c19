"""Read-ahead before sendfile: a blob that is not in the page cache (written with
``O_DIRECT``, or dropped behind the writer) is asked for ahead of the bytes being sent,
so that the kernel reads it in large pieces while the client is served."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import time
from pathlib import Path

from dockyard.api import readahead

MiB = 1024 * 1024
PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]  # fmt: skip
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def cached_pages(fd: int, offset: int, length: int) -> int:
    """How many pages of ``length`` bytes at ``offset`` are in the page cache (mincore)."""
    address = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
    assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (length + PAGE - 1) // PAGE
        vector = ctypes.create_string_buffer(pages)
        assert _libc.mincore(address, length, vector) == 0
        return sum(byte & 1 for byte in vector.raw)
    finally:
        _libc.munmap(address, length)


def cold_file(path: Path, size: int) -> int:
    """A file of ``size`` random bytes on disk and out of the page cache; its descriptor."""
    with path.open("wb") as out:
        for _ in range(size // MiB):
            out.write(os.urandom(MiB))
        out.flush()
        os.fdatasync(out.fileno())
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)
    assert cached_pages(fd, 0, size) < size // PAGE // 10, "the filesystem keeps the pages"
    return fd


def wait_cached(fd: int, offset: int, length: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (found := cached_pages(fd, offset, length)) < length // PAGE:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return found


def test_will_need_reads_a_whole_range_not_only_the_first_piece(tmp_path: Path) -> None:
    """One ``posix_fadvise(WILLNEED)`` reads at most the device's read-ahead size on Linux:
    a range larger than that is asked for piece by piece."""
    size = 3 * readahead.PIECE
    fd = cold_file(tmp_path / "blob", size)
    try:
        readahead.will_need(fd, 0, size)
        assert wait_cached(fd, 0, size) == size // PAGE
    finally:
        os.close(fd)


def test_read_ahead_follows_the_reader(tmp_path: Path) -> None:
    size = 2 * readahead.AHEAD + readahead.PIECE
    fd = cold_file(tmp_path / "blob", size)
    try:
        ahead = readahead.ReadAhead(fd, 0, size)
        ahead.at(0)
        assert wait_cached(fd, 0, readahead.AHEAD) == readahead.AHEAD // PAGE
        ahead.at(size - readahead.PIECE)  # near the end: the rest, up to the end
        assert wait_cached(fd, 0, size) == size // PAGE
    finally:
        os.close(fd)


def test_a_bad_descriptor_is_only_a_missed_hint() -> None:
    readahead.will_need(-1, 0, MiB)
