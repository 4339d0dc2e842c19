"""Server-side copies on a real SeaweedFS: one ``CopyObject`` up to the threshold, above it
a multipart copy in parts of ``multipartcopychunksize``, or in ``COPY_PARTS`` larger parts
when that would make more of them."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockyard.storage.s3 import MAX_PART, MIN_PART, S3Parameters
from dockyard.storage.s3_copy import COPY_PARTS, CopySettings
from dockyard.storage.s3_driver import S3Driver
from tests.seaweedfs import SeaweedServer

MiB = 1024 * 1024
GiB = 1024 * MiB


def test_part_size_grows_past_copy_parts_and_stops_at_5_gib() -> None:
    settings = CopySettings(chunksize=32 * MiB, max_concurrency=100, threshold=32 * MiB)
    assert settings.part_size(100 * MiB) == 32 * MiB  # Distribution's parts: 4 of them
    assert settings.part_size(COPY_PARTS * 32 * MiB) == 32 * MiB
    assert settings.part_size(GiB) == GiB // COPY_PARTS  # 8 parts of 128 MiB
    assert settings.part_size(5 * GiB) == 5 * GiB // COPY_PARTS
    assert settings.part_size(100 * GiB) == MAX_PART  # 20 parts of 5 GiB


class _Copies:
    def __init__(self) -> None:
        self.made: Counter[str] = Counter()
        self.ranges: list[str] = []

    def before(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.made[operation] += 1
        if operation == "UploadPartCopy":
            self.ranges.append(params["CopySourceRange"])


@pytest.fixture
async def driver(seaweedfs: SeaweedServer, seaweedfs_bucket: str) -> AsyncIterator[S3Driver]:
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/copies/{uuid.uuid4().hex}",
        "multipartcopychunksize": MIN_PART,
        "multipartcopythresholdsize": MIN_PART,
        "multipartcopymaxconcurrency": 3,
    }
    instance = S3Driver(S3Parameters.model_validate(parameters))
    yield instance
    await instance.close()


async def _moved(driver: S3Driver, size: int, seed: int) -> tuple[_Copies, bytes, bytes]:
    data = random.Random(seed).randbytes(size)
    await driver.put_content("/from/data", data)
    copies = _Copies()
    (await driver.bucket()).client.meta.events.register("before-parameter-build.s3", copies.before)
    await driver.move("/from/data", "/to/data")
    moved = await driver.get_content("/to/data")
    assert await driver.stat("/from/data") is None
    return copies, data, moved


async def test_above_the_threshold_parts_are_the_configured_size(driver: S3Driver) -> None:
    copies, data, moved = await _moved(driver, 4 * MIN_PART + 123, seed=1)
    assert hashlib.sha256(moved).digest() == hashlib.sha256(data).digest()
    assert copies.made["CopyObject"] == 0
    assert copies.made["UploadPartCopy"] == 5  # four of 5 MiB and the 123 bytes left
    assert copies.ranges[0] == f"bytes=0-{MIN_PART - 1}"


async def test_a_big_copy_has_copy_parts_larger_parts(driver: S3Driver) -> None:
    size = 2 * COPY_PARTS * MIN_PART + 7  # 16 parts of 5 MiB and a bit, configured
    copies, data, moved = await _moved(driver, size, seed=2)
    assert hashlib.sha256(moved).digest() == hashlib.sha256(data).digest()
    assert copies.made["UploadPartCopy"] == COPY_PARTS
    part = -(-size // COPY_PARTS)
    assert sorted(copies.ranges)[0] == f"bytes=0-{part - 1}"


async def test_up_to_the_threshold_one_copy_object(driver: S3Driver) -> None:
    copies, data, moved = await _moved(driver, MIN_PART, seed=3)
    assert moved == data
    assert copies.made["CopyObject"] == 1
    assert copies.made["UploadPartCopy"] == 0
