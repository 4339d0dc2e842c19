"""Manifests over HTTP: push and pull by tag and digest, validation, delete, negotiation."""

from __future__ import annotations

import io
import json
import os

from tests.api.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    digest_of,
    error_code,
    image_manifest,
    push_blob,
    push_image,
)

NAME = "acme/web"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


async def test_push_and_pull_by_tag_and_digest(client: Client) -> None:
    digest, manifest, _ = await push_image(client, NAME, "v1")
    assert digest == digest_of(manifest)
    for reference in ("v1", digest):
        response = await client.get(
            f"/v2/{NAME}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )
        assert response.status == 200
        assert await response.read() == manifest
        assert response.headers["Content-Type"] == OCI_MANIFEST
        assert response.headers["Docker-Content-Digest"] == digest
        head = await client.head(f"/v2/{NAME}/manifests/{reference}")
        assert head.status == 200
        assert head.headers["Content-Length"] == str(len(manifest))


async def test_push_by_digest(client: Client) -> None:
    config, layer = b'{"os":"linux"}', os.urandom(100)
    await push_blob(client, NAME, config)
    await push_blob(client, NAME, layer)
    manifest = image_manifest(config, [layer])
    digest = digest_of(manifest)
    response = await client.put(
        f"/v2/{NAME}/manifests/{digest}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 201
    wrong = digest_of(b"x")
    response = await client.put(
        f"/v2/{NAME}/manifests/{wrong}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 400
    assert await error_code(response) == "DIGEST_INVALID"


async def test_docker_schema2_and_manifest_list(client: Client) -> None:
    config, layer = b'{"os":"linux"}', os.urandom(100)
    await push_blob(client, NAME, config)
    await push_blob(client, NAME, layer)
    manifest = image_manifest(config, [layer], media_type=DOCKER_MANIFEST)
    response = await client.put(
        f"/v2/{NAME}/manifests/amd64", data=manifest, headers={"Content-Type": DOCKER_MANIFEST}
    )
    assert response.status == 201
    child = response.headers["Docker-Content-Digest"]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": child,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    response = await client.put(
        f"/v2/{NAME}/manifests/multi", data=index, headers={"Content-Type": DOCKER_LIST}
    )
    assert response.status == 201
    # A client that accepts lists gets the list ...
    response = await client.get(f"/v2/{NAME}/manifests/multi", headers={"Accept": DOCKER_LIST})
    assert await response.read() == index
    # ... one that accepts only images gets the linux/amd64 image, as from registry:2.
    response = await client.get(f"/v2/{NAME}/manifests/multi", headers={"Accept": DOCKER_MANIFEST})
    assert response.status == 200
    assert await response.read() == manifest


async def test_oci_index_requires_children(client: Client) -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest_of(b"missing"), "size": 7}],
        }
    ).encode()
    response = await client.put(
        f"/v2/{NAME}/manifests/idx", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status == 400
    assert await error_code(response) == "MANIFEST_BLOB_UNKNOWN"


async def test_missing_blobs_are_refused_and_nothing_is_stored(client: Client) -> None:
    manifest = image_manifest(b"{}", [b"layer never pushed"])
    response = await client.put(
        f"/v2/{NAME}/manifests/broken", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 400
    assert await error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert (await client.get(f"/v2/{NAME}/manifests/broken")).status == 404
    assert (await client.get(f"/v2/{NAME}/manifests/{digest_of(manifest)}")).status == 404


async def test_blob_of_another_repository_does_not_count(client: Client) -> None:
    config, layer = b"{}", os.urandom(64)
    await push_blob(client, "elsewhere/repo", config)
    await push_blob(client, "elsewhere/repo", layer)
    manifest = image_manifest(config, [layer])
    response = await client.put(
        f"/v2/{NAME}/manifests/x", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 400


async def test_malformed_manifests(client: Client) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (
            b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
        (b'{"schemaVersion": 1}', OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode(), OCI_MANIFEST),
        (
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
            OCI_MANIFEST,
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "x/y", "digest": "sha256:12", "size": 1},
                    "layers": [],
                }
            ).encode(),
            OCI_MANIFEST,
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "x/y", "digest": digest_of(b""), "size": -1},
                    "layers": [],
                }
            ).encode(),
            OCI_MANIFEST,
        ),
        (
            json.dumps({"schemaVersion": 2, "mediaType": "application/x-unknown"}).encode(),
            "application/x-unknown",
        ),
    ]
    for body, content_type in cases:
        response = await client.put(
            f"/v2/{NAME}/manifests/bad", data=body, headers={"Content-Type": content_type}
        )
        assert response.status == 400, body
        assert await error_code(response) == "MANIFEST_INVALID", body
    assert (await client.get(f"/v2/{NAME}/tags/list")).status == 404


async def test_schema1_message_is_clear(client: Client) -> None:
    response = await client.put(
        f"/v2/{NAME}/manifests/old",
        data=b'{"schemaVersion": 1, "fsLayers": []}',
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
    )
    body = await response.json()
    assert "schema1" in body["errors"][0]["message"]


async def test_oversized_manifest(client: Client) -> None:
    big = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    response = await client.put(
        f"/v2/{NAME}/manifests/big", data=io.BytesIO(big), headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 400
    assert await error_code(response) == "MANIFEST_INVALID"


async def test_delete_tag_keeps_manifest(client: Client) -> None:
    digest, _, _ = await push_image(client, NAME, "t1")
    response = await client.delete(f"/v2/{NAME}/manifests/t1")
    assert response.status == 202
    assert (await client.get(f"/v2/{NAME}/manifests/t1")).status == 404
    assert (await client.get(f"/v2/{NAME}/manifests/{digest}")).status == 200


async def test_delete_by_digest_removes_tags(client: Client) -> None:
    digest, _, _ = await push_image(client, NAME, "t2")
    assert (await client.delete(f"/v2/{NAME}/manifests/{digest}")).status == 202
    assert (await client.get(f"/v2/{NAME}/manifests/{digest}")).status == 404
    response = await client.get(f"/v2/{NAME}/manifests/t2")
    assert response.status == 404
    assert await error_code(response) == "MANIFEST_UNKNOWN"
    assert (await client.delete(f"/v2/{NAME}/manifests/{digest}")).status == 404


async def test_tag_moves(client: Client) -> None:
    first, _, _ = await push_image(client, NAME, "latest")
    second, _, _ = await push_image(client, NAME, "latest")
    response = await client.get(f"/v2/{NAME}/manifests/latest")
    assert response.headers["Docker-Content-Digest"] == second
    assert (await client.get(f"/v2/{NAME}/manifests/{first}")).status == 200


async def test_invalid_tag(client: Client) -> None:
    # No manifest can be at a malformed tag: reads answer 404, as registry:2 does ...
    for tag in ("-bad", ".INVALID_MANIFEST_NAME", "a" * 129):
        response = await client.get(f"/v2/{NAME}/manifests/{tag}")
        assert response.status == 404
        assert await error_code(response) == "MANIFEST_UNKNOWN"
    # ... and a push there is refused.
    config, layer = b"{}", os.urandom(10)
    await push_blob(client, NAME, config)
    await push_blob(client, NAME, layer)
    response = await client.put(
        f"/v2/{NAME}/manifests/-bad",
        data=image_manifest(config, [layer]),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status == 400
    assert await error_code(response) == "TAG_INVALID"


async def test_subject_header_and_referrers(client: Client) -> None:
    subject, subject_manifest, _ = await push_image(client, NAME, "app")
    empty = b"{}"
    await push_blob(client, NAME, empty)
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": digest_of(empty),
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": digest_of(empty),
                    "size": 2,
                }
            ],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": subject,
                "size": len(subject_manifest),
            },
            "annotations": {"org.example.signed-by": "ci"},
        }
    ).encode()
    response = await client.put(
        f"/v2/{NAME}/manifests/{digest_of(signature)}",
        data=signature,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status == 201
    assert response.headers["OCI-Subject"] == subject
    response = await client.get(f"/v2/{NAME}/referrers/{subject}")
    assert response.status == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    index = await response.json(content_type=None)
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest_of(signature),
            "size": len(signature),
            "artifactType": "application/vnd.example.signature",
            "annotations": {"org.example.signed-by": "ci"},
        }
    ]
    filtered = await client.get(
        f"/v2/{NAME}/referrers/{subject}?artifactType=application/vnd.example.sbom"
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert (await filtered.json(content_type=None))["manifests"] == []
    unknown = await client.get(f"/v2/{NAME}/referrers/{digest_of(b'nothing')}")
    assert unknown.status == 200
    assert (await unknown.json(content_type=None))["manifests"] == []


async def test_subject_may_be_pushed_before_its_subject(client: Client) -> None:
    absent = digest_of(b"not yet pushed")
    _, _manifest, _ = await push_image(
        client,
        NAME,
        "sig",
        subject={"mediaType": OCI_MANIFEST, "digest": absent, "size": 10},
    )
    response = await client.get(f"/v2/{NAME}/referrers/{absent}")
    assert len((await response.json(content_type=None))["manifests"]) == 1
