"""Page-cache residency of a file (``mincore``), for the tests of read-ahead and prefetch."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import time
from pathlib import Path

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
