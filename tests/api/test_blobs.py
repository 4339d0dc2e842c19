"""Blob reads: HEAD, GET with Range, DELETE, and the errors of each."""

from __future__ import annotations

import os

from tests.api.helpers import Client, digest_of, error_code, push_blob

NAME = "library/blobs"


async def test_head(client: Client) -> None:
    data = os.urandom(1234)
    digest = await push_blob(client, NAME, data)
    response = await client.head(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 200
    assert response.headers["Content-Length"] == "1234"
    assert response.headers["Docker-Content-Digest"] == digest
    assert await response.read() == b""


async def test_ranges(client: Client) -> None:
    data = os.urandom(1000)
    digest = await push_blob(client, NAME, data)
    url = f"/v2/{NAME}/blobs/{digest}"
    response = await client.get(url, headers={"Range": "bytes=10-19"})
    assert response.status == 206
    assert await response.read() == data[10:20]
    assert response.headers["Content-Range"] == "bytes 10-19/1000"
    response = await client.get(url, headers={"Range": "bytes=990-"})
    assert await response.read() == data[990:]
    response = await client.get(url, headers={"Range": "bytes=-5"})
    assert await response.read() == data[-5:]
    response = await client.get(url, headers={"Range": "bytes=5000-6000"})
    assert response.status == 416


async def test_unknown_blob_and_blob_of_other_repository(client: Client) -> None:
    digest = await push_blob(client, "other/repo", b"private bytes")
    response = await client.get(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 404
    assert await error_code(response) == "BLOB_UNKNOWN"
    response = await client.head(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 404


async def test_invalid_digests(client: Client) -> None:
    for bad in (
        "sha256:abc",
        "sha256:" + "G" * 64,
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
        "notadigest",
        "sha256:" + "A" * 64,
    ):
        response = await client.get(f"/v2/{NAME}/blobs/{bad}")
        assert response.status == 400, bad
        assert await error_code(response) == "DIGEST_INVALID"


async def test_delete_unlinks_only_this_repository(client: Client) -> None:
    data = os.urandom(100)
    digest = await push_blob(client, NAME, data)
    await push_blob(client, "second/repo", data)
    response = await client.delete(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 202
    assert (await client.head(f"/v2/{NAME}/blobs/{digest}")).status == 404
    assert (await client.get(f"/v2/second/repo/blobs/{digest}")).status == 200
    response = await client.delete(f"/v2/{NAME}/blobs/{digest}")
    assert response.status == 404
    assert await error_code(response) == "BLOB_UNKNOWN"


async def test_not_found_digest_of_valid_form(client: Client) -> None:
    response = await client.get(f"/v2/{NAME}/blobs/{digest_of(b'nothing')}")
    assert response.status == 404


async def test_large_blob_whole_and_ranges(client: Client) -> None:
    """Past 1 MiB the filesystem driver's blobs go out with sendfile."""
    data = os.urandom(5 * 1024 * 1024 + 123)
    digest = await push_blob(client, NAME, data)
    url = f"/v2/{NAME}/blobs/{digest}"
    response = await client.get(url)
    assert response.status == 200
    assert await response.read() == data
    response = await client.get(url, headers={"Range": "bytes=1000-3000999"})
    assert response.status == 206
    assert await response.read() == data[1000:3001000]
    response = await client.get(url, headers={"Range": "bytes=100-", "If-Range": '"other"'})
    assert response.status == 200
    assert len(await response.read()) == len(data)
