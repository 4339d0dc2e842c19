"""Multipart uploads that no upload row knows of (a worker killed mid-request) are aborted
by the upload purger once they are older than its age, on a real SeaweedFS."""

from __future__ import annotations

from datetime import timedelta

from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.strays import StrayUploads


async def test_stray_uploads_older_than_the_age_are_aborted(s3_driver: S3Driver) -> None:
    assert s3_driver.capability(StrayUploads) is s3_driver
    bucket = await s3_driver.bucket()
    key = bucket.key("/docker/registry/v2/repositories/r/_uploads/u/data")
    created = await bucket.client.create_multipart_upload(Bucket=bucket.name, Key=key)
    other = S3Driver(S3Parameters.model_validate({**s3_driver.parameters.model_dump(),
                                                  "secretkey": s3_driver.parameters.secretkey,
                                                  "rootdirectory": "/elsewhere"}))  # fmt: skip
    try:
        assert await s3_driver.abort_uploads_older_than(timedelta(hours=1)) == 0
        assert await other.abort_uploads_older_than(timedelta(0)) == 0  # not below its root
        assert await s3_driver.abort_uploads_older_than(timedelta(0)) == 1
    finally:
        await other.close()
    listed = await bucket.client.list_multipart_uploads(Bucket=bucket.name, Prefix=bucket.root)
    assert [u for u in listed.get("Uploads", []) if u["UploadId"] == created["UploadId"]] == []
