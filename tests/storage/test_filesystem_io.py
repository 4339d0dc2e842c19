"""What only the filesystem driver does: uploads through the page cache, their pages kept
(the default), or with ``cacheuploads: false`` ``O_DIRECT`` for page-aligned buffers where
the filesystem takes it and the page cache (recycled) otherwise; large direct writes cut
into pieces written at once, and local paths. The bytes are the same whichever way they
go."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

import pytest

from dockyard.storage import filesystem_writer, pagecache
from dockyard.storage.driver import PathNotFoundError, WriterState
from dockyard.storage.factory import create_driver
from dockyard.storage.filesystem import FilesystemDriver, FilesystemParameters
from dockyard.storage.local import LocalFiles

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


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "direct"])
@pytest.mark.parametrize("where", [0, 1], ids=["disk", "tmpfs"])
async def test_direct_and_cached_writes_store_the_same_bytes(
    tmp_path: Path, where: int, cache: bool
) -> None:
    places = roots(tmp_path)
    if where >= len(places):
        pytest.skip("no writable tmpfs at /dev/shm")
    root = places[where]
    try:
        driver = FilesystemDriver(root, cache_uploads=cache)
        buffers = [aligned_buffer(4 * MiB) for _ in range(5)]
        odd = os.urandom(12_345)
        writer = await driver.writer("/u/data")
        for buffer in buffers[:3]:
            await writer.write(buffer)  # aligned: direct where allowed
        await writer.write(odd)  # unaligned tail: through the page cache
        await writer.write(buffers[3])  # now at an unaligned offset: cached
        state = await writer.close()
        writer = await driver.writer("/u/data", state)
        await writer.write(buffers[4])
        state = await writer.close()
        await driver.commit("/u/data", state, "/blob")
        expected = b"".join(map(bytes, buffers[:3])) + odd + bytes(buffers[3]) + bytes(buffers[4])
        assert (root / "blob").read_bytes() == expected
    finally:
        if where:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


async def test_writes_leave_no_descriptor_open(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "store")
    before = len(os.listdir("/proc/self/fd"))
    for number in range(5):
        writer = await driver.writer("/u/data")
        buffers = [aligned_buffer(MiB) for _ in range(4)]
        for buffer in buffers:
            await writer.write(buffer)
        if number % 2:
            await writer.abandon()
            continue
        state = await writer.close()
        await driver.commit("/u/data", state, "/blob")
        data = (tmp_path / "store" / "blob").read_bytes()
        assert data == b"".join(map(bytes, buffers))
    assert len(os.listdir("/proc/self/fd")) == before


def cached_bytes(path: Path) -> int:
    """How many bytes of ``path`` the page cache holds (``mincore`` of a mapping)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vector = (ctypes.c_ubyte * pages)()
    # A private mapping: writable, so ctypes can take its address; never written.
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY) as m:
        first = ctypes.c_char.from_buffer(m)
        result = libc.mincore(ctypes.addressof(first), size, vector)
        del first  # the mapping closes only once nothing points into it
    assert result == 0, os.strerror(ctypes.get_errno())
    return sum(1 for page in vector if page & 1) * mmap.PAGESIZE


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "direct"])
async def test_a_committed_upload_stays_in_the_page_cache_unless_told_not_to(
    tmp_path: Path, cache: bool
) -> None:
    """With ``cacheuploads: true`` the first pull right after a push reads memory: the
    pages written stay cached, also those behind the writer's windows; by default aligned
    buffers go around the cache (``O_DIRECT``) and leave almost nothing there."""
    parameters = FilesystemParameters(rootdirectory=str(tmp_path / "store"), cacheuploads=cache)
    driver = create_driver("filesystem", parameters)
    size = 2 * pagecache.LAG + 4 * pagecache.WINDOW  # past the windows the writer waits for
    writer = await driver.writer("/u/data")
    piece = aligned_buffer(4 * MiB)
    for _ in range(size // len(piece)):
        await writer.write(piece)
    state = await writer.close()
    await driver.commit("/u/data", state, "/blob")
    cached = cached_bytes(tmp_path / "store" / "blob")
    if cache:
        assert cached == size
    else:
        assert cached < size // 4


def test_a_large_direct_write_is_cut_into_aligned_pieces() -> None:
    buffer = aligned_buffer(4 * MiB)
    pieces = filesystem_writer._pieces(buffer, 8 * MiB)
    assert len(pieces) == filesystem_writer.WRITES_IN_FLIGHT
    assert b"".join(bytes(piece) for piece, _ in pieces) == bytes(buffer)
    for piece, offset in pieces:
        assert pagecache.aligned(piece, offset)
    offsets = [offset for _, offset in pieces]
    assert offsets == sorted(offsets) and offsets[0] == 8 * MiB
    odd = aligned_buffer(3 * MiB + 4096 * 3)
    pieces = filesystem_writer._pieces(odd, 4096)
    assert b"".join(bytes(piece) for piece, _ in pieces) == bytes(odd)
    assert all(pagecache.aligned(piece, offset) for piece, offset in pieces)
    # Writes to the page cache, and small ones, go whole.
    cached = os.urandom(4 * MiB)
    assert filesystem_writer._pieces(cached, 0) == [(cached, 0)]
    assert filesystem_writer._pieces(buffer, 0, direct=False) == [(buffer, 0)]
    assert len(filesystem_writer._pieces(buffer, 5)) == 1
    assert len(filesystem_writer._pieces(buffer[: 2 * filesystem_writer.MIN_PIECE - 4096], 0)) == 1


async def test_a_cancelled_write_returns_only_once_its_threads_are_done(tmp_path: Path) -> None:
    """The caller's buffer is free when ``write`` returns, also when it was cancelled:
    a resumed upload is never overwritten by a write still running."""
    driver = FilesystemDriver(tmp_path / "store")
    writer = await driver.writer("/u/data")
    kept = await writer.close()
    for _ in range(20):
        writer = await driver.writer("/u/data", kept)
        task = asyncio.ensure_future(writer.write(aligned_buffer(8 * MiB)))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.abandon()
        writer = await driver.writer("/u/data", kept)
        await writer.write(b"resumed")
        kept = await writer.close()
        assert (tmp_path / "store" / "u" / "data").read_bytes().endswith(b"resumed")
    await driver.commit("/u/data", kept, "/blob")
    assert (tmp_path / "store" / "blob").read_bytes() == b"resumed" * 20


def append_junk(path: Path) -> None:
    with open(path, "ab") as handle:
        handle.write(b"junk")


async def test_resume_and_commit_cut_the_file_back_to_the_kept_size(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "store")
    local = tmp_path / "store" / "_uploads" / "u" / "data"
    writer = await driver.writer("/_uploads/u/data")
    await writer.write(b"kept")
    kept = await writer.close()
    append_junk(local)  # a chunk that failed after its bytes were written
    writer = await driver.writer("/_uploads/u/data", kept)
    assert local.read_bytes() == b"kept"
    await writer.write(b"!")
    state = await writer.close()
    append_junk(local)
    await driver.commit("/_uploads/u/data", state, "/blob")
    assert (tmp_path / "store" / "blob").read_bytes() == b"kept!"
    # The upload's own directory goes with it; its parent stays.
    assert not local.parent.exists() and local.parent.parent.is_dir()


async def test_fewer_bytes_than_kept_means_the_upload_is_lost(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "store")
    state = WriterState(100)
    with pytest.raises(PathNotFoundError):
        await driver.writer("/u/data", state)  # no file at all
    writer = await driver.writer("/u/data")
    await writer.write(b"x" * 10)
    await writer.close()
    with pytest.raises(PathNotFoundError):
        await driver.writer("/u/data", state)
    with pytest.raises(PathNotFoundError):
        await driver.commit("/u/data", state, "/blob")
    assert not (tmp_path / "store" / "blob").exists()
    await driver.abort("/u/data", WriterState(10))
    assert list((tmp_path / "store").iterdir()) == []


async def test_local_files_capability(tmp_path: Path) -> None:
    driver = FilesystemDriver(tmp_path / "store")
    local = driver.capability(LocalFiles)
    assert local is driver
    await driver.put_content("/a/file", b"x")
    assert local.local_path("/a/file") == tmp_path / "store" / "a" / "file"


async def test_delete_many_takes_only_what_each_path_holds(tmp_path: Path) -> None:
    """Blob directories go by their one file ``data``; a directory holding more, a ``data``
    that is a directory, and a link to a directory take the general way: the link goes,
    never what it points to."""
    root = tmp_path / "root"
    driver = FilesystemDriver(root)
    for path in ("/b/blob/data", "/b/more/data", "/b/more/other", "/b/deep/data/x"):
        await driver.put_content(path, b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data").write_bytes(b"kept")
    (root / "b" / "link").symlink_to(outside)
    try:
        failures = await driver.delete_many(["/b/blob", "/b/more", "/b/deep", "/b/link"])
    finally:
        await driver.close()
    assert failures == {}
    assert sorted(p.name for p in (root / "b").iterdir()) == []
    assert (outside / "data").read_bytes() == b"kept"
