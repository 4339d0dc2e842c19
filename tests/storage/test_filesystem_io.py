"""How the filesystem driver writes: ``O_DIRECT`` for page-aligned buffers where the
filesystem takes it, the page cache (recycled) otherwise; the bytes are the same."""

from __future__ import annotations

import asyncio
import mmap
import os
from pathlib import Path

import pytest

from dockyard.storage import pagecache
from dockyard.storage.filesystem import FilesystemDriver

MiB = 1024 * 1024


def aligned_buffer(size: int) -> memoryview:
    buffer = mmap.mmap(-1, size)
    buffer.write(os.urandom(size))
    return memoryview(buffer)


def test_alignment_rules() -> None:
    view = aligned_buffer(2 * 4096)
    assert pagecache.aligned(view, 0)
    assert pagecache.aligned(view, 4096 * 7)
    assert not pagecache.aligned(view, 100)  # offset
    assert not pagecache.aligned(view[: 4096 + 1], 0)  # length
    assert not pagecache.aligned(view[1 : 4096 + 1], 0)  # address
    assert not pagecache.aligned(bytes(view), 0)  # read-only: not a reusable buffer
    assert not pagecache.aligned(view[:0], 0)


def roots(tmp_path: Path) -> list[Path]:
    """A directory on the disk, and one on tmpfs (which refuses O_DIRECT) when present."""
    found = [tmp_path / "disk"]
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        found.append(Path(f"/dev/shm/dockyard-test-{os.getpid()}-{tmp_path.name}"))
    return found


@pytest.mark.parametrize("where", [0, 1], ids=["disk", "tmpfs"])
async def test_direct_and_cached_writes_store_the_same_bytes(tmp_path: Path, where: int) -> None:
    places = roots(tmp_path)
    if where >= len(places):
        pytest.skip("no writable tmpfs at /dev/shm")
    root = places[where]
    try:
        driver = FilesystemDriver(root)
        buffers = [aligned_buffer(4 * MiB) for _ in range(5)]
        odd = os.urandom(12_345)
        writer = await driver.writer("/u/data")
        for buffer in buffers[:3]:
            await writer.write(buffer)  # aligned: direct where allowed
        await writer.write(odd)  # unaligned tail: through the page cache
        await writer.write(buffers[3])  # now at an unaligned offset: cached
        await writer.close()
        writer = await driver.writer("/u/data", append=True)
        await writer.write(buffers[4])
        await writer.commit()
        expected = b"".join(map(bytes, buffers[:3])) + odd + bytes(buffers[3]) + bytes(buffers[4])
        assert (root / "u" / "data").read_bytes() == expected
    finally:
        if where:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def test_recycler_survives_truncation(tmp_path: Path) -> None:
    path = tmp_path / "file"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        recycler = pagecache.PageRecycler(fd, 0)
        data = os.urandom(8 * pagecache.WINDOW)
        os.pwrite(fd, data, 0)
        recycler.written(len(data))
        os.ftruncate(fd, pagecache.WINDOW + 5)
        recycler.truncated(pagecache.WINDOW + 5)
        more = os.urandom(7 * pagecache.WINDOW)
        os.pwrite(fd, more, pagecache.WINDOW + 5)
        recycler.written(pagecache.WINDOW + 5 + len(more))
    finally:
        os.close(fd)
    assert path.read_bytes() == data[: pagecache.WINDOW + 5] + more


async def test_writes_in_flight_together_leave_no_descriptor_open(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "store")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        writer = await driver.writer("/u/data")
        buffers = [aligned_buffer(MiB) for _ in range(4)]
        await asyncio.gather(*(writer.write(buffer) for buffer in buffers))
        await writer.commit()
        data = (tmp_path / "store" / "u" / "data").read_bytes()
        assert data == b"".join(map(bytes, buffers))
    assert len(os.listdir("/proc/self/fd")) == before
