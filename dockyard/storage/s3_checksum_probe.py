"""Whether a store verifies the CRC32 trailer of a streamed part: asked once per process,
by sending it one part with the right checksum and one with a wrong one.

The store must take the first (its ETag the MD5 of the bytes, so it decoded the
``aws-chunked`` body) and refuse the second; anything else (a store that ignores the
trailer, stores the framing as bytes, or rejects ``aws-chunked``) keeps the ETag's MD5
check. The probe's multipart upload, beside the registry's keys, is aborted at once (a
multipart upload is in no listing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from dockyard.storage.s3_checksums import Integrity
from dockyard.storage.s3_progress import TAIL_MARK
from dockyard.storage.s3_stream import PartBody, etag_matches

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)

_PROBE: Final = b"dockyard checks that the store verifies a part's checksum\n"
# A refusal of a part because of its checksum: S3 answers BadDigest, SeaweedFS InvalidDigest.
_REFUSED: Final = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"})


async def _send(
    client: S3Client, bucket: str, key: str, upload_id: str, number: int, wrong: bool
) -> str:
    body = PartBody(len(_PROBE), Integrity.TRAILER_CRC32, wrong_checksum=wrong)
    sending = asyncio.ensure_future(
        client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            ContentLength=len(_PROBE),
            Body=body,  # type: ignore[arg-type]
        )
    )
    await body.feed(_PROBE, sending)
    sent: Any = await sending
    return str(sent["ETag"])


async def verifies_trailers(client: S3Client, bucket: str, root: str) -> bool:
    """Whether the store at ``client`` checks a part's ``x-amz-checksum-crc32`` trailer."""
    key = f"{root}/{TAIL_MARK}checksum-probe-{uuid.uuid4().hex}".lstrip("/")
    try:
        created = await client.create_multipart_upload(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "checksum probe: cannot create a multipart upload (%s); parts are checked by MD5", exc
        )
        return False
    upload_id = created["UploadId"]
    try:
        etag = await _send(client, bucket, key, upload_id, 1, wrong=False)
        if not etag_matches(etag, hashlib.md5(_PROBE, usedforsecurity=False).hexdigest()):
            return False
        try:
            await _send(client, bucket, key, upload_id, 2, wrong=True)
        except ClientError as exc:
            return str(exc.response.get("Error", {}).get("Code", "")) in _REFUSED
        return False  # the wrong checksum was taken: the store does not verify it
    except (ClientError, BotoCoreError) as exc:
        log.info("checksum probe: the store does not take CRC32 trailers (%s)", exc)
        return False
    finally:
        with contextlib.suppress(ClientError, BotoCoreError):
            await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
