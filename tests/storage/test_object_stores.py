"""What the GCS and Azure drivers do beyond the shared suite, against the emulators: the
rules of the real services that the emulators do not enforce (Azure's equal-length block
ids, GCS's 256 KiB pieces), uploads continued by another driver instance (another
replica), many parts, bounded memory, and presigned URLs that fetch the bytes (with a
Range) and expire when told."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest

from dockyard.storage.azure_blocks import (
    BLOCK_ID_LENGTH,
    BadStateError,
    Block,
    StagedBlocks,
    block_id,
)
from dockyard.storage.azure_driver import AzureDriver
from dockyard.storage.driver import PathNotFoundError, StorageDriver, WriterState
from dockyard.storage.gcs_driver import GcsDriver
from dockyard.storage.gcs_signing import signed_url
from tests.azurite import ACCOUNT, KEY, running_azurite
from tests.fakegcs import service_account_info
from tests.storage.object_stores import another_instance, make_azure_driver, make_gcs_driver

KiB, MiB = 1024, 1024 * 1024
ALIGNMENT = 256 * KiB


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def append(
    driver: StorageDriver, path: str, data: bytes, state: WriterState | None = None
) -> WriterState:
    writer = await driver.writer(path, state)
    for start in range(0, len(data), 100 * KiB + 3):  # odd pieces, as bodies arrive
        await writer.write(data[start : start + 100 * KiB + 3])
    return await writer.close()


@pytest.fixture(params=["azure", "gcs"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StorageDriver]:
    driver = (make_azure_driver if request.param == "azure" else make_gcs_driver)(request)
    yield driver
    await driver.close()


# -- Azure's block ids ------------------------------------------------------------------


def test_every_block_id_has_one_length() -> None:
    ids = {block_id(nonce, index) for nonce in ("0" * 16, "f" * 16) for index in (0, 9, 10**7)}
    assert {len(i) for i in ids} == {BLOCK_ID_LENGTH}
    for nonce, index in (("abc", 0), ("0" * 16, -1), ("0" * 16, 10**8), ("G" * 16, 1)):
        with pytest.raises(BadStateError):
            block_id(nonce, index)


def test_a_state_with_a_block_id_of_another_length_is_refused() -> None:
    good = StagedBlocks((Block(block_id("1" * 16, 0), 5),))
    assert StagedBlocks.decode(good.encode()) == good
    bad = StagedBlocks((*good.blocks, Block("short", 5)))
    with pytest.raises(BadStateError, match="is not 24 long"):
        StagedBlocks.decode(bad.encode())
    for junk in (b"", b"[]", b'{"v": 2, "blocks": []}', b'{"v": 1, "blocks": [[1]]}'):
        with pytest.raises(BadStateError):
            StagedBlocks.decode(junk)


async def test_an_azure_blob_commits_blocks_of_one_id_length(
    request: pytest.FixtureRequest,
) -> None:
    """Several requests (each a writer with its own nonce), one of them failed, and the
    committed blob's block list: one id length, no block of the failed request."""
    driver = make_azure_driver(request)
    assert isinstance(driver, AzureDriver)
    try:
        pieces = [random_bytes(size, seed) for seed, size in enumerate([9 * MiB, 1, 300 * KiB])]
        state = await append(driver, "/uploads/u/data", pieces[0])
        failed = await driver.writer("/uploads/u/data", state)
        await failed.write(random_bytes(MiB, 99))
        await failed.abandon()
        for piece in pieces[1:]:
            state = await append(driver, "/uploads/u/data", piece, state)
        await driver.commit("/uploads/u/data", state, "/uploads/u/data")
        blob = driver._blob(driver.key("/uploads/u/data"))
        committed, uncommitted = await blob.get_block_list("all")
        assert {len(block.id) for block in committed} == {BLOCK_ID_LENGTH}
        assert [block.size for block in committed] == [8 * MiB, MiB, 1, 300 * KiB]
        assert uncommitted == []
        assert await driver.get_content("/uploads/u/data") == b"".join(pieces)
    finally:
        await driver.close()


# -- GCS's 256 KiB pieces ---------------------------------------------------------------


class RecordingGcsDriver(GcsDriver):
    """Records the Content-Range of every resumable-upload request it sends."""

    ranges: list[str]

    async def call(self, method: str, url: str, **options: Any) -> tuple[int, dict[str, Any]]:
        content_range = (options.get("headers") or {}).get("Content-Range")
        if content_range is not None:
            self.ranges.append(content_range)
        return await super().call(method, url, **options)


async def test_gcs_sends_every_piece_but_the_last_in_multiples_of_256_kib(
    request: pytest.FixtureRequest,
) -> None:
    """Real GCS refuses a non-final piece of another size (fake-gcs-server accepts it), so
    requests of odd sizes must still reach GCS in whole 256 KiB multiples."""
    base = make_gcs_driver(request, chunk_size=ALIGNMENT)
    assert isinstance(base, GcsDriver)
    driver = RecordingGcsDriver(
        bucket=base.bucket,
        rootdirectory="aligned",
        chunk_size=ALIGNMENT,
        credentials=service_account_info(),
        endpoint=base.endpoint,
    )
    driver.ranges = []
    try:
        sizes = [3 * ALIGNMENT + 12_345, 1, ALIGNMENT, 2 * ALIGNMENT - 1, 777_777]
        pieces = [random_bytes(size, seed) for seed, size in enumerate(sizes)]
        state = None
        for piece in pieces:
            state = await append(driver, "/uploads/u/data", piece, state)
        assert state is not None
        await driver.commit("/uploads/u/data", state, "/blob")
        assert await driver.get_content("/blob") == b"".join(pieces)
        assert driver.ranges, "the larger requests went through resumable sessions"
        for content_range in driver.ranges:
            span, total = content_range.removeprefix("bytes ").split("/")
            first, last = (int(n) for n in span.split("-"))
            assert first % ALIGNMENT == 0, content_range
            if total == "*":
                assert (last + 1 - first) % ALIGNMENT == 0, content_range
    finally:
        await driver.close()
        await base.close()


async def test_gcs_composes_more_than_32_parts(request: pytest.FixtureRequest) -> None:
    driver = make_gcs_driver(request)
    try:
        pieces = [random_bytes(1000 + seed, seed) for seed in range(40)]
        state = None
        for piece in pieces:
            state = await append(driver, "/uploads/u/data", piece, state)
        assert state is not None
        await driver.commit("/uploads/u/data", state, "/blob")
        assert await driver.get_content("/blob") == b"".join(pieces)
        assert isinstance(driver, GcsDriver)
        assert [e async for e in driver.list_keys(driver.parts_prefix(), False)] == []
    finally:
        await driver.close()


# -- both -------------------------------------------------------------------------------


async def test_another_instance_continues_and_commits_the_upload(store: StorageDriver) -> None:
    """Another process or replica has only the state the database kept."""
    other = another_instance(store)
    try:
        one, two = random_bytes(6 * MiB + 1, 1), random_bytes(3 * MiB, 2)
        state = await append(store, "/uploads/u/data", one)
        state = await append(other, "/uploads/u/data", two, WriterState(*state.__dict__.values()))
        await other.commit("/uploads/u/data", state, "/blob")
        assert await store.get_content("/blob") == one + two
        with pytest.raises(PathNotFoundError):
            await store.writer("/uploads/u/data", state)
    finally:
        await other.close()


async def test_an_upload_is_never_held_in_memory(store: StorageDriver) -> None:
    """64 MiB through one writer allocate a few pieces' worth, not the upload."""
    chunk = random_bytes(MiB)
    tracemalloc.start()
    try:
        writer = await store.writer("/uploads/u/data")
        for _ in range(64):
            await writer.write(chunk)
        state = await writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB"
    await store.commit("/uploads/u/data", state, "/blob")
    assert await store.stat("/blob") == 64 * MiB


async def test_presigned_urls_fetch_the_bytes_with_ranges(store: StorageDriver) -> None:
    data = random_bytes(300 * KiB, 5)
    await store.put_content("/docker/blob/data", data)
    assert await store.redirect_url("/docker/blob/data", "PUT") is None
    get_url = await store.redirect_url("/docker/blob/data", "GET")
    head_url = await store.redirect_url("/docker/blob/data", "HEAD")
    assert get_url is not None and head_url is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(get_url) as response:
            assert response.status == 200
            assert await response.read() == data
        async with http.get(get_url, headers={"Range": "bytes=1000-1999"}) as response:
            assert response.status == 206
            assert await response.read() == data[1000:2000]
        async with http.head(head_url) as response:
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == len(data)


async def test_presigned_urls_expire_when_told(request: pytest.FixtureRequest) -> None:
    five = timedelta(minutes=5)
    azure = make_azure_driver(request, redirect_expiry=five)
    gcs = make_gcs_driver(request, redirect_expiry=five)
    try:
        before = datetime.now(UTC)
        sas = parse_qs(urlsplit(await azure.redirect_url("/b", "GET") or "").query)
        expires = datetime.fromisoformat(sas["se"][0].replace("Z", "+00:00"))
        assert before + five - timedelta(seconds=2) <= expires <= before + five + timedelta(2)
        signed = parse_qs(urlsplit(await gcs.redirect_url("/b", "GET") or "").query)
        assert signed["X-Goog-Expires"] == ["300"]
        default = make_gcs_driver(request)
        signed = parse_qs(urlsplit(await default.redirect_url("/b", "GET") or "").query)
        assert signed["X-Goog-Expires"] == ["1200"]  # 20 minutes, as registry:2
        await default.close()
    finally:
        await azure.close()
        await gcs.close()


async def test_azurite_refuses_a_tampered_sas(request: pytest.FixtureRequest) -> None:
    driver = make_azure_driver(request)
    try:
        await driver.put_content("/blob", b"secret")
        url = await driver.redirect_url("/blob", "GET")
        assert url is not None
        tampered = url.replace("sp=r", "sp=rw")
        async with aiohttp.ClientSession() as http:
            async with http.get(tampered) as response:
                assert response.status == 403
            async with http.get(url.split("?")[0]) as response:
                assert response.status in (403, 404)  # no SAS: not public
    finally:
        await driver.close()


def test_gcs_v4_signature_matches_googles_own_client() -> None:
    """fake-gcs-server never checks signatures: compare with google-cloud-storage's
    signer, for the same key, object and instant."""
    from google.cloud.storage._signing import generate_signed_url_v4
    from google.oauth2 import service_account

    info = service_account_info()
    credentials = service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    now = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    for method, key in [("GET", "root/docker/registry/v2/blobs/sha256/ab/abc/data"),
                        ("HEAD", "a b/odd~key+&=?%")]:  # fmt: skip
        ours = signed_url(
            method=method,
            bucket="my-bucket",
            key=key,
            expiry=timedelta(minutes=20),
            now=now,
            client_email=info["client_email"],
            sign=credentials.signer.sign,
        )
        theirs = generate_signed_url_v4(
            credentials,
            f"/my-bucket/{quote(key, safe='/~')}",  # it takes the path encoded
            expiration=timedelta(minutes=20),
            method=method,
            _request_timestamp=now.strftime("%Y%m%dT%H%M%SZ"),
        )
        assert ours == theirs
    with pytest.raises(ValueError):
        signed_url(method="GET", bucket="b", key="k", expiry=timedelta(days=8), now=now,
                   client_email="e", sign=credentials.signer.sign)  # fmt: skip


HUGE = os.environ.get("DOCKYARD_HUGE_TESTS") == "1"


async def _write_huge(driver: StorageDriver, sizes: list[int]) -> tuple[WriterState, str]:
    """Upload ``sizes`` bytes, one request each, tracing memory; the state and sha256."""
    piece = random_bytes(4 * MiB, 3)
    hasher, state = hashlib.sha256(), WriterState()
    tracemalloc.start()
    try:
        for size in sizes:
            writer = await driver.writer("/uploads/u/data", state)
            written = 0
            while written < size:
                chunk = piece[: size - written]
                await writer.write(chunk)
                hasher.update(chunk)
                written += len(chunk)
            state = await writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB
    return state, hasher.hexdigest()


async def _commit_and_verify(driver: StorageDriver, state: WriterState, digest: str) -> None:
    await driver.commit("/uploads/u/data", state, "/blob")
    assert await driver.stat("/blob") == state.size
    assert await driver.stat("/uploads/u/data") is None
    read = hashlib.sha256()
    async for chunk in driver.reader("/blob"):
        read.update(chunk)
    assert read.hexdigest() == digest


HUGE_SIZES = [3 * 1024 * MiB + 1, 2 * 1024 * MiB + 12_345]  # over 5 GiB, two requests


@pytest.mark.skipif(not HUGE, reason="writes 5 GiB; set DOCKYARD_HUGE_TESTS=1")
async def test_an_azure_blob_over_5_gib_commits(tmp_path: Path) -> None:
    """Past S3's single-copy limit: staged blocks, one block list, one server-side copy,
    streamed all the way (Azurite on disk: the blob does not fit its memory store)."""
    with running_azurite(tmp_path / "azurite") as azurite:
        driver = AzureDriver(
            account_name=ACCOUNT,
            account_key=KEY,
            container=azurite.create_container(),
            service_url=azurite.endpoint,
        )
        try:
            state, digest = await _write_huge(driver, HUGE_SIZES)
            await _commit_and_verify(driver, state, digest)
        finally:
            await driver.close()
