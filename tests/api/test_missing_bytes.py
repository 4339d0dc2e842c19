"""A blob whose bytes vanished from storage behind Dockyard's back (registry:2's
garbage-collect, an operator's ``rm``) is unknown, not a server error, until pushed again."""

from __future__ import annotations

import os

import aiohttp
import pytest

from dockyard.oci.digest import Digest
from dockyard.registry.service import Registry
from dockyard.storage import paths

from .helpers import OCI_MANIFEST, Client, digest_of, error_code, image_manifest, push_blob


async def _remove_bytes(registry: Registry, digest: str) -> None:
    await registry.storage.delete(paths.blob_data(Digest.parse(digest)))


async def test_get_and_head_answer_blob_unknown_and_push_heals(
    client: Client, registry: Registry
) -> None:
    data = os.urandom(3 * 1024 * 1024)  # past the small-blob read: the streamed path
    digest = await push_blob(client, "team/app", data)
    await push_blob(client, "team/other", data)
    await _remove_bytes(registry, digest)

    response = await client.get(f"/v2/team/app/blobs/{digest}")
    assert response.status == 404
    assert await error_code(response) == "BLOB_UNKNOWN"
    for name in ("team/app", "team/other"):  # the bytes are gone for every repository
        head = await client.head(f"/v2/{name}/blobs/{digest}")
        assert head.status == 404, name
    assert await registry.metadata.missing_blob_count() == 1

    # A manifest cannot reference it, and a mount finds nothing to mount.
    config = b'{"architecture": "amd64", "os": "linux"}'
    await push_blob(client, "team/app", config)
    manifest = image_manifest(config, [data])
    put = await client.put(
        "/v2/team/app/manifests/v1", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status == 400
    assert await error_code(put) == "MANIFEST_BLOB_UNKNOWN"
    mount = await client.post(f"/v2/team/third/blobs/uploads/?mount={digest}&from=team/app")
    assert mount.status == 202  # no mount: an upload session starts instead

    # Uploading it again brings the bytes back for every repository that linked it.
    await push_blob(client, "team/app", data)
    assert await registry.metadata.missing_blob_count() == 0
    for name in ("team/app", "team/other"):
        response = await client.get(f"/v2/{name}/blobs/{digest}")
        assert response.status == 200, name
        assert await response.read() == data
    put = await client.put(
        "/v2/team/app/manifests/v1", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status == 201


async def test_small_blob_missing_is_unknown_too(client: Client, registry: Registry) -> None:
    data = b"a small layer"
    digest = await push_blob(client, "team/app", data)
    await _remove_bytes(registry, digest)
    response = await client.get(f"/v2/team/app/blobs/{digest}")
    assert response.status == 404
    assert await error_code(response) == "BLOB_UNKNOWN"
    assert digest == digest_of(data)


async def test_bytes_shorter_than_the_blob_cut_the_response_short(
    client: Client, registry: Registry
) -> None:
    """Bytes that end early are found only once the response has begun: the connection is
    cut before the declared length, never completed with an error body."""
    data = os.urandom(3 * 1024 * 1024)  # past the small-blob read: sendfile, or a stream
    digest = await push_blob(client, "team/app", data)
    await registry.storage.put_content(paths.blob_data(Digest.parse(digest)), data[: 1 << 20])
    response = await client.get(f"/v2/team/app/blobs/{digest}")
    assert (response.status, response.content_length) == (200, len(data))
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
