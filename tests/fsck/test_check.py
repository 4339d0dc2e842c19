"""``fsck`` on both databases and on both kinds of driver: what it finds when storage and
database disagree, and that its repairs lose nothing a manifest references."""

from __future__ import annotations

import os
from datetime import timedelta

from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.fsck.check import check_store
from dockyard.gc.collector import Collector
from dockyard.metadata.engine import create_engine
from dockyard.metadata.store import MetadataStore
from dockyard.oci.digest import Digest
from dockyard.registry.service import Registry
from dockyard.registry.settings import RegistrySettings
from dockyard.storage import paths
from dockyard.storage.inmemory import InMemoryDriver
from tests.api.helpers import Client, digest_of, push_blob, push_image
from tests.gc.test_collector import age_everything


def kinds(report: object) -> list[tuple[str, str]]:
    return sorted((f.kind, f.subject) for f in report.findings)  # type: ignore[attr-defined]


async def test_a_healthy_store_has_nothing_to_report(client: Client, registry: Registry) -> None:
    await push_image(client, "team/app", "v1")
    report = await check_store(registry.metadata, registry.storage, verify_digests=True)
    assert report.findings == []
    assert (report.blobs, report.manifests) == (3, 1)
    assert report.hashed_bytes > 0
    assert report.exit_status == 0


async def test_what_it_finds_and_repairs(client: Client, registry: Registry) -> None:
    storage, metadata = registry.storage, registry.metadata
    manifest_digest, _, layers = await push_image(client, "team/app", "v1")
    gone, corrupt = digest_of(layers[0]), digest_of(layers[1])
    await storage.delete(paths.blob_data(Digest.parse(gone)))
    await storage.put_content(paths.blob_data(Digest.parse(corrupt)), os.urandom(len(layers[1])))
    await storage.delete(paths.blob_data(Digest.parse(manifest_digest)))
    stray = os.urandom(100)
    await storage.put_content(paths.blob_data(Digest.parse(digest_of(stray))), stray)
    orphan = paths.upload_data("team/app", "0b5a4c1e-0000-4000-8000-000000000000")
    await storage.put_content(orphan, b"partial")
    _, _, other_layers = await push_image(client, "team/other", "v1")
    unlinked = digest_of(other_layers[0])
    await storage.put_content(
        paths.layer_link("team/app", Digest.parse(unlinked)), unlinked.encode()
    )

    found = await check_store(metadata, storage)
    upload_dir = orphan.rsplit("/", 1)[0]
    expected = [
        ("bytes-without-row", digest_of(stray)),
        ("link-file-without-row", f"team/app@{unlinked}"),
        ("manifest-bytes", manifest_digest),
        ("missing-bytes", gone),
        ("upload-without-session", upload_dir),
    ]
    assert kinds(found) == expected  # the corrupt layer has the right size
    assert all(f.repaired is None for f in found.findings)
    verified = await check_store(metadata, storage, verify_digests=True)
    assert ("digest-mismatch", corrupt) in kinds(verified)

    repaired = await check_store(metadata, storage, repair=True, verify_digests=True)
    assert {f.kind for f in repaired.findings if f.repaired} == {
        "missing-bytes",
        "digest-mismatch",
        "manifest-bytes",
        "upload-without-session",
        "bytes-without-row",
    }
    assert await storage.stat(paths.blob_data(Digest.parse(corrupt))) == len(layers[1])  # kept
    assert await metadata.missing_blob_count() == 2
    pulled = await client.get(f"/v2/team/app/blobs/{gone}")
    assert pulled.status == 404
    assert (await client.get(f"/v2/team/app/manifests/{manifest_digest}")).status == 200

    after = await check_store(metadata, storage)
    # Stray bytes got a row (the collector's now); a link file is not re-linked once
    # Dockyard served writes.
    assert kinds(after) == [("link-file-without-row", f"team/app@{unlinked}")]
    assert await storage.stat(paths.blob_data(Digest.parse(digest_of(stray)))) == 100
    await age_everything(registry)
    report = await Collector(metadata, storage, review_after=timedelta(hours=1)).run()
    assert digest_of(stray) in {r.digest for r in report.blobs}
    assert await storage.stat(paths.blob_data(Digest.parse(digest_of(stray)))) is None


async def test_an_import_that_missed_a_link_is_linked(database_url: str) -> None:
    """While Dockyard has served no write (an imported store), a layer link file the
    database lacks is one the import missed: ``--repair`` links it."""
    metadata = MetadataStore(create_engine(database_url), notes_writes=False)
    storage = InMemoryDriver()
    registry = Registry(metadata, storage, RegistrySettings())
    async with TestClient(TestServer(build_app(registry))) as client:
        _, _, layers = await push_image(client, "team/other", "v1")
        assert await metadata.served_write_at() is None
        digest = digest_of(layers[0])
        await storage.put_content(paths.layer_link("team/app", Digest.parse(digest)), b"x")
        await storage.put_content(paths.blob_data(Digest.parse(digest)), b"short")

        report = await check_store(metadata, storage, repair=True)
        assert sorted((f.kind, f.repaired) for f in report.findings) == [
            ("link-file-without-blob", None),  # nothing links a blob marked missing
            ("wrong-size", "marked missing (unknown until pushed again)"),
        ]
        await push_blob(client, "team/other", layers[0])  # whole again
        report = await check_store(metadata, storage, repair=True)
        assert [(f.kind, f.subject, f.repaired) for f in report.findings] == [
            ("link-file-without-row", f"team/app@{digest}", "linked"),
        ]
        assert digest in await metadata.repository_blob_digests("team/app")
        pulled = await client.get(f"/v2/team/app/blobs/{digest}")
        assert await pulled.read() == layers[0]
