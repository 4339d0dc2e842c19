"""One suite for every storage driver, in the spirit of Distribution's driver testsuites.

Each test runs against every case in ``conftest.DRIVERS``; adding a driver is one line there.
The suite holds the contract of :mod:`dockyard.storage.driver`: paths are checked the same
way by every method, bytes become visible all at once, writers resume, and errors are the
driver's own (``PathNotFoundError``, ``InvalidPathError``), never an ``OSError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mmap
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from dockyard.storage.driver import (
    FileWriter,
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    StorageError,
)

MiB = 1024 * 1024


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def collect(chunks: AsyncIterator[Any]) -> list[Any]:
    return [chunk async for chunk in chunks]


async def read_all(
    driver: StorageDriver, path: str, offset: int = 0, length: int | None = None
) -> bytes:
    return b"".join(await collect(driver.reader(path, offset, length)))


async def write_stream(writer: FileWriter, data: bytes, piece: int = 64 * 1024) -> None:
    for start in range(0, len(data), piece):
        await writer.write(data[start : start + piece])


# -- paths --------------------------------------------------------------------------------

# Distribution's TestValidPaths, plus the longest names every driver must hold.
VALID_PATHS = [
    "/a",
    "/2",
    "/aa",
    "/a.a",
    "/0-9/abcdefg",
    "/abcdefg/z.75",
    "/abc/1.2.3.4.5-6_zyx/123.z/4",
    "/docker/docker-registry",
    "/123.abc",
    "/abc./abc",
    "/.abc",
    "/a--b",
    "/a-.b",
    "/_.abc",
    "/Docker/docker-registry",
    "/Abc/Cba",
    "/...",
    "/" + "n" * 255,
    "/" + "/".join(["d" * 100] * 10),
]

INVALID_PATHS = [
    "",
    "abc",
    "123.abc",
    "//bcd",
    "/abc_123/",
    "/a//b",
    "/.",
    "/..",
    "/a/.",
    "/a/..",
    "/a/./b",
    "/a/../b",
    "/../etc/passwd",
    "/a b",
    "/a\tb",
    "/a\nb",
    "/a\x00b",
    "/a\\b",
    "/a:b",
    "/a*b",
    "/a?b",
    "/a%2fb",
    "/é",
    "/日本",
    "/a\u200bb",
    "/\uff41",  # fullwidth a
    "/" + "/".join(["d" * 100] * 41),  # over 4096 characters
]

# Every way into a driver, each taking the path under test.
OPERATIONS: dict[str, Callable[[StorageDriver, str], Awaitable[Any]]] = {
    "get_content": lambda d, p: d.get_content(p),
    "put_content": lambda d, p: d.put_content(p, b"data"),
    "reader": lambda d, p: read_all(d, p),
    "reader-offset": lambda d, p: read_all(d, p, 1, 1),
    "writer": lambda d, p: d.writer(p),
    "writer-append": lambda d, p: d.writer(p, append=True),
    "stat": lambda d, p: d.stat(p),
    "list": lambda d, p: d.list(p),
    "move-source": lambda d, p: d.move(p, "/moved"),
    "move-destination": lambda d, p: d.move("/existing", p),
    "delete": lambda d, p: d.delete(p),
    "walk": lambda d, p: collect(d.walk(p)),
}
# "/" is the root directory: it may be listed, walked and stat'ed, never used as a file.
FILE_OPERATIONS = [name for name in OPERATIONS if name not in ("stat", "list", "walk")]


@pytest.mark.parametrize("path", VALID_PATHS)
async def test_valid_paths_round_trip(driver: StorageDriver, path: str) -> None:
    contents = random_bytes(64)
    await driver.put_content(path, contents)
    assert await driver.get_content(path) == contents
    assert await driver.stat(path) == len(contents)
    parent = path.rsplit("/", 1)[0] or "/"
    assert path in await driver.list(parent)
    assert await collect(driver.walk("/")) == [path]


@pytest.mark.parametrize(
    "path",
    ["/" + "n" * 256, "/dir/" + "n" * 1000, "/" + "/".join(["d" * 200] * 20)],
    ids=["name-256", "name-1000", "path-4020"],
)
async def test_over_long_paths_round_trip_or_are_refused(driver: StorageDriver, path: str) -> None:
    """Backends limit names and paths differently (a filesystem: 255 and 4096 bytes); past
    the limit a driver refuses the path as invalid, never with an OSError."""
    try:
        await driver.put_content(path, b"long")
    except InvalidPathError:
        with pytest.raises(InvalidPathError):
            await driver.get_content(path)
        with pytest.raises(InvalidPathError):
            await driver.writer(path)
        assert await collect(driver.walk("/")) == []
        return
    assert await driver.get_content(path) == b"long"
    writer = await driver.writer(path, append=True)
    await writer.write(b"er")
    await writer.commit()
    assert await read_all(driver, path) == b"longer"


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_invalid_paths_are_refused_by_every_method(
    driver: StorageDriver, operation: str
) -> None:
    await driver.put_content("/existing", b"kept")
    accepted = []
    for path in INVALID_PATHS:
        try:
            await OPERATIONS[operation](driver, path)
        except InvalidPathError as exc:
            assert isinstance(exc, StorageError)
            assert exc.path == path
        else:
            accepted.append(path)
    assert accepted == []
    # Nothing was created, moved or deleted on the way.
    assert await collect(driver.walk("/")) == ["/existing"]
    assert await driver.get_content("/existing") == b"kept"


@pytest.mark.parametrize("operation", FILE_OPERATIONS)
async def test_root_is_not_a_file(driver: StorageDriver, operation: str) -> None:
    await driver.put_content("/existing", b"kept")
    with pytest.raises(InvalidPathError):
        await OPERATIONS[operation](driver, "/")
    assert await collect(driver.walk("/")) == ["/existing"]
    assert await driver.get_content("/existing") == b"kept"


async def test_root_can_be_listed_stated_and_walked(driver: StorageDriver) -> None:
    assert await driver.list("/") == []
    assert await driver.stat("/") is None
    assert await collect(driver.walk("/")) == []
    await driver.put_content("/top/file", b"x")
    assert await driver.list("/") == ["/top"]
    assert await driver.stat("/") is None


async def test_local_path_is_checked_or_absent(driver: StorageDriver) -> None:
    for path in INVALID_PATHS:
        with contextlib.suppress(InvalidPathError):
            assert driver.local_path(path) is None
    await driver.put_content("/served/file", b"sendfile me")
    local = driver.local_path("/served/file")
    if local is not None:
        assert local.read_bytes() == b"sendfile me"


async def test_redirect_url_is_optional(driver: StorageDriver) -> None:
    await driver.put_content("/blob", b"x")
    for method in ("GET", "HEAD"):
        url = await driver.redirect_url("/blob", method)
        assert url is None or url.startswith(("http://", "https://"))


# -- whole content ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "contents",
    [b"", b"a", "ß".encode(), b"\x80\x80\x80\x80", random_bytes(32), random_bytes(MiB + 7)],
    ids=["empty", "one-byte", "utf8", "non-utf8", "small", "one-mib"],
)
async def test_put_and_get_content(driver: StorageDriver, contents: bytes) -> None:
    await driver.put_content("/content/file", contents)
    assert await driver.get_content("/content/file") == contents
    assert await driver.stat("/content/file") == len(contents)
    assert await read_all(driver, "/content/file") == contents


async def test_put_content_replaces_the_whole_file(driver: StorageDriver) -> None:
    await driver.put_content("/file", random_bytes(4096, seed=1))
    smaller = random_bytes(2048, seed=2)
    await driver.put_content("/file", smaller)
    assert await driver.get_content("/file") == smaller
    await driver.put_content("/file", b"")
    assert await driver.get_content("/file") == b""
    assert await driver.stat("/file") == 0


async def test_concurrent_puts_to_one_path_leave_one_whole_content(driver: StorageDriver) -> None:
    contents = [bytes([i]) * (256 * 1024) for i in range(8)]
    await asyncio.gather(*(driver.put_content("/contended", c) for c in contents))
    assert await driver.get_content("/contended") in contents


@pytest.mark.parametrize("path", ["/missing", "/missing/deeper", "/file/child"])
async def test_missing_paths_are_not_found(driver: StorageDriver, path: str) -> None:
    await driver.put_content("/file", b"x")
    with pytest.raises(PathNotFoundError) as caught:
        await driver.get_content(path)
    assert caught.value.path == path
    with pytest.raises(PathNotFoundError):
        await read_all(driver, path)
    with pytest.raises(PathNotFoundError):
        await read_all(driver, path, offset=64)
    assert await driver.stat(path) is None


async def test_a_directory_has_no_content(driver: StorageDriver) -> None:
    await driver.put_content("/dir/file", b"x")
    with pytest.raises(PathNotFoundError):
        await driver.get_content("/dir")
    with pytest.raises(PathNotFoundError):
        await read_all(driver, "/dir")


# -- reader -------------------------------------------------------------------------------


async def test_reader_with_offset_and_length(driver: StorageDriver) -> None:
    one, two, three = random_bytes(32, 1), random_bytes(32, 2), random_bytes(32, 3)
    await driver.put_content("/offsets", one + two + three)
    assert await read_all(driver, "/offsets") == one + two + three
    assert await read_all(driver, "/offsets", 32) == two + three
    assert await read_all(driver, "/offsets", 64) == three
    assert await read_all(driver, "/offsets", 32, 32) == two
    assert await read_all(driver, "/offsets", 10, 5) == (one + two)[10:15]
    assert await read_all(driver, "/offsets", 95) == three[-1:]  # the N-1 boundary
    assert await read_all(driver, "/offsets", 96) == b""  # at the end: nothing, no error
    assert await read_all(driver, "/offsets", 500) == b""
    assert await read_all(driver, "/offsets", 90, 100) == three[-6:]  # length past the end
    assert await read_all(driver, "/offsets", 0, 0) == b""


@pytest.mark.parametrize(("offset", "length"), [(-1, None), (0, -1), (-10, 5)])
async def test_reader_refuses_negative_offsets_and_lengths(
    driver: StorageDriver, offset: int, length: int | None
) -> None:
    await driver.put_content("/file", b"0123456789")
    with pytest.raises(ValueError):
        await read_all(driver, "/file", offset, length)


async def test_large_content_is_streamed_in_chunks(driver: StorageDriver) -> None:
    size = 5 * MiB + 123
    contents = random_bytes(size, seed=7)
    writer = await driver.writer("/large/blob")
    await write_stream(writer, contents)
    assert writer.size == size
    await writer.commit()
    assert await driver.stat("/large/blob") == size

    hasher = hashlib.sha256()
    pieces = 0
    async for chunk in driver.reader("/large/blob"):
        assert 0 < len(chunk) <= size // 4, "the reader must stream, not load the blob whole"
        hasher.update(chunk)
        pieces += 1
    assert pieces >= 4
    assert hasher.hexdigest() == hashlib.sha256(contents).hexdigest()

    start, length = MiB - 10, 2 * MiB + 20  # across chunk boundaries
    assert await read_all(driver, "/large/blob", start, length) == contents[start:][:length]
    assert await read_all(driver, "/large/blob", size - 5) == contents[-5:]


async def test_concurrent_readers_of_one_file(driver: StorageDriver) -> None:
    contents = random_bytes(3 * MiB, seed=3)
    await driver.put_content("/shared", contents)
    offsets = random.Random(0).sample(range(len(contents)), 10)
    results = await asyncio.gather(*(read_all(driver, "/shared", o) for o in offsets))
    for offset, result in zip(offsets, results, strict=True):
        assert result == contents[offset:]


# -- writer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "contents",
    [b"a", "ß".encode(), random_bytes(32), random_bytes(MiB)],
    ids=lambda contents: f"{len(contents)}-bytes",
)
async def test_writer_commit_then_read(driver: StorageDriver, contents: bytes) -> None:
    writer = await driver.writer("/stream/file")
    assert writer.size == 0
    await write_stream(writer, contents)
    assert writer.size == len(contents)
    await writer.commit()
    assert await read_all(driver, "/stream/file") == contents
    assert await driver.get_content("/stream/file") == contents


@pytest.mark.parametrize("chunk_size", [32, MiB + 3], ids=["small", "large"])
async def test_writer_appends_across_close_and_reopen(
    driver: StorageDriver, chunk_size: int
) -> None:
    chunks = [random_bytes(chunk_size, seed) for seed in range(3)]
    writer = await driver.writer("/upload/data")
    await writer.write(chunks[0])
    await writer.close()
    assert writer.size == chunk_size

    writer = await driver.writer("/upload/data", append=True)
    assert writer.size == chunk_size
    await writer.write(chunks[1])
    await writer.close()
    assert writer.size == 2 * chunk_size
    assert await driver.stat("/upload/data") == 2 * chunk_size

    writer = await driver.writer("/upload/data", append=True)
    assert writer.size == 2 * chunk_size
    await writer.write(chunks[2])
    await writer.commit()
    assert await driver.get_content("/upload/data") == b"".join(chunks)


async def test_zero_byte_write_then_append(driver: StorageDriver) -> None:
    writer = await driver.writer("/zero")
    await writer.write(b"")
    await writer.close()
    assert await driver.stat("/zero") == 0
    writer = await driver.writer("/zero", append=True)
    assert writer.size == 0
    await writer.write(b"abc")
    await writer.commit()
    assert await driver.get_content("/zero") == b"abc"


async def test_zero_byte_content_then_append(driver: StorageDriver) -> None:
    await driver.put_content("/zero", b"")
    writer = await driver.writer("/zero", append=True)
    assert writer.size == 0
    await writer.write(b"abc")
    await writer.commit()
    assert await driver.get_content("/zero") == b"abc"


async def test_append_to_a_missing_file_starts_it(driver: StorageDriver) -> None:
    writer = await driver.writer("/new/file", append=True)
    assert writer.size == 0
    await writer.write(b"first")
    await writer.commit()
    assert await driver.get_content("/new/file") == b"first"


async def test_writer_without_append_starts_over(driver: StorageDriver) -> None:
    await driver.put_content("/file", b"old contents")
    writer = await driver.writer("/file")
    assert writer.size == 0
    await writer.write(b"new")
    await writer.commit()
    assert await driver.get_content("/file") == b"new"


async def test_truncate_drops_a_failed_chunk(driver: StorageDriver) -> None:
    writer = await driver.writer("/upload")
    await writer.write(b"good chunk|")
    kept = writer.size
    await writer.write(b"half a bad chu")
    await writer.truncate(kept)
    assert writer.size == kept
    await writer.write(b"next chunk")
    await writer.close()
    assert await driver.get_content("/upload") == b"good chunk|next chunk"

    writer = await driver.writer("/upload", append=True)
    await writer.truncate(4)
    assert writer.size == 4
    await writer.close()
    writer = await driver.writer("/upload", append=True)
    assert writer.size == 4
    await writer.truncate(0)
    await writer.commit()
    assert await driver.get_content("/upload") == b""


@pytest.mark.parametrize("size", [-1, 11, 1000])
async def test_truncate_only_shrinks(driver: StorageDriver, size: int) -> None:
    writer = await driver.writer("/upload")
    await writer.write(b"0123456789")
    with pytest.raises(ValueError):
        await writer.truncate(size)
    assert writer.size == 10
    await writer.commit()
    assert await driver.get_content("/upload") == b"0123456789"


async def test_cancel_discards_the_file(driver: StorageDriver) -> None:
    writer = await driver.writer("/upload")
    await writer.write(b"part one")
    await writer.close()
    writer = await driver.writer("/upload", append=True)
    await writer.write(b"part two")
    await writer.cancel()
    assert await driver.stat("/upload") is None
    with pytest.raises(PathNotFoundError):
        await driver.get_content("/upload")
    assert "/upload" not in await driver.list("/")


async def test_closed_writer_refuses_more(driver: StorageDriver) -> None:
    writer = await driver.writer("/file")
    await writer.write(b"abc")
    await writer.close()
    await writer.close()  # closing twice is harmless
    with pytest.raises(ValueError):
        await writer.write(b"more")
    with pytest.raises(ValueError):
        await writer.truncate(1)
    assert await driver.get_content("/file") == b"abc"


async def test_committed_writer_refuses_more(driver: StorageDriver) -> None:
    writer = await driver.writer("/file")
    await writer.write(b"abc")
    await writer.commit()
    with pytest.raises(ValueError):
        await writer.write(b"more")
    assert await driver.get_content("/file") == b"abc"


async def test_concurrent_writers_to_different_paths(driver: StorageDriver) -> None:
    count, pieces = 16, 16
    contents = {f"/concurrent/{i:02d}/data": random_bytes(pieces * 4096, i) for i in range(count)}

    async def write(path: str, data: bytes) -> None:
        writer = await driver.writer(path)
        for start in range(0, len(data), 4096):
            await writer.write(data[start : start + 4096])
            await asyncio.sleep(0)  # let the other writers interleave
        await writer.commit()

    await asyncio.gather(*(write(path, data) for path, data in contents.items()))
    for path, data in contents.items():
        assert await driver.get_content(path) == data
    assert await collect(driver.walk("/concurrent")) == sorted(contents)


# -- stat and list ------------------------------------------------------------------------


async def test_stat_of_files_directories_and_missing_paths(driver: StorageDriver) -> None:
    await driver.put_content("/dir/sub/file", random_bytes(4096))
    await driver.put_content("/dir/empty", b"")
    assert await driver.stat("/dir/sub/file") == 4096
    assert await driver.stat("/dir/empty") == 0
    assert await driver.stat("/dir") is None
    assert await driver.stat("/dir/sub") is None
    assert await driver.stat("/dir/missing") is None
    assert await driver.stat("/dir/sub/file/child") is None


async def test_list_gives_direct_children_sorted_with_full_paths(driver: StorageDriver) -> None:
    rng = random.Random(5)
    names = {f"child-{rng.randrange(10**9):09d}" for _ in range(50)}
    for name in names:
        await driver.put_content(f"/root/parent/{name}", b"x")
    await driver.put_content("/root/parent/nested/deeper/file", b"x")
    await driver.put_content("/root/parent/nested/file", b"x")
    await driver.put_content("/root/parent-sibling", b"x")

    assert await driver.list("/") == ["/root"]
    assert await driver.list("/root") == ["/root/parent", "/root/parent-sibling"]
    expected = sorted([f"/root/parent/{name}" for name in names] + ["/root/parent/nested"])
    assert await driver.list("/root/parent") == expected
    assert await driver.list("/root/parent/nested") == [
        "/root/parent/nested/deeper",
        "/root/parent/nested/file",
    ]


async def test_list_of_a_file_or_a_missing_directory_is_empty(driver: StorageDriver) -> None:
    await driver.put_content("/dir/file", b"x")
    assert await driver.list("/dir/file") == []
    assert await driver.list("/missing") == []
    assert await driver.list("/dir/file/below") == []


async def test_list_does_not_confuse_prefixes(driver: StorageDriver) -> None:
    await driver.put_content("/d/a/x", b"1")
    await driver.put_content("/d/ab/y", b"2")
    await driver.put_content("/d/a-c", b"3")
    assert await driver.list("/d/a") == ["/d/a/x"]
    assert await driver.list("/d") == ["/d/a", "/d/a-c", "/d/ab"]


# -- move ---------------------------------------------------------------------------------


async def test_move(driver: StorageDriver) -> None:
    contents = random_bytes(32)
    await driver.put_content("/uploads/x/data", contents)
    await driver.move("/uploads/x/data", "/blobs/sha256/ab/abcd/data")
    assert await driver.get_content("/blobs/sha256/ab/abcd/data") == contents
    with pytest.raises(PathNotFoundError):
        await driver.get_content("/uploads/x/data")
    assert await driver.stat("/uploads/x/data") is None


async def test_move_replaces_the_destination(driver: StorageDriver) -> None:
    source, destination = random_bytes(32, 1), random_bytes(64, 2)
    await driver.put_content("/source", source)
    await driver.put_content("/destination", destination)
    await driver.move("/source", "/destination")
    assert await driver.get_content("/destination") == source
    assert await driver.stat("/source") is None


async def test_move_of_a_missing_source_changes_nothing(driver: StorageDriver) -> None:
    await driver.put_content("/destination", b"kept")
    with pytest.raises(PathNotFoundError) as caught:
        await driver.move("/missing", "/destination")
    assert caught.value.path == "/missing"
    assert await driver.get_content("/destination") == b"kept"


async def test_move_from_under_a_file_fails(driver: StorageDriver) -> None:
    await driver.put_content("/notadir", b"x")
    with pytest.raises(PathNotFoundError):
        await driver.move("/notadir/foo", "/notadir/bar")
    assert await driver.get_content("/notadir") == b"x"


async def test_move_onto_itself_keeps_the_file(driver: StorageDriver) -> None:
    await driver.put_content("/same", b"kept")
    await driver.move("/same", "/same")
    assert await driver.get_content("/same") == b"kept"


async def test_moved_file_keeps_appended_data(driver: StorageDriver) -> None:
    writer = await driver.writer("/uploads/u/data")
    await writer.write(b"chunk one,")
    await writer.close()
    writer = await driver.writer("/uploads/u/data", append=True)
    await writer.write(b"chunk two")
    await writer.commit()
    await driver.move("/uploads/u/data", "/blobs/b/data")
    assert await driver.get_content("/blobs/b/data") == b"chunk one,chunk two"


# -- delete -------------------------------------------------------------------------------


async def test_delete_a_file(driver: StorageDriver) -> None:
    await driver.put_content("/dir/one", b"1")
    await driver.put_content("/dir/two", b"2")
    await driver.delete("/dir/one")
    with pytest.raises(PathNotFoundError):
        await driver.get_content("/dir/one")
    assert await driver.get_content("/dir/two") == b"2"
    assert await driver.list("/dir") == ["/dir/two"]
    with pytest.raises(PathNotFoundError) as caught:
        await driver.delete("/dir/one")
    assert caught.value.path == "/dir/one"


async def test_delete_a_tree(driver: StorageDriver) -> None:
    for path in ("/tree/a", "/tree/b/c", "/tree/b/d/e", "/treetop", "/tree-x/f"):
        await driver.put_content(path, b"x")
    await driver.delete("/tree")
    for path in ("/tree/a", "/tree/b/c", "/tree/b/d/e"):
        assert await driver.stat(path) is None
    assert await driver.list("/tree") == []
    assert await collect(driver.walk("/")) == ["/tree-x/f", "/treetop"]
    assert "/tree" not in await driver.list("/")


async def test_delete_only_deletes_subpaths(driver: StorageDriver) -> None:
    await driver.put_content("/dir/file", b"1")
    await driver.put_content("/dir/filesuffix", b"2")
    await driver.put_content("/dir/dir/file", b"3")
    await driver.put_content("/dir/dirsuffix/file", b"4")
    await driver.delete("/dir/file")
    assert await driver.get_content("/dir/filesuffix") == b"2"
    await driver.delete("/dir/dir")
    assert await driver.stat("/dir/dir/file") is None
    assert await driver.get_content("/dir/dirsuffix/file") == b"4"


async def test_delete_of_a_missing_path(driver: StorageDriver) -> None:
    with pytest.raises(PathNotFoundError):
        await driver.delete("/missing")
    await driver.put_content("/file", b"x")
    with pytest.raises(PathNotFoundError):
        await driver.delete("/file/child")
    assert await driver.get_content("/file") == b"x"


# -- walk ---------------------------------------------------------------------------------


async def test_walk_yields_every_file_depth_first(driver: StorageDriver) -> None:
    files = ["/w/a/1", "/w/a/2", "/w/a/deep/er/3", "/w/a-x/4", "/w/b", "/w/empty-file", "/x/5"]
    for path in reversed(files):
        await driver.put_content(path, b"" if "empty" in path else b"x")
    assert await collect(driver.walk("/w")) == files[:-1]
    assert await collect(driver.walk("/w/a")) == ["/w/a/1", "/w/a/2", "/w/a/deep/er/3"]
    assert await collect(driver.walk("/")) == files
    assert await collect(driver.walk("/missing")) == []


def page_aligned(size: int, seed: int) -> memoryview:
    """A writable, page-aligned buffer (what a taken-over request body is made of)."""
    buffer = mmap.mmap(-1, size)
    buffer.write(random_bytes(size, seed))
    return memoryview(buffer)


async def test_writes_in_flight_together_land_in_call_order(driver: StorageDriver) -> None:
    head = random_bytes(4096, 1)
    views = [page_aligned(256 * 1024, seed) for seed in range(3)]
    tail = random_bytes(1000, 9)
    writer = await driver.writer("/upload/data")
    await writer.write(head)
    await asyncio.gather(*(writer.write(view) for view in views), writer.write(tail))
    assert writer.size == 4096 + 3 * 256 * 1024 + 1000
    await writer.close()
    # An aligned buffer at an unaligned offset, then after a truncate.
    writer = await driver.writer("/upload/data", append=True)
    await writer.write(views[0])
    await writer.truncate(writer.size - 10)
    await writer.write(views[1])
    await writer.commit()
    expected = head + b"".join(map(bytes, views)) + tail
    expected = expected + bytes(views[0])[:-10] + bytes(views[1])
    assert await driver.get_content("/upload/data") == expected


async def test_many_mebibytes_written_then_truncated_read_back(driver: StorageDriver) -> None:
    pieces = [page_aligned(4 * MiB, seed) for seed in range(6)]
    writer = await driver.writer("/upload/big")
    for piece in pieces:
        await writer.write(piece)
    await writer.truncate(9 * MiB + 1)
    await writer.write(b"end")
    await writer.commit()
    data = await driver.get_content("/upload/big")
    assert data == b"".join(map(bytes, pieces))[: 9 * MiB + 1] + b"end"
