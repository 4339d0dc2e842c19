"""The collector's meaning, on both databases and both storage drivers: what it keeps with
and without ``delete_untagged``, the review delay, ``HEAD``, dry runs, and manifest bytes.

Content is pushed through the HTTP API of a real application; what is left is read back
through it and from the storage driver.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from dockyard.gc.collector import Collector
from dockyard.gc.report import GcReport
from dockyard.gc.review import HeadKeepsBlobs
from dockyard.metadata import schema as t
from dockyard.oci.digest import Digest
from dockyard.registry.service import Registry
from dockyard.storage import paths
from tests.api.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    digest_of,
    image_manifest,
    push_blob,
    push_image,
)

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def age_everything(registry: Registry) -> None:
    """Move every wanted time far back: as if the review delay had passed."""
    async with registry.metadata.engine.connect() as connection:
        await connection.execute(update(t.blobs).values(wanted_at=LONG_AGO))
        await connection.execute(update(t.manifests).values(wanted_at=LONG_AGO))
        await connection.execute(update(t.gc_manifest_bytes).values(queued_at=LONG_AGO))
        await connection.commit()


async def collect(
    registry: Registry, delete_untagged: bool = False, dry_run: bool = False, aged: bool = True
) -> GcReport:
    if aged:
        await age_everything(registry)
    return await collector_of(registry, delete_untagged=delete_untagged, dry_run=dry_run).run()


def collector_of(registry: Registry, **options: Any) -> Collector:
    """A collector of ``registry``'s store, with a review delay of an hour."""
    return Collector(
        registry.metadata, registry.storage, review_after=timedelta(hours=1), **options
    )


async def stored(registry: Registry, digest: str) -> bool:
    return await registry.storage.stat(paths.blob_data(Digest.parse(digest))) is not None


async def put_manifest(client: Client, name: str, ref: str, body: bytes, media_type: str) -> str:
    response = await client.put(
        f"/v2/{name}/manifests/{ref}", data=body, headers={"Content-Type": media_type}
    )
    assert response.status == 201, await response.text()
    return response.headers["Docker-Content-Digest"]


async def pulls(client: Client, name: str, ref: str) -> bool:
    accept = f"{OCI_MANIFEST}, {OCI_INDEX}"
    response = await client.get(f"/v2/{name}/manifests/{ref}", headers={"Accept": accept})
    return response.status == 200


def config_and_layers(n: int = 2) -> tuple[bytes, list[bytes]]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": os.urandom(8).hex()})
    return config.encode(), [os.urandom(500 + i) for i in range(n)]


async def push_untagged_image(client: Client, name: str) -> tuple[str, bytes, list[bytes]]:
    config, layers = config_and_layers()
    for blob in (config, *layers):
        await push_blob(client, name, blob)
    body = image_manifest(config, layers)
    digest = await put_manifest(client, name, digest_of(body), body, OCI_MANIFEST)
    return digest, config, layers


async def push_index(client: Client, name: str, tag: str) -> tuple[str, list[Any]]:
    """A tagged index of two untagged children (pushed by digest, as clients do)."""
    children = [await push_untagged_image(client, name) for _ in range(2)]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": 1, "platform": {"os": "linux"}}
                for d, _, _ in children
            ],
        }
    ).encode()
    return await put_manifest(client, name, tag, index, OCI_INDEX), children


async def test_without_delete_untagged_every_manifest_keeps_its_blobs(
    client: Client, registry: Registry
) -> None:
    tagged, _, tagged_layers = await push_image(client, "app", "v1")
    untagged, config, layers = await push_untagged_image(client, "app")
    stray = await push_blob(client, "app", os.urandom(300))  # never referenced

    report = await collect(registry)

    assert [r.digest for r in report.blobs] == [stray]
    assert report.manifests == [] and report.bytes_freed == 300
    assert not await stored(registry, stray)
    assert (await client.head(f"/v2/app/blobs/{stray}")).status == 404
    for blob in (config, *layers, *tagged_layers):
        assert await stored(registry, digest_of(blob))
    assert await pulls(client, "app", untagged) and await pulls(client, "app", tagged)


async def test_delete_untagged_keeps_what_a_tag_reaches(client: Client, registry: Registry) -> None:
    index, children = await push_index(client, "multi", "latest")
    untagged, config, layers = await push_untagged_image(client, "multi")
    # A referrer of a kept child is kept, with its own blob.
    signature = os.urandom(100)
    await push_blob(client, "multi", signature)
    sig_config = b"{}"
    await push_blob(client, "multi", sig_config)
    referrer = image_manifest(
        sig_config,
        [signature],
        subject={"mediaType": OCI_MANIFEST, "digest": children[0][0], "size": 1},
    )
    referrer_digest = await put_manifest(
        client, "multi", digest_of(referrer), referrer, OCI_MANIFEST
    )

    report = await collect(registry, delete_untagged=True)

    assert [(r.repository, r.digest) for r in report.manifests] == [("multi", untagged)]
    assert sorted(r.digest for r in report.blobs) == sorted(digest_of(b) for b in (config, *layers))
    assert [r.digest for r in report.manifest_bytes] == [untagged]
    assert not await stored(registry, untagged)
    assert not await pulls(client, "multi", untagged)
    for digest in (index, referrer_digest, *(d for d, _, _ in children)):
        assert await pulls(client, "multi", digest), digest
    for _, child_config, child_layers in children:
        for blob in (child_config, *child_layers):
            assert await stored(registry, digest_of(blob))
    assert await stored(registry, digest_of(signature))


async def test_a_layer_another_repository_references_stays(
    client: Client, registry: Registry
) -> None:
    digest, _, layers = await push_image(client, "first", "v1")
    shared = digest_of(layers[0])
    mounted = await client.post(f"/v2/second/blobs/uploads/?mount={shared}&from=first")
    assert mounted.status == 201
    config, _ = config_and_layers(0)
    await push_blob(client, "second", config)
    other = image_manifest(config, [layers[0]])
    await put_manifest(client, "second", "v1", other, OCI_MANIFEST)
    deleted = await client.delete(f"/v2/first/manifests/{digest}")
    assert deleted.status == 202

    report = await collect(registry, delete_untagged=True)

    gone = {r.digest for r in report.blobs}
    assert shared not in gone and digest_of(layers[1]) in gone
    assert await stored(registry, shared)
    assert (await client.get(f"/v2/second/blobs/{shared}")).status == 200
    assert [r.digest for r in report.manifest_bytes] == [digest]  # deleted through the API


async def test_the_review_delay_keeps_what_was_just_wanted(
    client: Client, registry: Registry
) -> None:
    untagged, _config, _layers = await push_untagged_image(client, "app")
    await push_blob(client, "app", b"just uploaded")

    report = await collect(registry, delete_untagged=True, aged=False)

    assert report.manifests == [] and report.blobs == [] and report.manifest_bytes == []
    assert await pulls(client, "app", untagged)


async def test_a_head_keeps_the_blob_it_finds(client: Client, registry: Registry) -> None:
    blob = await push_blob(client, "app", b"headed")
    await age_everything(registry)
    keeping = HeadKeepsBlobs(registry.use_cases.blobs, registry.metadata, timedelta(hours=1))
    await keeping.locate("app", Digest.parse(blob), "HEAD")

    report = await collect(registry, aged=False)
    assert report.blobs == []

    report = await collect(registry)
    assert [r.digest for r in report.blobs] == [blob]


async def test_dry_run_lists_the_same_and_changes_nothing(
    client: Client, registry: Registry
) -> None:
    await push_index(client, "app", "v1")
    untagged, config, layers = await push_untagged_image(client, "app")
    stray = await push_blob(client, "app", os.urandom(10))

    dry = await collect(registry, delete_untagged=True, dry_run=True)

    assert await pulls(client, "app", untagged) and await stored(registry, stray)
    real = await collect(registry, delete_untagged=True)
    assert dry.dry_run and not real.dry_run
    for attribute in ("manifests", "manifest_bytes"):
        assert getattr(dry, attribute) == getattr(real, attribute), attribute
    assert sorted(r.digest for r in dry.blobs) == sorted(r.digest for r in real.blobs)
    assert {r.digest for r in real.blobs} == {stray, *(digest_of(b) for b in (config, *layers))}
    assert dry.summary().startswith("Dry run: nothing was changed. Would remove 1 manifest")
    assert "would delete blob" in "\n".join(dry.items())


async def test_a_manifest_pushed_again_after_its_bytes_were_collected_gets_them_back(
    client: Client, registry: Registry
) -> None:
    digest, manifest, _ = await push_image(client, "app", "v1")
    await client.delete(f"/v2/app/manifests/{digest}")
    # The same manifest is pushed again while the collector reviews its queued bytes:
    # the push wrote them first, then the collector (holding the queue row) deleted them.
    await age_everything(registry)
    await registry.storage.put_content(paths.blob_data(Digest.parse(digest)), manifest)
    cutoff = datetime.now(UTC)
    async with registry.metadata.deleting_manifest_bytes([digest], cutoff) as deletion:
        assert [c.digest for c in deletion.candidates] == [digest]
        await registry.storage.delete(paths.blob_dir(Digest.parse(digest)))

    await put_manifest(client, "app", "v1", manifest, OCI_MANIFEST)

    assert await stored(registry, digest)
    assert await registry.storage.get_content(paths.blob_data(Digest.parse(digest))) == manifest
    report = await collect(registry)
    assert report.manifest_bytes == [] and await stored(registry, digest)


async def test_a_blob_that_is_also_a_manifest_keeps_its_bytes(
    client: Client, registry: Registry
) -> None:
    digest, manifest, _ = await push_image(client, "app", "v1")
    assert await push_blob(client, "app", manifest) == digest  # uploaded as a blob too

    report = await collect(registry)

    assert [r.digest for r in report.blobs] == [digest]
    assert await stored(registry, digest) and await pulls(client, "app", "v1")
