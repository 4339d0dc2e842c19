"""Events commit or roll back with the change they describe, and a job (garbage
collection, retention) records its deletions inside its own transaction."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dockyard.app import gc_job, open_registry
from dockyard.config import load_config
from dockyard.metadata.changes import (
    BlobDeleted,
    ManifestDeleted,
    TagDeleted,
    record_change,
    recording,
)
from dockyard.metadata.engine import create_engine
from dockyard.metadata.records import ManifestToStore, MissingReferencesError
from dockyard.metadata.store import MetadataStore
from dockyard.notify.events import Source
from dockyard.notify.recorder import GC_ACTOR, RETENTION_ACTOR, EventRecorder
from dockyard.notify.settings import EndpointSettings, NotifySettings
from dockyard.notify_setup import job_recording, with_notifications
from dockyard.oci.digest import Digest
from dockyard.storage.paths import blob_data
from tests.notify.conftest import config_text

DELETE = "delete"
SETTINGS = NotifySettings(
    endpoints=(
        EndpointSettings("all", "http://127.0.0.1:9/"),
        EndpointSettings(
            "no-deletes", "http://127.0.0.1:9/", ignored_actions=frozenset({"delete"})
        ),
    )
)
RECORDER = EventRecorder(SETTINGS, Source("host:5000", "instance"))


def manifest(blob: str) -> ManifestToStore:
    return ManifestToStore(
        digest="sha256:" + "a" * 64,
        media_type="application/vnd.oci.image.manifest.v1+json",
        artifact_type=None,
        payload=b"{}",
        subject_digest=None,
        annotations={},
        blob_digests=(blob,),
        child_digests=(),
    )


async def test_events_roll_back_with_their_change(database_url: str) -> None:
    store = MetadataStore(create_engine(database_url))
    try:
        with recording(RECORDER) as recorded, pytest.raises(MissingReferencesError):
            await store.put_manifest("team/app", manifest("sha256:" + "b" * 64), "v1")
        assert await store.count("notification_outbox") == 0
        assert recorded.written == []
        with recording(RECORDER) as recorded, pytest.raises(RuntimeError):
            async with store._write() as connection:
                await record_change(connection, BlobDeleted("team/app", "sha256:" + "e" * 64))
                raise RuntimeError("the change fails after its events were recorded")
        assert len(recorded.written) == 1
        assert await store.count("notification_outbox") == 0
        await store.commit_blob("team/app", "sha256:" + "b" * 64, 3)  # not recording
        assert await store.count("notification_outbox") == 0
        with recording(RECORDER):
            await store.put_manifest("team/app", manifest("sha256:" + "b" * 64), "v1")
        assert await store.pending_counts() == {"all": 1, "no-deletes": 1}
    finally:
        await store.close()


async def test_a_job_records_its_deletions_in_its_transaction(database_url: str) -> None:
    store = MetadataStore(create_engine(database_url))
    try:
        with recording(RECORDER.for_job(GC_ACTOR)):
            async with store._write() as connection:  # as a collector's transaction
                await record_change(connection, ManifestDeleted("team/app", "sha256:" + "c" * 64))
                await record_change(connection, BlobDeleted("", "sha256:" + "d" * 64))
        (first, second) = await store.pending_events("all", 0, 10)
        assert await store.pending_counts() == {"all": 2}
        event = json.loads(first.payload)
        assert event["actor"] == {"name": "dockyard:gc"}
        assert event["request"] == {}
        assert event["target"] == {"digest": "sha256:" + "c" * 64, "repository": "team/app"}
        assert json.loads(second.payload)["target"] == {"digest": "sha256:" + "d" * 64}
    finally:
        await store.close()


async def test_the_wiring_gives_jobs_their_recording(tmp_path: Path, database_url: str) -> None:
    text = config_text(
        database_url, "  endpoints:\n    - {name: hook, url: 'http://127.0.0.1:9/'}\n"
    )
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, {}).config
    registry = await open_registry(config)
    try:
        notifications = with_notifications(config, registry)
        assert notifications is not None
        for wired in (None, notifications):
            with job_recording(wired, RETENTION_ACTOR):
                async with registry.metadata._write() as connection:
                    await record_change(connection, TagDeleted("team/app", "old"))
        (event,) = await registry.metadata.pending_events("hook", 0, 10)
        assert json.loads(event.payload)["actor"] == {"name": "dockyard:retention"}
    finally:
        await registry.close()


async def test_the_scheduled_jobs_send_their_deletions(tmp_path: Path, database_url: str) -> None:
    """Retention's and the collector's deletions, run by ``serve``'s scheduled job, reach
    the outbox with their actors: the tag, the manifest it left untagged, the blob."""
    text = config_text(
        database_url, "  endpoints:\n    - {name: hook, url: 'http://127.0.0.1:9/'}\n"
    ) + (
        "retention:\n  rules:\n    - {repositories: ['team/*'], olderthan: 1ms,"
        " untaggedolderthan: 1ms}\n"
        "gc:\n  enabled: true\n  reviewafter: 0s\n"
    )
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, {}).config
    registry = await open_registry(config)
    try:
        notifications = with_notifications(config, registry)
        blob = "sha256:" + "b" * 64
        await registry.storage.put_content(blob_data(Digest.parse(blob)), b"abc")
        await registry.metadata.commit_blob("team/app", blob, 3)
        await registry.metadata.put_manifest("team/app", manifest(blob), "v1")
        await asyncio.sleep(0.01)  # older than the rules' 1ms
        assert await gc_job(config, registry, notifications).run_once() is not None
        events = [
            json.loads(e.payload) for e in await registry.metadata.pending_events("hook", 0, 50)
        ]
        seen = {
            (e["actor"]["name"], e["target"].get("tag") or e["target"]["digest"]) for e in events
        }
        assert ("dockyard:retention", "v1") in seen
        assert ("dockyard:retention", manifest(blob).digest) in seen
        assert ("dockyard:gc", blob) in seen
        assert all(e["action"] == DELETE for e in events)
    finally:
        await registry.close()
