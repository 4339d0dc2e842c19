"""The S3 driver's ``delete_many`` on a real SeaweedFS: keys listed per path, deleted in
``DeleteObjects`` requests of at most ``KEYS_PER_REQUEST`` keys, failures by path."""

from __future__ import annotations

import pytest

from dockyard.storage import s3_deletes
from dockyard.storage.driver import InvalidPathError
from dockyard.storage.s3_driver import S3Driver


async def _keys(s3_driver: S3Driver) -> list[str]:
    bucket = await s3_driver.bucket()
    return sorted(bucket.path(k) for k in await s3_deletes.keys_below(bucket, bucket.root + "/"))


async def test_blob_directories_go_in_requests_of_a_few_keys(
    s3_driver: S3Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several requests on a few keys, as a thousand would take on a large collection.
    monkeypatch.setattr(s3_deletes, "KEYS_PER_REQUEST", 3)
    doomed = [f"/blobs/sha256/ab/ab{n:02d}" for n in range(7)]
    for path in doomed:
        await s3_driver.put_content(f"{path}/data", b"x")
    await s3_driver.put_content("/blobs/sha256/ab/ab00-kept/data", b"k")
    await s3_driver.put_content("/tree/a/b/c", b"t")
    await s3_driver.put_content("/file", b"f")

    failures = await s3_driver.delete_many([*doomed, "/tree", "/file", "/nothing/there"])

    assert failures == {}
    assert await _keys(s3_driver) == ["/blobs/sha256/ab/ab00-kept/data"]


async def test_a_path_that_cannot_be_deleted_is_reported_and_the_rest_go(
    s3_driver: S3Driver,
) -> None:
    await s3_driver.put_content("/blobs/one/data", b"1")
    failures = await s3_driver.delete_many(["/blobs/one", "/blobs/../escape"])
    assert list(failures) == ["/blobs/../escape"]
    assert isinstance(failures["/blobs/../escape"], InvalidPathError)
    assert await _keys(s3_driver) == []
