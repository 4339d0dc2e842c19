"""Server-side copies inside the bucket, of any size.

Up to ``multipartcopythresholdsize`` a copy is one ``CopyObject``; above it, a multipart
upload whose parts are ``UploadPartCopy`` ranges, at most ``multipartcopymaxconcurrency`` at
a time (Distribution's keys and defaults: above 32 MiB, 100 at a time). A single
``CopyObject`` fails above 5 GiB; the multipart copy does not (10,000 parts of up to 5 GiB).
The bytes never leave the store.

The parts are ``multipartcopychunksize`` (32 MiB) long, as in Distribution, unless that
makes more than :data:`COPY_PARTS` of them: then the object is cut into that many equal
parts (at most 5 GiB each). A store that copies the bytes pays for each part in flight:
SeaweedFS spent 11.0 CPU s copying 1 GiB as 32 parts of 32 MiB at once, 6.3 s as 8 of
128 MiB, 5.8 s as one (docs/performance.md, "On S3"); fewer, larger parts also mean fewer
requests to pay for on AWS, still copied side by side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from botocore.exceptions import ClientError

from dockyard.storage.s3 import MAX_PART
from dockyard.storage.s3_bucket import Bucket, not_found
from dockyard.storage.s3_writer import abort_upload

#: Most parts of one multipart copy, unless 5 GiB parts need more.
COPY_PARTS: Final = 8


@dataclass(frozen=True)
class CopySettings:
    chunksize: int
    max_concurrency: int
    threshold: int

    def part_size(self, size: int) -> int:
        """The part size of a multipart copy of ``size`` bytes: ``chunksize``, or larger so
        that there are at most :data:`COPY_PARTS` parts (never over S3's 5 GiB)."""
        return min(MAX_PART, max(self.chunksize, -(-size // COPY_PARTS)))


async def copy_key(
    bucket: Bucket, settings: CopySettings, source: str, destination: str, size: int, path: str
) -> None:
    """Copy the object ``source`` (``size`` bytes) to ``destination``; PathNotFoundError
    naming ``path`` when the source is gone."""
    copy_source = {"Bucket": bucket.name, "Key": source}
    try:
        if size <= settings.threshold:
            await bucket.client.copy_object(
                Bucket=bucket.name,
                Key=destination,
                CopySource=copy_source,  # type: ignore[arg-type]
                MetadataDirective="REPLACE",
                **bucket.new_object,  # type: ignore[arg-type]
            )
            return
        await _multipart_copy(bucket, settings, copy_source, destination, size)
    except ClientError as exc:
        raise not_found(path, exc) from exc


async def _multipart_copy(
    bucket: Bucket, settings: CopySettings, source: dict[str, str], destination: str, size: int
) -> None:
    created = await bucket.client.create_multipart_upload(
        Bucket=bucket.name,
        Key=destination,
        **bucket.new_object,  # type: ignore[arg-type]
    )
    upload_id = created["UploadId"]
    limit = asyncio.Semaphore(settings.max_concurrency)
    part_size = settings.part_size(size)

    async def copy_part(number: int, start: int) -> dict[str, str | int]:
        end = min(start + part_size, size) - 1
        async with limit:
            copied = await bucket.client.upload_part_copy(
                Bucket=bucket.name,
                Key=destination,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=source,  # type: ignore[arg-type]
                CopySourceRange=f"bytes={start}-{end}",
            )
        return {"ETag": copied["CopyPartResult"]["ETag"], "PartNumber": number}

    starts = range(0, size, part_size)
    try:
        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the other parts
                copies = [
                    group.create_task(copy_part(number, start))
                    for number, start in enumerate(starts, start=1)
                ]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        parts = [copy.result() for copy in copies]
        await bucket.client.complete_multipart_upload(
            Bucket=bucket.name,
            Key=destination,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
        )
    except BaseException:
        await asyncio.shield(abort_upload(bucket, destination, upload_id))
        raise
