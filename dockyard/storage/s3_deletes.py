"""The S3 driver's ``delete_many``: the keys at and below each path, listed a few paths at a
time, then deleted a thousand per ``DeleteObjects`` request (S3's limit), with the keys the
store refused reported against their paths.

A path's own key is deleted without asking whether it exists (a missing key is no error to
``DeleteObjects``), so a blob directory costs one listing and a thousandth of a delete,
where :meth:`~dockyard.storage.s3_driver.S3Driver.delete` spends a listing, a ``HEAD`` and
a delete request on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from dockyard.storage.driver import StorageError, check_file_path
from dockyard.storage.s3_bucket import Bucket

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

#: S3's limit of keys per DeleteObjects request
KEYS_PER_REQUEST: Final = 1000
#: listings in flight at once
LISTINGS_AT_ONCE: Final = 16


async def delete_trees(bucket: Bucket, paths: Sequence[str]) -> dict[str, StorageError]:
    """Delete each path's object and every object below it; returns failures by path
    (nothing at a path is no failure). A path whose listing or delete request failed
    is a failure as a whole, though some of its keys may be gone."""
    failures: dict[str, StorageError] = {}
    owner: dict[str, str] = {}  # key -> the path it is deleted for
    gate = asyncio.Semaphore(LISTINGS_AT_ONCE)

    async def list_one(path: str) -> None:
        try:
            key = bucket.key(check_file_path(path))
            async with gate:
                below = await keys_below(bucket, key + "/")
        except StorageError as exc:
            failures[path] = exc
            return
        except (ClientError, BotoCoreError) as exc:
            failures[path] = StorageError(f"cannot list {path}: {exc}")
            return
        for found in (key, *below):
            owner[found] = path

    await asyncio.gather(*(list_one(path) for path in paths))
    keys = list(owner)
    for start in range(0, len(keys), KEYS_PER_REQUEST):
        batch = keys[start : start + KEYS_PER_REQUEST]
        for key, message in (await _delete_batch(bucket, batch)).items():
            path = owner.get(key)
            if path is not None:
                failures.setdefault(path, StorageError(f"cannot delete {path}: {message}"))
    return failures


async def keys_below(bucket: Bucket, prefix: str) -> list[str]:
    """Every key starting with ``prefix``."""
    keys: list[str] = []
    pages = bucket.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.name, Prefix=prefix
    )
    async for page in pages:
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


async def _delete_batch(bucket: Bucket, keys: list[str]) -> dict[str, str]:
    """Delete up to a thousand keys in one request; the refused ones with the reason."""
    objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
    try:
        answer = await bucket.client.delete_objects(
            Bucket=bucket.name, Delete={"Objects": objects, "Quiet": True}
        )
    except (ClientError, BotoCoreError) as exc:
        return dict.fromkeys(keys, str(exc))
    return {
        str(error.get("Key", "")): f"{error.get('Code', '')} {error.get('Message', '')}".strip()
        for error in answer.get("Errors", [])
    }
