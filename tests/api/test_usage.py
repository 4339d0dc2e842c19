"""Storage usage over HTTP (``/dockyard/v1/usage``): the figures, from the database, on
both databases, and the access each endpoint needs (a repository's: pull on it; the
registry's: the catalog's)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import pytest

from dockyard.auth.access import CATALOG_ACCESS
from dockyard.registry.service import Registry
from tests.api.helpers import (
    OCI_MANIFEST,
    Client,
    error_code,
    image_manifest,
    push_blob,
    push_image,
)
from tests.api.test_access_control import Recorder, repo, serve


@pytest.fixture
async def usage_client(registry: Registry) -> AsyncIterator[tuple[Client, Recorder]]:
    recorder = Recorder()
    async with await serve(registry, recorder) as test_client:
        yield test_client, recorder


async def shared_layer_images(client: Client) -> dict[str, int]:
    """team/a and team/b sharing one layer; the sizes the figures are made of."""
    _, manifest_a, layers_a = await push_image(client, "team/a", "v1")
    config_a = json.loads(manifest_a)["config"]["size"]
    config_b, own = b'{"architecture": "amd64", "os": "linux"}', os.urandom(3000)
    for blob in (config_b, layers_a[0], own):
        await push_blob(client, "team/b", blob)
    manifest_b = image_manifest(config_b, [layers_a[0], own])
    response = await client.put(
        "/v2/team/b/manifests/v1", data=manifest_b, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 201
    total_a = config_a + len(layers_a[0]) + len(layers_a[1]) + len(manifest_a)
    total_b = len(config_b) + len(layers_a[0]) + len(own) + len(manifest_b)
    return {"a": total_a, "b": total_b, "shared": len(layers_a[0])}


async def test_figures_of_a_repository_and_of_the_registry(
    usage_client: tuple[Client, Recorder],
) -> None:
    client, recorder = usage_client
    sizes = await shared_layer_images(client)

    response = await client.get("/dockyard/v1/usage/team/a")
    assert response.status == 200
    assert await response.json() == {
        "name": "team/a",
        "tags": 1,
        "manifests": 1,
        "totalBytes": sizes["a"],
        "uniqueBytes": sizes["a"] - sizes["shared"],
    }
    assert recorder.seen[-1] == [repo("team/a", "pull")]

    response = await client.get("/dockyard/v1/usage")
    assert response.status == 200
    body = await response.json()
    assert recorder.seen[-1] == [CATALOG_ACCESS]
    stored = sizes["a"] + sizes["b"] - sizes["shared"]
    assert body["storedBytes"] == stored
    assert body["referencedBytes"] == sizes["a"] + sizes["b"]
    assert body["deduplicationRatio"] == round((sizes["a"] + sizes["b"]) / stored, 4)
    assert body["repositories"] == 2
    assert body["unlinkedBytes"] == 0
    assert [u["name"] for u in body["repositoryUsage"]] == ["team/a", "team/b"]


async def test_access_control_and_unknown_repositories(
    usage_client: tuple[Client, Recorder],
) -> None:
    client, recorder = usage_client
    await push_image(client, "hidden/app", "v1")
    await push_image(client, "team/app", "v1")

    listed = await (await client.get("/dockyard/v1/usage")).json()
    assert [u["name"] for u in listed["repositoryUsage"]] == ["team/app"]  # the filter

    recorder.forbidden = {repo("team/app", "pull"), CATALOG_ACCESS}
    for path in ("/dockyard/v1/usage/team/app", "/dockyard/v1/usage"):
        response = await client.get(path)
        assert response.status in (401, 403), path
    unknown = await client.get("/dockyard/v1/usage/no/such")
    assert unknown.status == 404
    assert await error_code(unknown) == "NAME_UNKNOWN"
    invalid = await client.get("/dockyard/v1/usage/UPPER")
    assert invalid.status == 400
    assert await error_code(invalid) == "NAME_INVALID"
