"""Read-ahead before sendfile: a blob that is not in the page cache (written with
``O_DIRECT``, or dropped behind the writer) is asked for ahead of the bytes being sent,
so that the kernel reads it in large pieces while the client is served."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.api import readahead
from tests.pagecache_probe import PAGE, MiB, cold_file, wait_cached


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
