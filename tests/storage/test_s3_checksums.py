"""Streamed parts checked by a CRC32 trailer, on a real SeaweedFS: the store is seen
refusing a wrong checksum before the driver relies on it, a part with a wrong trailer is
not stored, and an upload written that way commits the bytes written."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_checksum_probe import verifies_trailers
from dockyard.storage.s3_checksums import TRAILER_NAME, Integrity
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.s3_stream import PartBody
from tests.seaweedfs import SeaweedServer

MiB = 1024 * 1024


def _driver(seaweedfs: SeaweedServer, bucket: str) -> S3Driver:
    parameters = {**seaweedfs.parameters(bucket), "rootdirectory": f"/crc/{uuid.uuid4().hex}"}
    return S3Driver(S3Parameters.model_validate(parameters))


async def test_seaweedfs_refuses_a_part_whose_trailer_is_wrong(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str
) -> None:
    """The proof the driver relies on: the right CRC32 is taken, a wrong one refused, and
    the refused part is not in the upload."""
    driver = _driver(seaweedfs, seaweedfs_bucket)
    try:
        bucket = await driver.bucket()
        assert bucket.streaming is not None
        assert await verifies_trailers(bucket.streaming, bucket.name, bucket.root)
        key = bucket.key("/probe/data")
        created = await bucket.client.create_multipart_upload(Bucket=bucket.name, Key=key)
        upload_id = created["UploadId"]
        data = random.Random(1).randbytes(6 * MiB)

        async def send(number: int, wrong: bool) -> Any:
            body = PartBody(len(data), Integrity.TRAILER_CRC32, wrong_checksum=wrong)
            assert bucket.streaming is not None
            sending = asyncio.ensure_future(
                bucket.streaming.upload_part(
                    Bucket=bucket.name,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    ContentLength=len(data),
                    Body=body,  # type: ignore[arg-type]
                )
            )
            for start in range(0, len(data), MiB):
                await body.feed(data[start : start + MiB], sending)
            return await sending

        await send(1, wrong=False)
        with pytest.raises(ClientError) as refused:
            await send(2, wrong=True)
        assert refused.value.response["Error"]["Code"] == "InvalidDigest"
        parts = await bucket.client.list_parts(Bucket=bucket.name, Key=key, UploadId=upload_id)
        assert [(part["PartNumber"], part["Size"]) for part in parts["Parts"]] == [(1, len(data))]
        await bucket.client.abort_multipart_upload(Bucket=bucket.name, Key=key, UploadId=upload_id)
    finally:
        await driver.close()


async def test_streamed_parts_go_out_with_a_trailer_and_commit_their_bytes(
    seaweedfs: SeaweedServer, seaweedfs_bucket: str
) -> None:
    driver = _driver(seaweedfs, seaweedfs_bucket)
    try:
        bucket = await driver.bucket()
        assert bucket.integrity is Integrity.TRAILER_CRC32
        assert bucket.streaming is not None
        trailers: list[bytes] = []

        def record(request: Any, **_: Any) -> None:
            trailers.append(request.headers.get("X-Amz-Trailer", b""))

        bucket.streaming.meta.events.register("before-send.s3.UploadPart", record)
        data = random.Random(2).randbytes(16 * MiB + 123)
        writer = await driver.writer("/uploads/crc/data")
        writer.expect(len(data))
        for start in range(0, len(data), 4 * MiB):
            await writer.write(data[start : start + 4 * MiB])
        state = await writer.close()
        assert trailers == [TRAILER_NAME.encode()] * 2  # 10 MiB and 6 MiB + 123 bytes
        await driver.commit("/uploads/crc/data", state, "/blob")
        assert await driver.get_content("/blob") == data
    finally:
        await driver.close()
