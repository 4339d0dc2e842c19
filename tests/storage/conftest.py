"""The drivers that ``test_driver_suite.py`` runs against: one ``DriverCase`` line each.

A case builds a fresh, empty driver for one test (object stores: in a new container or
bucket of the session's emulator) and, once the test is over, lists what the driver left
behind that no caller can see (temporary files, uploads never committed or aborted,
staged blocks, part objects): the suite fails on any.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.storage.driver import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.inmemory import InMemoryDriver
from dockyard.storage.s3 import MIN_PART, S3Parameters
from dockyard.storage.s3_driver import S3Driver
from dockyard.storage.s3_progress import TAIL_MARK
from tests.seaweedfs import SeaweedServer
from tests.storage.object_stores import (
    azure_leftovers,
    gcs_leftovers,
    make_azure_driver,
    make_gcs_driver,
)

Leftovers = Callable[[StorageDriver, Path], list[str] | Awaitable[list[str]]]


def _no_leftovers(_driver: StorageDriver, _base: Path) -> list[str]:
    return []


def _inmemory_leftovers(driver: StorageDriver, _base: Path) -> list[str]:
    """Uploads neither committed nor aborted."""
    assert isinstance(driver, InMemoryDriver)
    return [f"upload {token} at {upload.path}" for token, upload in driver.uploads.items()]


@dataclass(frozen=True)
class DriverCase:
    name: str
    make: Callable[[Path, pytest.FixtureRequest], StorageDriver]
    leftovers: Leftovers = _no_leftovers


def _filesystem_leftovers(driver: StorageDriver, base: Path) -> list[str]:
    """Temporaries under the root, and anything written outside it."""
    found = []
    for directory, _dirs, files in os.walk(base):
        found += [os.path.join(directory, f) for f in files if f.endswith(".tmp")]
    found += [str(p) for p in base.iterdir() if p.name != "root"]
    return found


def _s3(_base: Path, request: pytest.FixtureRequest) -> StorageDriver:
    """A prefix of its own in the session's bucket, with the smallest parts and copy
    thresholds S3 allows, so that the suite's few MiB take every path: parts, tails,
    multipart copies."""
    server: SeaweedServer = request.getfixturevalue("seaweedfs")
    bucket: str = request.getfixturevalue("seaweedfs_bucket")
    parameters = S3Parameters.model_validate(
        {
            **server.parameters(bucket),
            "rootdirectory": f"/t/{uuid.uuid4().hex[:8]}",  # short: the suite needs 1010
            "chunksize": MIN_PART,
            "multipartcopychunksize": MIN_PART,
            "multipartcopythresholdsize": MIN_PART,
            "multipartcopymaxconcurrency": 4,
        }
    )
    return S3Driver(parameters)


async def _s3_leftovers(driver: StorageDriver, _base: Path) -> list[str]:
    """Multipart uploads in progress and tail objects below the driver's root."""
    assert isinstance(driver, S3Driver)
    bucket = await driver.bucket()
    uploads = await bucket.client.list_multipart_uploads(Bucket=bucket.name, Prefix=bucket.root)
    found = [f"multipart upload {u['Key']}" for u in uploads.get("Uploads", [])]
    objects = await bucket.client.list_objects_v2(Bucket=bucket.name, Prefix=bucket.root)
    found += [o["Key"] for o in objects.get("Contents", []) if TAIL_MARK in o["Key"]]
    return found


DRIVERS = [
    DriverCase(
        "filesystem", lambda base, _r: FilesystemDriver(base / "root"), _filesystem_leftovers
    ),
    DriverCase("inmemory", lambda _base, _r: InMemoryDriver(), _inmemory_leftovers),
    DriverCase("s3", _s3, _s3_leftovers),
    DriverCase("azure", lambda _base, r: make_azure_driver(r), azure_leftovers),
    DriverCase("gcs", lambda _base, r: make_gcs_driver(r), gcs_leftovers),
]


@pytest.fixture(params=DRIVERS, ids=lambda case: case.name)
async def driver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageDriver]:
    case: DriverCase = request.param
    base = tmp_path / "driver"
    base.mkdir()
    instance = case.make(base, request)
    yield instance
    leftovers = case.leftovers(instance, base)
    if inspect.isawaitable(leftovers):
        leftovers = await leftovers
    await instance.close()
    assert leftovers == []


@pytest.fixture
async def s3_driver(seaweedfs: SeaweedServer, seaweedfs_bucket: str) -> AsyncIterator[S3Driver]:
    """An S3 driver with the default settings, under a prefix of its own in the session's
    bucket."""
    parameters = {
        **seaweedfs.parameters(seaweedfs_bucket),
        "rootdirectory": f"/o/{uuid.uuid4().hex}",
    }
    instance = S3Driver(S3Parameters.model_validate(parameters))
    yield instance
    await instance.close()
