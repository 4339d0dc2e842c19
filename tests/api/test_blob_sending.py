"""How the filesystem's blob files go out: a small blob in the page cache is read on the
event loop (``RWF_NOWAIT``, no thread hop), a cold one in a thread; a large one by the
sending thread. Whatever the path, the bytes are the blob's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.api import blob_response
from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from tests.api.helpers import Client, push_blob

NAME = "send/app"
KiB = 1024
MiB = 1024 * KiB


@pytest.fixture
def storage_driver(tmp_path: Path) -> StorageDriver:
    """Only the filesystem has files to send."""
    return FilesystemDriver(tmp_path / "store")


def blob_file(tmp_path: Path, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    return tmp_path / "store/docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


def drop_from_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_read_cached_gives_the_bytes_only_when_the_cache_holds_them(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = os.urandom(200 * KiB)
    path.write_bytes(data)
    assert blob_response.read_cached(path, 0, len(data)) == bytearray(data)
    assert blob_response.read_cached(path, 1000, 5000) == bytearray(data[1000:6000])
    drop_from_cache(path)
    assert blob_response.read_cached(path, 0, len(data)) is None


@pytest.mark.parametrize("size", [0, 1, 4 * KiB, 200 * KiB, blob_response.SMALL_BLOB])
async def test_small_blobs_cached_or_cold_are_sent_exactly(
    client: Client, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    digest = await push_blob(client, NAME, data)
    url = f"/v2/{NAME}/blobs/{digest}"
    for cold in (False, True):
        if cold:
            drop_from_cache(blob_file(tmp_path, digest))
        response = await client.get(url)
        assert response.status == 200
        assert await response.read() == data
        if size > 10:
            response = await client.get(url, headers={"Range": "bytes=3-9"})
            assert response.status == 206
            assert await response.read() == data[3:10]


async def test_a_large_cold_blob_is_sent_exactly(client: Client, tmp_path: Path) -> None:
    """Larger than the sending thread's piece, not a multiple of it, and not in the cache
    (as right after an ``O_DIRECT`` upload)."""
    data = os.urandom(3 * MiB + 4321)
    digest = await push_blob(client, NAME, data)
    drop_from_cache(blob_file(tmp_path, digest))
    url = f"/v2/{NAME}/blobs/{digest}"
    response = await client.get(url)
    assert response.status == 200
    assert await response.read() == data
    response = await client.get(url, headers={"Range": f"bytes={MiB - 7}-{2 * MiB + 11}"})
    assert response.status == 206
    assert await response.read() == data[MiB - 7 : 2 * MiB + 12]
