"""The MetadataStore's contracts, on real SQLite (a file in WAL mode, and in memory) and on
real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from dockyard.metadata.engine import create_engine, migrate
from dockyard.metadata.generation import WriteGeneration
from dockyard.metadata.records import ManifestToStore, MissingReferencesError, UploadProgress
from dockyard.metadata.store import MetadataStore
from dockyard.oci import mediatypes
from dockyard.oci.digest import Digest
from tests.databases import fresh_database

TABLES = ("repositories", "blobs", "repository_blobs", "manifests", "manifest_references", "tags")


def digest(label: str) -> str:
    return str(Digest.of(label.encode()))


def manifest(
    label: str,
    blobs: tuple[str, ...] = (),
    children: tuple[str, ...] = (),
    subject: str | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    media_type: str = mediatypes.OCI_MANIFEST,
) -> ManifestToStore:
    payload = json.dumps({"label": label, "blobs": blobs, "children": children}).encode()
    return ManifestToStore(
        digest=str(Digest.of(payload)),
        media_type=media_type,
        artifact_type=artifact_type,
        payload=payload,
        subject_digest=subject,
        annotations=annotations or {},
        blob_digests=blobs,
        child_digests=children,
    )


async def open_store(url: str, migrated: bool = False) -> MetadataStore:
    """A store as a worker process opens it; ``migrated`` when the schema is already there
    (the server migrates once, before its workers start)."""
    engine = create_engine(url)
    if not migrated:
        await migrate(engine)
    return MetadataStore(engine, WriteGeneration.for_database(url))


@pytest.fixture(params=["sqlite", "sqlite-memory", "postgresql"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MetadataStore]:
    if request.param == "sqlite-memory":
        opened = await open_store("sqlite://")
        yield opened
        await opened.close()
        return
    async with fresh_database(request.param, request) as url:
        opened = await open_store(url, migrated=True)
        yield opened
        await opened.close()


async def counts(store: MetadataStore) -> dict[str, int]:
    return {table: await store.count(table) for table in TABLES}


async def push_image(store: MetadataStore, name: str, label: str, tag: str | None) -> str:
    """Commit a config and a layer into ``name`` and a manifest referencing them."""
    config, layer = digest(f"{label}/config"), digest(f"{label}/layer")
    await store.commit_blob(name, config, 100)
    await store.commit_blob(name, layer, 2000)
    image = manifest(label, blobs=(config, layer))
    await store.put_manifest(name, image, tag)
    return image.digest


# -- repositories -------------------------------------------------------------------------


async def test_ensure_repository(store: MetadataStore) -> None:
    assert not await store.repository_exists("library/ubuntu")
    assert await store.ensure_repository("library/ubuntu") is True
    assert await store.ensure_repository("library/ubuntu") is False
    assert await store.repository_exists("library/ubuntu")
    assert await store.list_repositories(None, None) == ["library/ubuntu"]


def registry2_order(names: list[str]) -> list[str]:
    """registry:2's catalog order: component by component, "/" before any other character."""
    return sorted(names, key=lambda name: name.replace("/", "\x00"))


async def test_list_repositories_is_ordered_and_paginated(store: MetadataStore) -> None:
    names = ["b", "a/z", "a", "c/d/e", "a-b", "a.b", "a_b", "team/app", "team-tools", "a/z/y"]
    for name in names:
        await store.ensure_repository(name)
    ordered = registry2_order(names)
    assert ordered[:3] == ["a", "a/z", "a/z/y"]
    assert await store.list_repositories(None, None) == ordered
    assert await store.list_repositories(0, None) == []
    pages: list[str] = []
    last = None
    while True:
        page = await store.list_repositories(2, last)
        assert len(page) <= 2
        if not page:
            break
        pages += page
        last = page[-1]
    assert pages == ordered
    assert await store.list_repositories(10, "zzz") == []
    assert await store.list_repositories(None, "a") == ordered[1:]


# -- blobs --------------------------------------------------------------------------------


async def test_commit_blob_links_it_into_the_repository(store: MetadataStore) -> None:
    blob = digest("layer")
    await store.commit_blob("one", blob, 1234)
    assert await store.repository_exists("one")
    assert await store.blob_size(blob) == 1234
    assert await store.repository_blob_size("one", blob) == 1234
    assert await store.repository_blob_size("two", blob) is None
    assert await store.repository_blob_size("one", digest("other")) is None
    await store.commit_blob("one", blob, 1234)  # again: nothing new
    await store.commit_blob("two", blob, 1234)
    assert await store.repository_blob_size("two", blob) == 1234
    found = await counts(store)
    assert (found["blobs"], found["repository_blobs"], found["repositories"]) == (1, 2, 2)


async def test_mount_blob_from_a_source_repository(store: MetadataStore) -> None:
    blob = digest("layer")
    await store.commit_blob("source", blob, 42)
    await store.ensure_repository("elsewhere")
    assert await store.mount_blob("target", blob, "elsewhere") is None
    assert not await store.repository_exists("target")  # a failed mount creates nothing
    assert await store.mount_blob("target", blob, "source") == 42
    assert await store.repository_blob_size("target", blob) == 42
    assert await store.mount_blob("target", blob, "source") == 42  # idempotent
    assert await store.count("repository_blobs") == 2


async def test_mount_blob_from_anywhere(store: MetadataStore) -> None:
    blob = digest("layer")
    assert await store.mount_blob("target", blob, None) is None
    assert not await store.repository_exists("target")
    await store.commit_blob("source", blob, 7)
    assert await store.mount_blob("target", blob, None) == 7
    assert await store.repository_blob_size("target", blob) == 7


async def test_mount_from_an_unknown_source_repository(store: MetadataStore) -> None:
    await store.commit_blob("source", digest("layer"), 7)
    assert await store.mount_blob("target", digest("layer"), "no/such/repo") is None
    assert not await store.repository_exists("target")


async def test_unlink_blob(store: MetadataStore) -> None:
    blob = digest("layer")
    await store.commit_blob("one", blob, 5)
    await store.commit_blob("two", blob, 5)
    assert await store.repository_blob_size("one", blob) == 5  # cached, then invalidated
    assert await store.unlink_blob("one", blob) is True
    assert await store.repository_blob_size("one", blob) is None
    assert await store.repository_blob_size("two", blob) == 5
    assert await store.blob_size(blob) == 5  # the bytes stay until garbage collection
    assert await store.unlink_blob("one", blob) is False
    assert await store.unlink_blob("no/such/repo", blob) is False


# -- manifests ----------------------------------------------------------------------------


async def test_put_manifest_and_get_it_by_digest_and_tag(store: MetadataStore) -> None:
    image_digest = await push_image(store, "library/app", "v1", "latest")
    by_digest = await store.get_manifest("library/app", image_digest, by_digest=True)
    by_tag = await store.get_manifest("library/app", "latest", by_digest=False)
    assert by_digest is not None and by_digest == by_tag
    assert by_digest.digest == image_digest
    assert by_digest.media_type == mediatypes.OCI_MANIFEST
    assert by_digest.size == len(by_digest.payload)
    assert Digest.of(by_digest.payload) == Digest.parse(image_digest)
    assert await store.list_tags("library/app", None, None) == ["latest"]
    assert await store.count("manifest_references") == 2
    assert await store.get_manifest("library/app", "nope", by_digest=False) is None
    assert await store.get_manifest("library/app", digest("x"), by_digest=True) is None
    assert await store.get_manifest("other", image_digest, by_digest=True) is None


async def test_put_manifest_twice_is_idempotent(store: MetadataStore) -> None:
    image_digest = await push_image(store, "app", "v1", "latest")
    before = await counts(store)
    again = manifest("v1", blobs=(digest("v1/config"), digest("v1/layer")))
    assert again.digest == image_digest
    await store.put_manifest("app", again, "latest")
    await store.put_manifest("app", again, None)
    assert await counts(store) == before


async def test_put_manifest_with_missing_blobs_changes_nothing(store: MetadataStore) -> None:
    """A refused push into a new repository leaves no repository row behind."""
    present = digest("present")
    await store.commit_blob("other", present, 1)
    before = await counts(store)
    missing = sorted([digest("missing-a"), digest("missing-b")])
    image = manifest("broken", blobs=(missing[1], present, missing[0]))
    with pytest.raises(MissingReferencesError) as caught:
        await store.put_manifest("new/repo", image, "latest")
    # A blob linked into another repository does not count: references are per repository.
    assert caught.value.blobs == sorted([*missing, present])
    assert caught.value.manifests == []
    assert await counts(store) == before
    assert not await store.repository_exists("new/repo")
    assert await store.list_repositories(None, None) == ["other"]
    assert await store.list_tags("new/repo", None, None) is None


async def test_put_manifest_with_missing_references_in_a_known_repository(
    store: MetadataStore,
) -> None:
    await push_image(store, "app", "v1", "latest")
    before = await counts(store)
    index = manifest("index", children=(digest("no-such-child"),), media_type=mediatypes.OCI_INDEX)
    with pytest.raises(MissingReferencesError) as caught:
        await store.put_manifest("app", index, "latest")
    assert caught.value.manifests == [digest("no-such-child")]
    assert caught.value.blobs == []
    assert await counts(store) == before
    current = await store.get_manifest("app", "latest", by_digest=False)
    assert current is not None and current.digest != index.digest


async def test_index_referencing_child_manifests(store: MetadataStore) -> None:
    amd64 = await push_image(store, "multi", "amd64", None)
    arm64 = await push_image(store, "multi", "arm64", None)
    index = manifest("index", children=(amd64, arm64, amd64), media_type=mediatypes.OCI_INDEX)
    await store.put_manifest("multi", index, "latest")
    found = await store.get_manifest("multi", "latest", by_digest=False)
    assert found is not None and found.digest == index.digest
    assert found.media_type == mediatypes.OCI_INDEX
    # Duplicate references are recorded once: 2 + 2 blob references, 2 children.
    assert await store.count("manifest_references") == 6
    with pytest.raises(MissingReferencesError):
        # Children are per repository too.
        await store.put_manifest("elsewhere", index, "latest")


async def test_tags_move(store: MetadataStore) -> None:
    first = await push_image(store, "app", "v1", "latest")
    found = await store.get_manifest("app", "latest", by_digest=False)
    assert found is not None and found.digest == first  # now cached
    second = await push_image(store, "app", "v2", "latest")
    found = await store.get_manifest("app", "latest", by_digest=False)
    assert found is not None and found.digest == second
    assert await store.get_manifest("app", first, by_digest=True) is not None
    assert await store.list_tags("app", None, None) == ["latest"]


async def test_delete_manifest_removes_its_tags_and_references(store: MetadataStore) -> None:
    doomed = await push_image(store, "app", "v1", "latest")
    same = manifest("v1", blobs=(digest("v1/config"), digest("v1/layer")))
    await store.put_manifest("app", same, "stable")
    kept = await push_image(store, "app", "v2", "v2")
    assert await store.get_manifest("app", "stable", by_digest=False) is not None  # cached
    assert await store.delete_manifest("app", doomed) is True
    assert await store.get_manifest("app", doomed, by_digest=True) is None
    assert await store.get_manifest("app", "latest", by_digest=False) is None
    assert await store.get_manifest("app", "stable", by_digest=False) is None
    assert await store.list_tags("app", None, None) == ["v2"]
    assert await store.count("manifest_references") == 2  # only v2's
    assert await store.get_manifest("app", kept, by_digest=True) is not None
    # The blobs stay linked: deleting a manifest does not delete its layers.
    assert await store.repository_blob_size("app", digest("v1/layer")) == 2000
    assert await store.delete_manifest("app", doomed) is False
    assert await store.delete_manifest("no/such/repo", doomed) is False


async def test_delete_tag(store: MetadataStore) -> None:
    image_digest = await push_image(store, "app", "v1", "latest")
    assert await store.delete_tag("app", "latest") is True
    assert await store.delete_tag("app", "latest") is False
    assert await store.delete_tag("no/such/repo", "latest") is False
    assert await store.list_tags("app", None, None) == []
    assert await store.get_manifest("app", "latest", by_digest=False) is None
    assert await store.get_manifest("app", image_digest, by_digest=True) is not None


# -- tags ---------------------------------------------------------------------------------


async def test_list_tags_is_lexical_and_paginated(store: MetadataStore) -> None:
    assert await store.list_tags("app", None, None) is None
    image_digest = await push_image(store, "app", "v1", None)
    assert await store.list_tags("app", None, None) == []
    image = manifest("v1", blobs=(digest("v1/config"), digest("v1/layer")))
    assert image.digest == image_digest
    tags = ["v10", "v2", "latest", "V1", "1.0", "_x", "a-b", "a.b"]
    for tag in tags:
        await store.put_manifest("app", image, tag)
    ordered = sorted(tags)  # byte order, as registry:2 sorts
    assert await store.list_tags("app", None, None) == ordered
    pages: list[str] = []
    last = None
    while page := await store.list_tags("app", 3, last):
        pages += page
        last = page[-1]
    assert pages == ordered
    assert await store.list_tags("app", 0, None) == []
    assert await store.list_tags("app", None, "v2") == []
    assert await store.list_tags("app", 2, "a-b") == ordered[ordered.index("a-b") + 1 :][:2]


# -- referrers ----------------------------------------------------------------------------


async def test_referrers_with_and_without_filter(store: MetadataStore) -> None:
    subject = await push_image(store, "app", "v1", "latest")
    empty = digest("{}")
    await store.commit_blob("app", empty, 2)
    signature = manifest(
        "signature",
        blobs=(empty,),
        subject=subject,
        artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json",
        annotations={"created": "2024-01-01"},
    )
    sbom = manifest("sbom", blobs=(empty,), subject=subject, artifact_type="application/spdx+json")
    unrelated = manifest("unrelated", blobs=(empty,), subject=digest("another subject"))
    for referrer in (signature, sbom, unrelated):
        await store.put_manifest("app", referrer, None)

    found = await store.referrers("app", subject, None)
    assert [r.digest for r in found] == [signature.digest, sbom.digest]
    first = found[0]
    assert first.media_type == mediatypes.OCI_MANIFEST
    assert first.size == len(signature.payload)
    assert first.artifact_type == signature.artifact_type
    assert first.annotations == {"created": "2024-01-01"}
    assert found[1].annotations == {}

    filtered = await store.referrers("app", subject, "application/spdx+json")
    assert [r.digest for r in filtered] == [sbom.digest]
    assert await store.referrers("app", subject, "application/unknown") == []
    assert await store.referrers("other/repo", subject, None) == []
    assert await store.referrers("app", digest("nothing refers to this"), None) == []


async def test_referrers_of_a_subject_not_pushed_yet(store: MetadataStore) -> None:
    """OCI 1.1 allows pushing a referrer before its subject."""
    empty = digest("{}")
    await store.commit_blob("app", empty, 2)
    future_subject = digest("pushed later")
    referrer = manifest("early", blobs=(empty,), subject=future_subject, artifact_type="a/b")
    await store.put_manifest("app", referrer, None)
    assert [r.digest for r in await store.referrers("app", future_subject, None)] == [
        referrer.digest
    ]


async def test_deleted_referrer_disappears(store: MetadataStore) -> None:
    subject = await push_image(store, "app", "v1", "latest")
    await store.commit_blob("app", digest("{}"), 2)
    referrer = manifest("sig", blobs=(digest("{}"),), subject=subject, artifact_type="a/b")
    await store.put_manifest("app", referrer, None)
    assert await store.delete_manifest("app", referrer.digest)
    assert await store.referrers("app", subject, None) == []


# -- uploads ------------------------------------------------------------------------------


async def test_upload_sessions(store: MetadataStore) -> None:
    before = datetime.now(UTC)
    await store.create_upload("u-1", "library/app")
    await store.create_upload("u-2", "other")
    record = await store.get_upload("u-1")
    assert record is not None
    assert (record.id, record.repository) == ("u-1", "library/app")
    started = record.started_at.replace(tzinfo=record.started_at.tzinfo or UTC)
    assert before - timedelta(seconds=1) <= started <= datetime.now(UTC)
    assert await store.get_upload("nope") is None
    assert not await store.repository_exists("library/app")  # an upload creates no repository

    soon = datetime.now(UTC) + timedelta(seconds=1)
    assert sorted(r.id for r in await store.uploads_started_before(soon)) == ["u-1", "u-2"]
    assert await store.uploads_started_before(before - timedelta(hours=1)) == []

    assert await store.delete_upload("u-1") is True
    assert await store.delete_upload("u-1") is False
    assert await store.get_upload("u-1") is None
    assert [r.id for r in await store.uploads_started_before(soon)] == ["u-2"]


async def test_upload_ids_are_unique(store: MetadataStore) -> None:
    await store.create_upload("u-1", "app")
    with pytest.raises(IntegrityError):
        await store.create_upload("u-1", "app")
    record = await store.get_upload("u-1")
    assert record is not None and record.repository == "app"
    await store.create_upload("u-2", "app")  # the store still works after the failure


async def test_upload_progress_lives_in_the_row(store: MetadataStore) -> None:
    await store.create_upload("u-1", "app")
    record = await store.get_upload("u-1")
    assert record is not None and record.progress == UploadProgress()
    first = UploadProgress(10, b"multipart id, parts", 10, b"sha256 state")
    assert await store.save_upload_progress("u-1", 0, first) is True
    record = await store.get_upload("u-1")
    assert record is not None and record.progress == first
    # Only from the size the request started at: a concurrent request that moved the upload
    # meanwhile wins, and the late one learns it.
    assert await store.save_upload_progress("u-1", 0, UploadProgress(5)) is False
    second = UploadProgress(25, None, 10, b"sha256 state")
    assert await store.save_upload_progress("u-1", 10, second) is True
    assert [r.progress for r in await store.uploads_started_before(datetime.now(UTC))] == [second]
    assert await store.save_upload_progress("gone", 0, first) is False


async def test_upload_times_are_instants(store: MetadataStore) -> None:
    await store.create_upload("u-1", "app")
    record = await store.get_upload("u-1")
    assert record is not None and record.started_at.tzinfo is not None
    soon = (datetime.now(UTC) + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5)))
    assert [r.id for r in await store.uploads_started_before(soon)] == ["u-1"]


# -- several processes on one database ----------------------------------------------------


async def test_a_write_in_another_process_invalidates_cached_reads(database_url: str) -> None:
    url = database_url
    first, second = await open_store(url, migrated=True), await open_store(url, migrated=True)
    try:
        assert await second.get_manifest("app", "latest", by_digest=False) is None  # cached
        assert await second.repository_blob_size("app", digest("v1/layer")) is None
        image_digest = await push_image(first, "app", "v1", "latest")
        found = await second.get_manifest("app", "latest", by_digest=False)
        assert found is not None and found.digest == image_digest
        assert await second.repository_blob_size("app", digest("v1/layer")) == 2000
        await first.delete_tag("app", "latest")
        assert await second.get_manifest("app", "latest", by_digest=False) is None
    finally:
        await first.close()
        await second.close()


def test_two_processes_write_concurrently(database_url: str) -> None:
    """Two engines on one database, each in its own thread and event loop, as two workers
    (on SQLite: two connections to one file)."""
    url = database_url
    rounds = 25
    start = threading.Barrier(2, timeout=30)

    async def work(worker: int) -> None:
        store = await open_store(url, migrated=True)
        try:
            start.wait()
            for i in range(rounds):
                # Both workers write the same repository and the same shared blob.
                await store.commit_blob("shared", digest("shared-layer"), 10)
                await push_image(store, "shared", f"w{worker}-{i}", f"w{worker}-{i}")
                await store.create_upload(f"w{worker}-{i}", "shared")
                await store.delete_upload(f"w{worker}-{i}")
        finally:
            await store.close()

    with ThreadPoolExecutor(2) as pool:
        results = [pool.submit(asyncio.run, work(worker)) for worker in (0, 1)]
        for result in results:
            result.result(timeout=120)

    async def check() -> None:
        store = await open_store(url, migrated=True)
        try:
            tags = await store.list_tags("shared", None, None)
            assert tags is not None and len(tags) == 2 * rounds
            assert await store.count("repositories") == 1
            assert await store.count("manifests") == 2 * rounds
            assert await store.count("blobs") == 1 + 2 * 2 * rounds
            assert await store.count("uploads") == 0
        finally:
            await store.close()

    asyncio.run(check())


def _hold_write_lock(path: Path, locked: threading.Event, seconds: float) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO repositories (name, created_at) VALUES ('held', '2024-01-01')"
        )
        locked.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


async def test_a_writer_waits_for_another_process_lock(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        locked = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, locked, 0.5))
        holder.start()
        try:
            assert await asyncio.to_thread(locked.wait, 10)
            # WAL: readers are not blocked by the writer, and see only committed rows.
            began = time.monotonic()
            assert not await store.repository_exists("held")
            assert time.monotonic() - began < 0.4
            # A writer queues (busy timeout) instead of failing with "database is locked".
            began = time.monotonic()
            await store.commit_blob("app", digest("layer"), 1)
            assert time.monotonic() - began >= 0.3
        finally:
            await asyncio.to_thread(holder.join, 10)
        assert await store.repository_exists("held")
        assert await store.repository_blob_size("app", digest("layer")) == 1
    finally:
        await store.close()
