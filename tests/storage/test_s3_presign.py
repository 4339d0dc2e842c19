"""Presigned S3 URLs signed by Dockyard itself (``s3_presign``): byte for byte the URLs
botocore makes, for every addressing shape, and accepted by a real SeaweedFS, which checks
signatures (a tampered one, or one signed for another method, is refused)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.s3_presign import Presigner
from tests.seaweedfs import SeaweedServer

TWENTY_MINUTES = timedelta(minutes=20)
BLOB = "/docker/registry/v2/blobs/sha256/ab/abcd/data"
SHAPES: list[dict[str, Any]] = [
    {"regionendpoint": "http://127.0.0.1:8333", "forcepathstyle": True, "secure": False},
    {"region": "us-east-1"},  # AWS itself, its global endpoint
    {"region": "eu-west-1", "sessiontoken": "token/with+odd=chars"},
    {"regionendpoint": "https://store.example:9000", "rootdirectory": "a b/c+d~e"},
    {"regionendpoint": "store.example", "forcepathstyle": False, "region": "auto"},
]


def _driver(extra: dict[str, Any]) -> S3Driver:
    parameters = {"accesskey": "AKID", "secretkey": "secret", "region": "us-east-1"}
    parameters |= {"bucket": "my-bucket", **extra}
    return S3Driver(S3Parameters.model_validate(parameters), redirect_expiry=TWENTY_MINUTES)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: ",".join(shape))
async def test_urls_are_botocores_own(shape: dict[str, Any]) -> None:
    """For the same key, method and instant, the URL is the one botocore signs."""
    driver = _driver(shape)
    try:
        bucket = await driver.bucket()
        presigner = driver._presigner
        assert presigner is not None
        key = bucket.key(BLOB)
        for method, operation in (("GET", "get_object"), ("HEAD", "head_object")):
            theirs = await bucket.client.generate_presigned_url(
                operation, Params={"Bucket": bucket.name, "Key": key}, ExpiresIn=1200
            )
            signed_at = dict(parse_qsl(urlsplit(theirs).query))["X-Amz-Date"]
            instant = datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            assert await presigner.url(key, method, 1200, now=instant) == theirs
    finally:
        await driver.close()


async def test_sigv2_is_left_to_botocore() -> None:
    driver = _driver({"v4auth": False})
    try:
        await driver.bucket()
        assert driver._presigner is None
        url = await driver.redirect_url(BLOB, "GET")
        assert url is not None and "Signature=" in url
    finally:
        await driver.close()


@pytest.fixture
async def seaweed_driver(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str
) -> AsyncIterator[S3Driver]:
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/odd keys+and~marks/{uuid.uuid4().hex}",
    }
    driver = S3Driver(S3Parameters.model_validate(parameters), redirect_expiry=TWENTY_MINUTES)
    yield driver
    await driver.close()


async def test_seaweedfs_accepts_them_and_refuses_tampering(seaweed_driver: S3Driver) -> None:
    await seaweed_driver.put_content(BLOB, b"the blob's bytes")
    assert isinstance(seaweed_driver._presigner, Presigner)
    get_url = await seaweed_driver.redirect_url(BLOB, "GET")
    head_url = await seaweed_driver.redirect_url(BLOB, "HEAD")
    assert get_url is not None and head_url is not None
    query = dict(parse_qsl(urlsplit(get_url).query))
    assert query["X-Amz-Expires"] == "1200"
    async with aiohttp.ClientSession() as http:
        async with http.get(get_url) as response:
            assert response.status == 200
            assert await response.read() == b"the blob's bytes"
        async with http.head(head_url) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(b"the blob's bytes"))
        async with http.get(head_url) as response:  # the method is signed
            assert response.status == 403
        other = get_url.replace("/abcd/", "/abce/")  # another object, the same signature
        async with http.get(other) as response:
            assert response.status == 403
        signature = query["X-Amz-Signature"]
        forged = get_url.replace(signature, signature[::-1])
        async with http.get(forged) as response:
            assert response.status == 403
