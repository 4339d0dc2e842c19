"""Immutable tags through the API, on both databases: refusals name the rule, and nothing
changes; the same digest may be pushed again; two racing first pushes leave one winner."""

from __future__ import annotations

import asyncio
import json

from dockyard.registry.service import Registry
from tests.api.helpers import (
    OCI_MANIFEST,
    Client,
    digest_of,
    error_code,
    push_blob,
    push_image,
)


async def put(client: Client, name: str, reference: str, manifest: bytes) -> int:
    response = await client.put(
        f"/v2/{name}/manifests/{reference}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    return response.status


async def target(client: Client, name: str, tag: str) -> str:
    response = await client.head(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    return response.headers["Docker-Content-Digest"] if response.status == 200 else ""


async def test_moving_a_protected_tag_is_refused(protected: tuple[Client, Registry]) -> None:
    client, registry = protected
    first, manifest, _ = await push_image(client, "prod/app", "v1.2")
    second, other, _ = await push_image(client, "prod/app", "scratch")

    response = await client.put(
        "/v2/prod/app/manifests/v1.2", data=other, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 403
    body = await response.json()
    assert body["errors"][0]["code"] == "DENIED"
    assert "rule releases" in body["errors"][0]["message"]
    assert body["errors"][0]["detail"] == {"name": "prod/app", "tag": "v1.2", "rule": "releases"}
    assert await target(client, "prod/app", "v1.2") == first

    assert await put(client, "prod/app", "v1.2", manifest) == 201  # the same digest
    assert await target(client, "prod/app", "v1.2") == first
    assert await put(client, "prod/app", "scratch", manifest) == 201  # not protected
    snapshot = await registry.metadata.repository_snapshot("prod/app")
    assert snapshot is not None and {t.name for t in snapshot.tags} == {"v1.2", "scratch"}
    assert second != first


async def test_deleting_a_protected_tag_or_its_manifest_is_refused(
    protected: tuple[Client, Registry],
) -> None:
    client, _ = protected
    digest, _, _ = await push_image(client, "prod/app", "v2")
    for reference in ("v2", digest):
        response = await client.delete(f"/v2/prod/app/manifests/{reference}")
        assert response.status == 403, reference
        assert await error_code(response) == "DENIED"
    assert await target(client, "prod/app", "v2") == digest
    missing = await client.delete("/v2/prod/app/manifests/v9")
    assert missing.status == 404
    assert await error_code(missing) == "MANIFEST_UNKNOWN"


async def test_racing_first_pushes_leave_one_tag(protected: tuple[Client, Registry]) -> None:
    client, _ = protected
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    await push_blob(client, "prod/race", config)
    manifests = []
    for n in range(6):
        layer = f"layer {n}".encode()
        layer_digest = await push_blob(client, "prod/race", layer)
        manifests.append(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": digest_of(config),
                        "size": len(config),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer_digest,
                            "size": len(layer),
                        }
                    ],
                }
            ).encode()
        )
    statuses = await asyncio.gather(*(put(client, "prod/race", "v1", m) for m in manifests))
    assert sorted(statuses) == [201] + [403] * 5
    winner = manifests[statuses.index(201)]
    assert await target(client, "prod/race", "v1") == digest_of(winner)
