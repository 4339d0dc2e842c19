"""Two registry replicas (each its own Registry, driver instance and HTTP app) on one
metadata database and one emulated container or bucket: a chunked push whose requests
alternate between them completes, the blob redirects to a URL that serves it, and an
upload abandoned half-way is purged leaving nothing in the store."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from dockyard.registry.service import Registry
from dockyard.storage.driver import StorageDriver
from tests.storage.object_stores import (
    Client,
    another_instance,
    azure_leftovers,
    gcs_leftovers,
    make_azure_driver,
    make_gcs_driver,
    serving_replicas,
)

MiB = 1024 * 1024


@pytest.fixture(params=["azure", "gcs"])
async def replicas(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[tuple[list[Client], list[Registry]]]:
    first = (make_azure_driver if request.param == "azure" else make_gcs_driver)(request)
    drivers: list[StorageDriver] = [first, another_instance(first)]
    async with serving_replicas(drivers, database_url) as replicas:
        yield replicas


def _path(location: str) -> str:
    return "/" + location.split("/", 3)[3] if location.startswith("http") else location


async def test_a_chunked_push_across_replicas(
    replicas: tuple[list[Client], list[Registry]],
) -> None:
    clients, _registries = replicas
    data = random.Random(1).randbytes(5 * MiB + 321)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    cuts = [0, 2 * MiB + 7, 2 * MiB + 8, 4 * MiB, len(data)]  # odd sizes, one of 1 byte
    started = await clients[0].post("/v2/app/blobs/uploads/")
    assert started.status == 202
    location = _path(started.headers["Location"])
    for index, (start, end) in enumerate(itertools.pairwise(cuts[:-1])):
        headers = {
            "Content-Range": f"{start}-{end - 1}",
            "Content-Type": "application/octet-stream",
        }
        patched = await clients[(index + 1) % 2].patch(
            location, data=data[start:end], headers=headers
        )
        assert patched.status == 202, await patched.text()
        location = _path(patched.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = await clients[0].put(f"{location}{separator}digest={digest}", data=data[cuts[-2] :])
    assert done.status == 201, await done.text()
    for client in clients:
        fetched = await client.get(f"/v2/app/blobs/{digest}", allow_redirects=False)
        assert fetched.status == 307
        async with (
            aiohttp.ClientSession() as http,
            http.get(fetched.headers["Location"]) as direct,
        ):
            assert await direct.read() == data


async def test_an_abandoned_upload_is_purged_leaving_nothing(
    replicas: tuple[list[Client], list[Registry]],
) -> None:
    clients, registries = replicas
    started = await clients[0].post("/v2/app/blobs/uploads/")
    location = _path(started.headers["Location"])
    patched = await clients[1].patch(location, data=random.Random(2).randbytes(9 * MiB))
    assert patched.status == 202
    purged = await registries[1].uploads.purge(timedelta(0))
    assert len(purged) == 1
    storage = registries[0].storage
    leftovers = azure_leftovers if storage.name == "azure" else gcs_leftovers
    assert await leftovers(storage, None) == []  # type: ignore[arg-type]
    assert [path async for path in storage.walk("/")] == []
