"""RemoteRegistry against real registries: Distribution 2.8.2 with htpasswd (Basic) and
Dockyard with its token service (Bearer challenges, scoped tokens)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator

import pytest

from dockyard.oci import mediatypes
from dockyard.remote import RemoteError, RemoteRegistry, RemoteUnavailable
from tests.e2e.server import free_port

from .servers import PASSWORD, USER, CredentialedServer

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["registry2_basic", "dockyard_token"])
def server(request: pytest.FixtureRequest) -> CredentialedServer:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def image_manifest(config: bytes, layer: bytes, subject: str | None = None) -> bytes:
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": digest_of(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer), "size": len(layer)}],
    }  # fmt: skip
    if subject:
        manifest["subject"] = {"mediaType": mediatypes.OCI_MANIFEST, "digest": subject,
                               "size": 1}  # fmt: skip
    return json.dumps(manifest, indent=3).encode()  # not canonical: bytes must be kept


async def push_small_image(server: CredentialedServer, repo: str) -> bytes:
    """Push a two-blob image as ``repo:v1`` with USER's credentials; its manifest."""
    layer, config = os.urandom(5000), b"{}"
    body = image_manifest(config, layer)
    async with RemoteRegistry(server.url, username=USER, password=PASSWORD) as client:
        for blob in (layer, config):
            await client.push_blob(repo, digest_of(blob), len(blob), chunks_of(blob))
        await client.put_manifest(repo, "v1", body, mediatypes.OCI_MANIFEST)
    return body


async def test_push_pull_round_trip(server: CredentialedServer) -> None:
    repo, other = f"remote/a-{secrets.token_hex(3)}", f"remote/b-{secrets.token_hex(3)}"
    layer, config = os.urandom(300_000), b'{"architecture":"amd64","os":"linux"}'
    async with RemoteRegistry(server.url, username=USER, password=PASSWORD) as client:
        await client.ping()
        assert await client.blob_size(repo, digest_of(layer)) is None
        for blob in (layer, config):
            await client.push_blob(repo, digest_of(blob), len(blob), chunks_of(blob))
        assert await client.blob_size(repo, digest_of(layer)) == len(layer)
        body = image_manifest(config, layer)
        digest = await client.put_manifest(repo, "v1", body, mediatypes.OCI_MANIFEST)
        assert digest == digest_of(body)

        info = await client.head_manifest(repo, "v1")
        assert info is not None and (info.digest, info.size) == (digest, len(body))
        fetched = await client.get_manifest(repo, digest)
        assert (fetched.body, fetched.media_type) == (body, mediatypes.OCI_MANIFEST)
        assert await client.head_manifest(repo, "missing") is None

        async with client.open_blob(repo, digest_of(layer)) as stream:
            assert stream.size == len(layer)
            assert b"".join([chunk async for chunk in stream]) == layer

        assert await client.mount_blob(other, digest_of(layer), repo) is True
        assert await client.blob_size(other, digest_of(layer)) == len(layer)
        assert await client.mount_blob(other, digest_of(b"nowhere"), repo) is False

        await client.put_manifest(repo, "v2", body, mediatypes.OCI_MANIFEST)
        assert sorted(await client.list_tags(repo)) == ["v1", "v2"]
        assert {repo, other} <= set(await client.catalog())
        assert await client.referrers(repo, digest) == []


async def test_referrers_from_the_api_or_the_fallback_tag(server: CredentialedServer) -> None:
    repo = f"remote/ref-{secrets.token_hex(3)}"
    layer, config = os.urandom(1000), b"{}"
    async with RemoteRegistry(server.url, username=USER, password=PASSWORD) as client:
        for blob in (layer, config):
            await client.push_blob(repo, digest_of(blob), len(blob), chunks_of(blob))
        subject = await client.put_manifest(
            repo, "v1", image_manifest(config, layer), mediatypes.OCI_MANIFEST
        )
        signature = image_manifest(config, layer, subject=subject)
        signature_digest = await client.put_manifest(
            repo, digest_of(signature), signature, mediatypes.OCI_MANIFEST
        )
        if server.kind == "registry2":  # no referrers API: the client maintains the tag
            index = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                                "manifests": [{"mediaType": mediatypes.OCI_MANIFEST,
                                               "digest": signature_digest,
                                               "size": len(signature)}]}).encode()  # fmt: skip
            await client.put_manifest(repo, subject.replace(":", "-"), index, mediatypes.OCI_INDEX)
        found = await client.referrers(repo, subject)
        assert [entry["digest"] for entry in found] == [signature_digest]


async def test_wrong_password_is_refused(server: CredentialedServer) -> None:
    async with RemoteRegistry(server.url, username=USER, password="wrong") as client:
        with pytest.raises(RemoteError) as caught:
            await client.ping()
    assert caught.value.status == 401
    assert not isinstance(caught.value, RemoteUnavailable)


async def test_anonymous_is_refused_with_the_registry_error(server: CredentialedServer) -> None:
    async with RemoteRegistry(server.url) as client:
        with pytest.raises(RemoteError) as caught:
            await client.list_tags("remote/anything")
    assert caught.value.status == 401
    assert caught.value.code == "UNAUTHORIZED"


async def test_unreachable_registry_is_unavailable() -> None:
    async with RemoteRegistry(f"http://127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(RemoteUnavailable):
            await client.ping()


async def test_sync_between_a_token_registry_and_a_basic_one(
    dockyard_token: CredentialedServer, registry2_basic: CredentialedServer
) -> None:
    """Bearer tokens per scope (catalog, pull) at the source, Basic at the destination;
    credentials from the environment and from the command line."""
    repo = f"remote/sync-{secrets.token_hex(3)}"
    body = await push_small_image(dockyard_token, repo)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dockyard", "sync", "--quiet", f"{dockyard_token.url}/{repo}",
        f"{registry2_basic.url}/copy/{repo}", "--dest-creds", f"{USER}:{PASSWORD}",
        env={**os.environ, "DOCKYARD_SRC_CREDS": f"{USER}:{PASSWORD}"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "1 images, 1 copied" in out.decode()
    async with RemoteRegistry(registry2_basic.url, username=USER, password=PASSWORD) as client:
        fetched = await client.get_manifest(f"copy/{repo}", "v1")
    assert fetched.body == body


async def test_sync_without_credentials_stops_in_one_line(
    dockyard_token: CredentialedServer,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dockyard", "sync", dockyard_token.url, dockyard_token.url,
        env={k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 3
    # anonymous GET /v2/ passes (an anonymous token); the catalog is refused
    assert err.decode().startswith("error: ") and err.count(b"\n") == 1
    assert "401 UNAUTHORIZED" in err.decode()
