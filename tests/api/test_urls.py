"""``http.prefix``, ``http.host``, ``http.relativeurls`` and ``http.headers`` on the wire."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.api.context import UrlBuilder
from dockyard.registry.service import Registry
from tests.api.helpers import Client, digest_of


async def _client(
    registry: Registry, urls: UrlBuilder, extra_headers: dict[str, list[str]] | None = None
) -> Client:
    app = build_app(registry, urls, extra_headers)
    app.on_cleanup.clear()
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def prefixed(registry: Registry) -> AsyncIterator[Client]:
    client = await _client(
        registry,
        UrlBuilder(prefix="/registry", relative=True),
        extra_headers={"X-Content-Type-Options": ["nosniff"], "X-Frame-Options": ["DENY"]},
    )
    yield client
    await client.close()


async def test_prefix_and_relative_locations(prefixed: Client) -> None:
    assert (await prefixed.get("/v2/")).status == 404
    response = await prefixed.get("/registry/v2/")
    assert response.status == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    response = await prefixed.post("/registry/v2/app/blobs/uploads/")
    assert response.status == 202
    location = response.headers["Location"]
    assert location.startswith("/registry/v2/app/blobs/uploads/")
    data = os.urandom(100)
    response = await prefixed.put(f"{location}?digest={digest_of(data)}", data=data)
    assert response.status == 201
    assert response.headers["Location"] == f"/registry/v2/app/blobs/{digest_of(data)}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_host_makes_absolute_locations(registry: Registry) -> None:
    client = await _client(registry, UrlBuilder(host="https://registry.example.com"))
    try:
        response = await client.post("/v2/app/blobs/uploads/")
        assert response.headers["Location"].startswith(
            "https://registry.example.com/v2/app/blobs/uploads/"
        )
    finally:
        await client.close()
