"""A use case wrapped without touching a handler: the seam that metrics, notifications,
the pull-through cache and tag immutability plug into."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.records import ManifestRecord
from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.registry.manifests import PushedManifest
from dockyard.registry.protocols import Manifests
from dockyard.registry.service import Registry, default_use_cases
from dockyard.registry.settings import RegistrySettings
from dockyard.storage.inmemory import InMemoryDriver
from tests.api.helpers import OCI_MANIFEST, Client, error_code, push_image


class FrozenTags:
    """Refuses to move the tag ``frozen`` once it exists, and counts what it passes on."""

    def __init__(self, inner: Manifests) -> None:
        self._inner = inner
        self.pushes: list[str] = []
        self.frozen = False

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest:
        if reference == "frozen" and self.frozen:
            raise errors.RegistryError(errors.DENIED, "tag frozen is immutable")
        pushed = await self._inner.push(name, reference, payload, content_type)
        self.pushes.append(reference)
        self.frozen = self.frozen or reference == "frozen"
        return pushed

    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
        return await self._inner.get(name, reference, accept, method)

    async def delete(self, name: str, digest: str) -> None:
        await self._inner.delete(name, digest)


@pytest.fixture
async def wrapped(tmp_path: Path) -> AsyncIterator[tuple[Client, FrozenTags]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'dockyard.db'}")
    await migrate(engine)
    metadata, storage, settings = MetadataStore(engine), InMemoryDriver(), RegistrySettings()
    plain = default_use_cases(metadata, storage, settings)
    wrapper = FrozenTags(plain.manifests)
    registry = Registry(metadata, storage, settings, plain.wrapped(manifests=wrapper))
    async with TestClient(TestServer(build_app(registry))) as client:
        yield client, wrapper


async def test_a_wrapper_sees_every_push_and_can_refuse_one(
    wrapped: tuple[Client, FrozenTags],
) -> None:
    client, wrapper = wrapped
    digest, manifest, _ = await push_image(client, "team/app", "frozen")
    assert wrapper.pushes == ["frozen"]

    _, other, _ = await push_image(client, "team/app", "v2")
    refused = await client.put(
        "/v2/team/app/manifests/frozen", data=other, headers={"Content-Type": OCI_MANIFEST}
    )
    assert refused.status == 403
    assert await error_code(refused) == "DENIED"
    assert wrapper.pushes == ["frozen", "v2"]

    got = await client.get("/v2/team/app/manifests/frozen", headers={"Accept": OCI_MANIFEST})
    assert got.status == 200
    assert got.headers["Docker-Content-Digest"] == digest
    assert await got.read() == manifest
