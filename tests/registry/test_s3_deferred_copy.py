"""Deferred copies on S3 (``storage.s3.deferredcopy``), against the session's SeaweedFS and
on SQLite and PostgreSQL: a chunked upload's final ``PUT`` leaves the completed upload where
it is, reads serve it there, and the mover puts it at the blob's Distribution path, deleting
the upload's object after the grace period. Garbage collection, fsck, export and the offline
collector's ``finish_moves`` never lose or strand a pending blob."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from dockyard.config.load import load_config
from dockyard.fsck.check import check_store
from dockyard.gc.collector import Collector
from dockyard.gc_command import run_gc
from dockyard.metadata.engine import create_engine
from dockyard.metadata.leases import Leases
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.registry.blob_mover import LEASE, BlobMover, finish_moves
from dockyard.registry.blobs import BlobReader
from dockyard.registry.body import IterableBody
from dockyard.registry.uploads import UploadService
from dockyard.registry2.exporter import export_store
from dockyard.storage import paths
from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_driver import S3Driver
from tests.seaweedfs import SeaweedServer

NAME = "team/app"
MiB = 1024 * 1024
HOUR = timedelta(hours=1)


def body(data: bytes) -> IterableBody:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), MiB):
            yield data[start : start + MiB]

    return IterableBody(chunks())


def s3_driver(seaweedfs: SeaweedServer, bucket: str, root: str, redirect: bool) -> S3Driver:
    parameters = {
        **seaweedfs.parameters(bucket),
        "rootdirectory": root,
        "deferredcopy": True,
        # A multipart copy (as above 5 GiB), with small parts.
        "multipartcopythresholdsize": 5 * MiB,
        "multipartcopychunksize": 5 * MiB,
    }
    expiry = timedelta(minutes=20) if redirect else None
    return S3Driver(S3Parameters.model_validate(parameters), redirect_expiry=expiry)


@pytest.fixture
def root() -> str:
    return f"/deferred/{uuid.uuid4().hex}"


@pytest.fixture(params=["redirect", "stream"])
async def driver(
    request: pytest.FixtureRequest, seaweedfs: SeaweedServer, seaweedfs_bucket: str, root: str
) -> AsyncIterator[S3Driver]:
    instance = s3_driver(seaweedfs, seaweedfs_bucket, root, request.param == "redirect")
    yield instance
    await instance.close()


async def push_chunked(uploads: UploadService, data: bytes, name: str = NAME) -> Digest:
    """Two ``PATCH``es and a final ``PUT`` without a body: a multipart upload at U."""
    digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
    upload = await uploads.start(name)
    half = len(data) // 2
    await uploads.append(name, upload, body(data[:half]), None, None)
    await uploads.append(name, upload, body(data[half:]), None, None)
    assert await uploads.complete(name, upload, digest, None, None, None) == len(data)
    return digest


async def pull(reader: BlobReader, digest: Digest, start: int = 0, end: int | None = None) -> bytes:
    """What a client gets: the redirect followed, or the stream (with a range)."""
    location = await reader.locate(NAME, digest, "GET")
    length = (location.size if end is None else end) - start
    if location.redirect_url is not None:
        headers = {"Range": f"bytes={start}-{start + length - 1}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(location.redirect_url, headers=headers) as response,
        ):
            assert response.status in (200, 206)
            return await response.read()
    assert location.local_path is None
    stream = location.stream or (lambda o, n: reader.stream(digest, o, n))
    return b"".join([chunk async for chunk in stream(start, length)])


async def test_pushed_blob_pulls_before_and_after_the_move(
    metadata: MetadataStore, driver: S3Driver
) -> None:
    uploads = UploadService(metadata, driver)
    reader = BlobReader(metadata, driver)
    data = os.urandom(12 * MiB + 12345)
    digest = await push_chunked(uploads, data)
    blob = paths.blob_data(digest)

    # Committed where it was written: the blob's path holds nothing yet.
    [pending] = await metadata.pending_blobs()
    assert pending.digest == str(digest) and pending.moved_at is None
    assert "/_uploads/" in pending.path
    assert await driver.stat(blob) is None
    assert await driver.stat(pending.path) == len(data)
    assert await pull(reader, digest) == data
    assert await pull(reader, digest, 5, 5 * MiB + 7) == data[5 : 5 * MiB + 7]
    assert driver.moves_waiting().is_set()  # the commit woke this process's mover

    mover = BlobMover(metadata, driver, Leases(metadata.engine), grace=HOUR)
    assert await mover.run_once() is True  # moved; the old object waits out its grace
    assert await driver.stat(blob) == len(data)
    assert await driver.stat(pending.path) == len(data)
    assert await pull(reader, digest) == data
    location = await reader.locate(NAME, digest, "GET")
    assert location.stream is None  # read at the blob's own path now
    assert b"".join([c async for c in reader.stream(digest, 0, len(data))]) == data

    mover.grace = timedelta(0)
    assert await mover.run_once() is False
    assert await driver.stat(pending.path) is None
    assert await metadata.pending_blobs() == []
    assert await pull(reader, digest, 1, 100) == data[1:100]


async def test_a_mover_stopped_between_copy_and_mark_is_finished_by_another(
    metadata: MetadataStore, driver: S3Driver, database_url: str
) -> None:
    uploads = UploadService(metadata, driver)
    data = os.urandom(6 * MiB)
    digest = await push_chunked(uploads, data)
    [pending] = await metadata.pending_blobs()
    # The first mover copied, then died before marking the row.
    await driver.copy(pending.path, paths.blob_data(digest))
    assert (await metadata.pending_blobs())[0].moved_at is None

    # A second instance (its own database connections and client) finishes it.
    other = MetadataStore(create_engine(database_url))
    try:
        mover = BlobMover(other, driver, Leases(other.engine), grace=timedelta(0))
        assert await mover.run_once() is True
        assert await mover.run_once() is False
    finally:
        await other.close()
    assert await metadata.pending_blobs() == []
    assert await driver.stat(pending.path) is None
    assert await pull(BlobReader(metadata, driver), digest) == data


async def test_one_mover_at_a_time(metadata: MetadataStore, driver: S3Driver) -> None:
    uploads = UploadService(metadata, driver)
    await push_chunked(uploads, os.urandom(6 * MiB))
    leases = Leases(metadata.engine)
    mover = BlobMover(metadata, driver, leases, grace=HOUR)
    async with Leases(metadata.engine).hold(LEASE) as held:
        assert held
        assert await mover.run_once() is None  # another holds the lease: nothing done
        assert (await metadata.pending_blobs())[0].moved_at is None
    assert await mover.run_once() is True
    assert (await metadata.pending_blobs())[0].moved_at is not None


async def test_a_second_push_and_a_mount_while_pending(
    metadata: MetadataStore, driver: S3Driver
) -> None:
    uploads = UploadService(metadata, driver)
    data = os.urandom(6 * MiB + 1)
    digest = await push_chunked(uploads, data)
    [first] = await metadata.pending_blobs()
    again = await push_chunked(uploads, data)  # the blob exists: this upload is dropped
    assert again == digest
    assert await metadata.pending_blobs() == [first]
    assert await uploads.mount("other/app", digest, NAME) == len(data)
    reader = BlobReader(metadata, driver)
    location = await reader.locate("other/app", digest, "GET")
    assert location.size == len(data)
    assert await pull(reader, digest) == data
    await finish_moves(metadata, driver)
    assert await driver.stat(paths.blob_data(digest)) == len(data)


async def test_gc_leaves_a_pending_blob_for_a_later_run(
    metadata: MetadataStore, driver: S3Driver
) -> None:
    uploads = UploadService(metadata, driver)
    data = os.urandom(6 * MiB)
    digest = await push_chunked(uploads, data)  # no manifest references it
    [pending] = await metadata.pending_blobs()
    report = await Collector(metadata, driver, review_after=timedelta(0)).run()
    assert report.blobs_removed == 0
    assert await driver.stat(pending.path) == len(data)
    assert await metadata.blob_size(str(digest)) == len(data)

    mover = BlobMover(metadata, driver, Leases(metadata.engine), grace=timedelta(0))
    await mover.run_once()
    await mover.run_once()
    report = await Collector(metadata, driver, review_after=timedelta(0)).run()
    assert report.blobs_removed == 1
    assert await driver.stat(paths.blob_data(digest)) is None
    assert await driver.stat(pending.path) is None


async def test_fsck_finds_a_pending_blob_whole(metadata: MetadataStore, driver: S3Driver) -> None:
    uploads = UploadService(metadata, driver)
    digest = await push_chunked(uploads, os.urandom(6 * MiB))
    [pending] = await metadata.pending_blobs()
    report = await check_store(metadata, driver, repair=True, verify_digests=True)
    assert report.findings == [], [f.line() for f in report.findings]
    assert await driver.stat(pending.path) is not None  # not taken for a stray upload
    mover = BlobMover(metadata, driver, Leases(metadata.engine), grace=HOUR)
    await mover.run_once()  # moved, old object kept: still no finding
    report = await check_store(metadata, driver, repair=True, verify_digests=True)
    assert report.findings == [], [f.line() for f in report.findings]
    assert await driver.stat(pending.path) is not None
    assert await metadata.blob_size(str(digest)) is not None


async def test_export_finishes_pending_moves_first(
    metadata: MetadataStore, driver: S3Driver
) -> None:
    uploads = UploadService(metadata, driver)
    data = os.urandom(6 * MiB)
    digest = await push_chunked(uploads, data)
    report = await export_store(metadata, driver)
    assert not report.problems, report.problems
    assert await driver.stat(paths.blob_data(digest)) == len(data)
    [pending] = await metadata.pending_blobs()
    assert pending.moved_at is not None
    link = f"{paths.repository(NAME)}/_layers/sha256/{digest.hex}/link"
    assert (await driver.get_content(link)).decode() == str(digest)


async def test_the_upload_purger_keeps_a_pending_blobs_bytes(
    metadata: MetadataStore, driver: S3Driver
) -> None:
    uploads = UploadService(metadata, driver)
    data = os.urandom(6 * MiB)
    digest = await push_chunked(uploads, data)
    [pending] = await metadata.pending_blobs()
    await uploads.purge(timedelta(0))  # every session and stray multipart upload
    assert await driver.stat(pending.path) == len(data)
    assert await pull(BlobReader(metadata, driver), digest) == data


async def test_the_offline_garbage_collect_finishes_moves_then_collects(
    metadata: MetadataStore,
    seaweedfs: SeaweedServer,
    seaweedfs_bucket: str,
    root: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    driver = s3_driver(seaweedfs, seaweedfs_bucket, root, redirect=False)
    try:
        uploads = UploadService(metadata, driver)
        data = os.urandom(6 * MiB)
        digest = await push_chunked(uploads, data)  # no manifest references it
        [pending] = await metadata.pending_blobs()
        config_file = tmp_path / "config.yml"
        storage = seaweedfs.storage_section(seaweedfs_bucket, rootdirectory=root)
        config_file.write_text(
            "version: 0.1\nstorage:\n"
            + storage
            + "    deferredcopy: true\n"
            + f"database:\n  url: {database_url}\ngc:\n  reviewafter: 0s\n"
        )
        config = load_config(config_file, {}, serving=False).config
        report = await run_gc(config)
        # Moved first (the store's layout is Distribution's); the collector leaves the blob
        # until the mover has deleted its old object, so that nothing strands it.
        assert report.blobs_removed == 0
        assert await driver.stat(paths.blob_data(digest)) == len(data)
        [moved] = await metadata.pending_blobs()
        assert moved.moved_at is not None
        mover = BlobMover(metadata, driver, Leases(metadata.engine), grace=timedelta(0))
        assert await mover.run_once() is False  # grace over: old object deleted
        assert await driver.stat(pending.path) is None
        report = await run_gc(config)
        assert report.blobs_removed == 1
        assert await driver.stat(paths.blob_data(digest)) is None
        assert await metadata.blob_size(str(digest)) is None
    finally:
        await driver.close()
