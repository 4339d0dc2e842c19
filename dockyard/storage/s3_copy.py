"""Server-side copies inside the bucket, of any size.

Up to ``multipartcopythresholdsize`` a copy is one ``CopyObject``; above it, a multipart
upload whose parts are ``UploadPartCopy`` ranges of ``multipartcopychunksize``, at most
``multipartcopymaxconcurrency`` at a time (Distribution's way, with its defaults: 32 MiB
parts, 100 at a time, above 32 MiB). A single ``CopyObject`` fails above 5 GiB; the
multipart copy does not (10,000 parts of up to 5 GiB). The bytes never leave the store.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from botocore.exceptions import ClientError

from dockyard.storage.s3_bucket import Bucket, not_found
from dockyard.storage.s3_writer import abort_upload


@dataclass(frozen=True)
class CopySettings:
    chunksize: int
    max_concurrency: int
    threshold: int


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

    async def copy_part(number: int, start: int) -> dict[str, str | int]:
        end = min(start + settings.chunksize, size) - 1
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

    starts = range(0, size, settings.chunksize)
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
