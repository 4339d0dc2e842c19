"""A manifest push that is refused leaves no garbage: its bytes, written at their blob path
before the transaction that refused it, are queued for the collector like a deleted
manifest's. On both databases and both storage drivers, through the HTTP API."""

from __future__ import annotations

import os

from dockyard.registry.service import Registry
from tests.api.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    digest_of,
    error_code,
    image_manifest,
    push_blob,
)
from tests.gc.test_collector import collect, put_manifest, stored


async def test_the_bytes_of_a_refused_push_are_collected(
    client: Client, registry: Registry
) -> None:
    config = await push_blob(client, "app", b"{}")
    absent = os.urandom(700)  # never uploaded
    body = image_manifest(b"{}", [absent])
    refused = await client.put(
        "/v2/app/manifests/v1", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert refused.status == 400 and await error_code(refused) == "MANIFEST_BLOB_UNKNOWN"

    report = await collect(registry)

    assert [r.digest for r in report.manifest_bytes] == [digest_of(body)]
    assert not await stored(registry, digest_of(body))
    assert [r.digest for r in report.blobs] == [config]  # nothing references it either


async def test_a_refused_push_does_not_take_the_bytes_of_a_manifest_that_has_them(
    client: Client, registry: Registry
) -> None:
    """The same manifest pushed to another repository, where its child is unknown: the
    refusal queues the bytes, and the review finds a row that names them."""
    child = os.urandom(200)
    await push_blob(client, "first", b"{}")
    await push_blob(client, "first", child)
    child_body = image_manifest(b"{}", [child])
    child_digest = digest_of(child_body)
    await put_manifest(client, "first", child_digest, child_body, OCI_MANIFEST)
    index = (
        b'{"schemaVersion": 2, "mediaType": "%s", "manifests": [{"mediaType": "%s", '
        b'"digest": "%s", "size": %d}]}'
        % (OCI_INDEX.encode(), OCI_MANIFEST.encode(), child_digest.encode(), len(child_body))
    )
    await put_manifest(client, "first", "v1", index, OCI_INDEX)
    refused = await client.put(
        "/v2/second/manifests/v1", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert refused.status == 400 and await error_code(refused) == "MANIFEST_BLOB_UNKNOWN"

    report = await collect(registry, delete_untagged=True)

    assert report.manifest_bytes == [] and report.blobs == []
    assert await stored(registry, digest_of(index))
    pulled = await client.get("/v2/first/manifests/v1", headers={"Accept": OCI_INDEX})
    assert pulled.status == 200 and await pulled.read() == index
