"""Multipart uploads that no upload row knows of (a worker killed mid-request) are aborted
by the upload purger once they are older than its age, on a real SeaweedFS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.strays import StrayUploads
from tests.seaweedfs import SeaweedServer


@pytest.fixture
async def driver(seaweedfs: SeaweedServer, seaweedfs_bucket: str) -> AsyncIterator[S3Driver]:
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/s/{uuid.uuid4().hex}",
    }
    instance = S3Driver(S3Parameters.model_validate(parameters))
    yield instance
    await instance.close()


async def test_stray_uploads_older_than_the_age_are_aborted(driver: S3Driver) -> None:
    assert driver.capability(StrayUploads) is driver
    bucket = await driver.bucket()
    key = bucket.key("/docker/registry/v2/repositories/r/_uploads/u/data")
    created = await bucket.client.create_multipart_upload(Bucket=bucket.name, Key=key)
    other = S3Driver(S3Parameters.model_validate({**driver.parameters.model_dump(),
                                                  "secretkey": driver.parameters.secretkey,
                                                  "rootdirectory": "/elsewhere"}))  # fmt: skip
    try:
        assert await driver.abort_uploads_older_than(timedelta(hours=1)) == 0
        assert await other.abort_uploads_older_than(timedelta(0)) == 0  # not below its root
        assert await driver.abort_uploads_older_than(timedelta(0)) == 1
    finally:
        await other.close()
    listed = await bucket.client.list_multipart_uploads(Bucket=bucket.name, Prefix=bucket.root)
    assert [u for u in listed.get("Uploads", []) if u["UploadId"] == created["UploadId"]] == []
