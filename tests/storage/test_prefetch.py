"""The read-back after a commit: a blob written around the page cache (``O_DIRECT``) is in
the cache again soon after its commit, so that the first pull right after a push is
served from memory, as later pulls are."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.storage import prefetch
from dockyard.storage.filesystem import FilesystemDriver
from tests.pagecache_probe import PAGE, MiB, cached_pages, cold_file, wait_cached
from tests.storage.test_filesystem_io import aligned_buffer


def resident(path: Path, size: int) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return cached_pages(fd, 0, size)
    finally:
        os.close(fd)


async def test_a_direct_upload_is_in_the_page_cache_after_its_commit(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "store")
    size = 4 * prefetch.PIECE + 3 * MiB
    writer = await driver.writer("/_uploads/u/data")
    for _ in range(size // (4 * MiB)):
        await writer.write(aligned_buffer(4 * MiB))
    tail = os.urandom(size % (4 * MiB))
    await writer.write(tail)
    state = await writer.close()
    upload = tmp_path / "store" / "_uploads" / "u" / "data"
    if resident(upload, size) > size // PAGE // 2:
        pytest.skip("this filesystem took the writes through the page cache")
    await driver.commit("/_uploads/u/data", state, "/blobs/b/data")
    prefetch.PREFETCHER.wait_idle()
    blob = tmp_path / "store" / "blobs" / "b" / "data"
    fd = os.open(blob, os.O_RDONLY)
    try:
        assert wait_cached(fd, 0, size) == size // PAGE
    finally:
        os.close(fd)
    assert blob.read_bytes()[-len(tail) :] == tail


def test_only_the_first_limit_bytes_are_read_back(tmp_path: Path) -> None:
    size = 3 * prefetch.PIECE
    path = tmp_path / "blob"
    os.close(cold_file(path, size))
    reader = prefetch.Prefetcher(limit=prefetch.PIECE)
    reader.schedule(path, size)
    reader.wait_idle()
    fd = os.open(path, os.O_RDONLY)
    try:
        assert wait_cached(fd, 0, prefetch.PIECE) == prefetch.PIECE // PAGE
        # The kernel may read a little past the range, never the rest of the file.
        assert cached_pages(fd, 2 * prefetch.PIECE, prefetch.PIECE) < prefetch.PIECE // PAGE // 4
    finally:
        os.close(fd)


def test_a_full_queue_and_a_vanished_file_are_only_missed_hints(tmp_path: Path) -> None:
    reader = prefetch.Prefetcher(queued=1)
    for number in range(50):  # more than the queue holds: the rest are skipped at once
        reader.schedule(tmp_path / f"gone-{number}", MiB)
    reader.wait_idle()
    reader.schedule(tmp_path / "empty", 0)  # nothing to read
    reader.wait_idle()


def test_a_forked_process_reads_back_in_a_thread_of_its_own(tmp_path: Path) -> None:
    """Workers are forked from the parent: the parent's thread is not in the child."""
    size = prefetch.PIECE
    path = tmp_path / "blob"
    os.close(cold_file(path, size))
    reader = prefetch.Prefetcher()
    reader.schedule(tmp_path / "gone", MiB)  # the parent's thread runs
    reader.wait_idle()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome is its exit status
        status = 1
        try:
            reader.schedule(path, size)
            reader.wait_idle()
            fd = os.open(path, os.O_RDONLY)
            status = 0 if wait_cached(fd, 0, size) == size // PAGE else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_reader_thread_yields_to_everything_else(tmp_path: Path) -> None:
    """The read-back shares the cores and the disk with the uploads still running: its
    thread runs at the lowest CPU priority and in the idle I/O class."""
    reader = prefetch.Prefetcher()
    reader.schedule(tmp_path / "gone", MiB)
    reader.wait_idle()
    thread = reader._thread
    assert thread is not None and thread.native_id is not None
    assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == prefetch.LOWEST_NICE
    ionice = shutil.which("ionice")
    if ionice is None or platform.machine() not in ("x86_64", "aarch64"):
        return
    shown = subprocess.run([ionice, "-p", str(thread.native_id)], capture_output=True, text=True)
    assert shown.stdout.strip() == "idle", shown
