"""One suite for every storage driver, in the spirit of Distribution's driver testsuites.

Each test runs against every case in ``conftest.DRIVERS``; adding a driver is one line there.
The suite holds the contract of :mod:`dockyard.storage.driver` and nothing more: paths are
checked the same way by every method, bytes become visible all at once, an upload appends
in order and resumes from the state its caller kept (what was written past it is gone),
commits to a destination or aborts leaving nothing behind, and errors are the driver's
own (``PathNotFoundError``, ``InvalidPathError``), never an ``OSError``. What only one
driver does (the filesystem's ``O_DIRECT``, its writes in flight) is tested beside it.
"""

from __future__ import annotations

import asyncio
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
    WriterState,
)
from dockyard.storage.local import LocalFiles

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


async def upload(
    driver: StorageDriver, path: str, data: bytes, resume: WriterState | None = None
) -> WriterState:
    """Append ``data`` to the upload at ``path`` (a new one, or ``resume``); its new state."""
    writer = await driver.writer(path, resume)
    await write_stream(writer, data)
    return await writer.close()


async def commit_new_upload(driver: StorageDriver, destination: str) -> None:
    """Commit an empty upload to ``destination`` (the way into a file through a writer)."""
    state = await upload(driver, "/commit-source/data", b"")
    try:
        await driver.commit("/commit-source/data", state, destination)
    finally:
        await driver.abort("/commit-source/data", state)


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
    "writer-resume": lambda d, p: d.writer(p, WriterState(3, b"state")),
    "writer-destination": lambda d, p: d.writer("/upload", destination=p),
    "commit-source": lambda d, p: d.commit(p, WriterState(), "/committed"),
    "commit-destination": commit_new_upload,
    "abort": lambda d, p: d.abort(p, WriterState()),
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
    state = await upload(driver, path, b"longer")
    await driver.commit(path, state, path)
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


async def test_local_files_are_checked_or_absent(driver: StorageDriver) -> None:
    local = driver.capability(LocalFiles)
    if local is None:
        return  # an optional power: a driver without it is complete
    for path in [*INVALID_PATHS, "/"]:
        with pytest.raises(InvalidPathError):
            local.local_path(path)
    await driver.put_content("/served/file", b"sendfile me")
    assert local.local_path("/served/file").read_bytes() == b"sendfile me"


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
    state = await upload(driver, "/upload/data", contents)
    assert state.size == size
    await driver.commit("/upload/data", state, "/large/blob")
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


# -- uploads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "contents",
    [b"", b"a", "ß".encode(), random_bytes(32), random_bytes(MiB)],
    ids=lambda contents: f"{len(contents)}-bytes",
)
async def test_upload_committed_to_a_destination(driver: StorageDriver, contents: bytes) -> None:
    writer = await driver.writer("/uploads/u/data")
    assert writer.size == 0
    await write_stream(writer, contents)
    assert writer.size == len(contents)
    state = await writer.close()
    assert state.size == len(contents)
    await driver.commit("/uploads/u/data", state, "/blobs/b/data")
    assert await read_all(driver, "/blobs/b/data") == contents
    assert await driver.get_content("/blobs/b/data") == contents
    # Nothing of the upload is left.
    assert await driver.stat("/uploads/u/data") is None
    assert await driver.list("/uploads") == []
    assert await collect(driver.walk("/")) == ["/blobs/b/data"]


@pytest.mark.parametrize("chunk_size", [32, MiB + 3], ids=["small", "large"])
async def test_upload_resumes_from_the_kept_state(driver: StorageDriver, chunk_size: int) -> None:
    chunks = [random_bytes(chunk_size, seed) for seed in range(3)]
    state = await upload(driver, "/uploads/u/data", chunks[0])
    assert state.size == chunk_size
    for number, chunk in enumerate(chunks[1:], start=1):
        writer = await driver.writer("/uploads/u/data", state)
        assert writer.size == number * chunk_size
        await writer.write(chunk)
        state = await writer.close()
        assert state.size == (number + 1) * chunk_size
    await driver.commit("/uploads/u/data", state, "/blobs/b/data")
    assert await driver.get_content("/blobs/b/data") == b"".join(chunks)


async def test_what_was_written_past_the_kept_state_is_discarded(driver: StorageDriver) -> None:
    kept = await upload(driver, "/uploads/u/data", b"good chunk|")
    # A chunk whose state the caller never kept (it failed after its bytes were written).
    await upload(driver, "/uploads/u/data", b"half a bad chu", kept)
    writer = await driver.writer("/uploads/u/data", kept)
    assert writer.size == len(b"good chunk|")
    await writer.write(b"next chunk")
    state = await writer.close()
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == b"good chunk|next chunk"


async def test_commit_takes_only_the_kept_bytes(driver: StorageDriver) -> None:
    kept = await upload(driver, "/uploads/u/data", b"verified")
    await upload(driver, "/uploads/u/data", b" and more that was not", kept)
    await driver.commit("/uploads/u/data", kept, "/blob")
    assert await driver.get_content("/blob") == b"verified"
    assert await driver.list("/uploads") == []


async def test_abandon_keeps_nothing_the_writer_appended(driver: StorageDriver) -> None:
    kept = await upload(driver, "/uploads/u/data", b"kept|")
    writer = await driver.writer("/uploads/u/data", kept)
    await writer.write(random_bytes(MiB + 1))
    await writer.abandon()
    await writer.abandon()  # twice is harmless
    writer = await driver.writer("/uploads/u/data", kept)
    assert writer.size == len(b"kept|")
    await writer.write(b"next")
    state = await writer.close()
    await writer.abandon()  # after close: changes nothing
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == b"kept|next"


async def test_an_abandoned_new_upload_leaves_nothing(driver: StorageDriver) -> None:
    writer = await driver.writer("/uploads/u/data")
    await writer.write(b"never kept")
    await writer.abandon()
    assert await collect(driver.walk("/")) == []
    assert await driver.list("/uploads") == []


async def test_abort_discards_the_upload(driver: StorageDriver) -> None:
    state = await upload(driver, "/uploads/u/data", b"part one")
    state = await upload(driver, "/uploads/u/data", b"part two", state)
    await driver.abort("/uploads/u/data", state)
    assert await collect(driver.walk("/")) == []
    assert await driver.list("/uploads") == []
    with pytest.raises(PathNotFoundError):
        await driver.writer("/uploads/u/data", state)
    with pytest.raises(PathNotFoundError):
        await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.stat("/blob") is None
    await driver.abort("/uploads/u/data", state)  # again: harmless
    await driver.abort("/uploads/never/data", WriterState())  # never written: harmless


async def test_a_committed_upload_is_gone(driver: StorageDriver) -> None:
    state = await upload(driver, "/uploads/u/data", b"once")
    await driver.commit("/uploads/u/data", state, "/blob")
    with pytest.raises(PathNotFoundError):
        await driver.writer("/uploads/u/data", state)
    with pytest.raises(PathNotFoundError):
        await driver.commit("/uploads/u/data", state, "/other")
    await driver.abort("/uploads/u/data", state)  # harmless
    assert await collect(driver.walk("/")) == ["/blob"]


async def test_commit_replaces_the_destination(driver: StorageDriver) -> None:
    await driver.put_content("/blob", random_bytes(4096, seed=1))
    state = await upload(driver, "/uploads/u/data", b"new")
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == b"new"


async def test_commit_in_place_makes_an_ordinary_file(driver: StorageDriver) -> None:
    contents = random_bytes(3 * MiB + 5, seed=4)
    state = await upload(driver, "/uploads/u/data", contents)
    await driver.commit("/uploads/u/data", state, "/uploads/u/data")
    assert await driver.stat("/uploads/u/data") == len(contents)
    assert await read_all(driver, "/uploads/u/data", MiB, 10) == contents[MiB : MiB + 10]
    await driver.move("/uploads/u/data", "/blob")
    assert await driver.get_content("/blob") == contents


async def test_nothing_is_visible_before_commit(driver: StorageDriver) -> None:
    """Not at the destination, even when the writer was told it (an object store may
    write there directly, invisibly)."""
    await driver.put_content("/blob", b"old")
    writer = await driver.writer("/uploads/u/data", destination="/blob")
    await writer.write(b"new bytes")
    assert await driver.get_content("/blob") == b"old"
    state = await writer.close()
    assert await driver.get_content("/blob") == b"old"
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == b"new bytes"


async def test_zero_byte_upload_then_resumed(driver: StorageDriver) -> None:
    state = await upload(driver, "/uploads/u/data", b"")
    assert state.size == 0
    state = await upload(driver, "/uploads/u/data", b"abc", state)
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == b"abc"


async def test_an_upload_never_written_commits_an_empty_file(driver: StorageDriver) -> None:
    await driver.commit("/uploads/u/data", WriterState(), "/blob")
    assert await driver.get_content("/blob") == b""
    assert await collect(driver.walk("/")) == ["/blob"]


async def test_closed_writer_refuses_more(driver: StorageDriver) -> None:
    writer = await driver.writer("/uploads/u/data")
    await writer.write(b"abc")
    state = await writer.close()
    with pytest.raises(ValueError):
        await writer.write(b"more")
    with pytest.raises(ValueError):
        await writer.close()
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == b"abc"


async def test_concurrent_uploads_to_different_paths(driver: StorageDriver) -> None:
    count, pieces = 16, 16
    contents = {f"/concurrent/{i:02d}/data": random_bytes(pieces * 4096, i) for i in range(count)}

    async def write(path: str, data: bytes) -> None:
        writer = await driver.writer(f"/uploads/{path.split('/')[2]}/data")
        for start in range(0, len(data), 4096):
            await writer.write(data[start : start + 4096])
            await asyncio.sleep(0)  # let the other writers interleave
        state = await writer.close()
        await driver.commit(f"/uploads/{path.split('/')[2]}/data", state, path)

    await asyncio.gather(*(write(path, data) for path, data in contents.items()))
    for path, data in contents.items():
        assert await driver.get_content(path) == data
    assert await collect(driver.walk("/")) == sorted(contents)


def page_aligned(size: int, seed: int) -> memoryview:
    """A writable, page-aligned buffer (what a taken-over request body is made of)."""
    buffer = mmap.mmap(-1, size)
    buffer.write(random_bytes(size, seed))
    return memoryview(buffer)


async def test_reused_buffers_are_copied_or_written_before_write_returns(
    driver: StorageDriver,
) -> None:
    """A caller may refill its buffer as soon as ``write`` returns (page-aligned buffers
    included, at aligned and unaligned offsets, across a resume)."""
    buffer = page_aligned(4 * MiB, seed=1)
    sent = []
    writer = await driver.writer("/uploads/u/data")
    for seed in range(3):
        buffer[:] = random_bytes(len(buffer), seed)
        sent.append(bytes(buffer))
        await writer.write(buffer)
    await writer.write(b"tail")
    state = await writer.close()
    writer = await driver.writer("/uploads/u/data", state)
    buffer[:] = random_bytes(len(buffer), 9)
    sent.append(b"tail" + bytes(buffer))
    await writer.write(buffer)
    buffer[:] = bytes(len(buffer))
    state = await writer.close()
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.get_content("/blob") == b"".join(sent)


async def test_many_mebibytes_resumed_after_a_failed_chunk(driver: StorageDriver) -> None:
    pieces = [page_aligned(4 * MiB, seed) for seed in range(6)]
    writer = await driver.writer("/uploads/u/data")
    for piece in pieces[:2]:
        await writer.write(piece)
    kept = await writer.close()
    writer = await driver.writer("/uploads/u/data", kept)
    for piece in pieces[2:]:
        await writer.write(piece)
    await writer.abandon()
    writer = await driver.writer("/uploads/u/data", kept)
    await writer.write(b"end")
    state = await writer.close()
    await driver.commit("/uploads/u/data", state, "/blob")
    data = await driver.get_content("/blob")
    assert data == b"".join(map(bytes, pieces[:2])) + b"end"


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


async def test_delete_many_deletes_files_and_trees_and_passes_over_nothing(
    driver: StorageDriver,
) -> None:
    for path in ("/many/a/data", "/many/b/data", "/many/c/d/e", "/many/file", "/many/kept"):
        await driver.put_content(path, b"x")
    failures = await driver.delete_many(["/many/a", "/many/b", "/many/c", "/many/file", "/none"])
    assert failures == {}
    assert await collect(driver.walk("/many")) == ["/many/kept"]
    assert await driver.list("/many") == ["/many/kept"]


# -- walk ---------------------------------------------------------------------------------


async def test_walk_yields_every_file_depth_first(driver: StorageDriver) -> None:
    files = ["/w/a/1", "/w/a/2", "/w/a/deep/er/3", "/w/a-x/4", "/w/b", "/w/empty-file", "/x/5"]
    for path in reversed(files):
        await driver.put_content(path, b"" if "empty" in path else b"x")
    assert await collect(driver.walk("/w")) == files[:-1]
    assert await collect(driver.walk("/w/a")) == ["/w/a/1", "/w/a/2", "/w/a/deep/er/3"]
    assert await collect(driver.walk("/")) == files
    assert await collect(driver.walk("/missing")) == []
