"""The replication queue on each database: jobs commit or roll back with the push that
asks for them (beside the push's notification events), the rules decide which changes
queue what, and the queue hands out one job per destination and repository, in order."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from dockyard.metadata.changes import ManifestDeleted, ManifestPushed, TagDeleted, recording
from dockyard.metadata.engine import create_engine
from dockyard.metadata.records import MissingReferencesError
from dockyard.metadata.replication_queue import QueuedJob
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import utc_now
from dockyard.replication.recorder import JobRecorder
from dockyard.replication.settings import ReplicationSettings, Rule
from dockyard.sync import SyncRules
from tests.notify.test_recording import RECORDER as NOTIFY_RECORDER
from tests.notify.test_recording import manifest

BLOB = "sha256:" + "b" * 64
SETTINGS = ReplicationSettings(
    destinations=(),
    rules=(
        Rule("apps", ("prod", "dr"), SyncRules(include=("team/*",), exclude=":tmp-")),
        Rule("scheduled", ("prod",), SyncRules(), on_push=False, interval=timedelta(hours=1)),
        Rule("mirror-deletes", ("dr",), SyncRules(tags=r"v.*"), deletes=True),
    ),
)
RECORDER = JobRecorder(SETTINGS)


def pushed(repository: str, tag: str | None, payload: bytes = b"{}") -> ManifestPushed:
    return ManifestPushed(repository, "sha256:" + "a" * 64, "application/json", payload, tag)


def test_the_rules_decide_what_a_change_queues() -> None:
    jobs = RECORDER.events(pushed("team/app", "v1"))
    assert [(j.rule, j.destination, j.action, j.reference) for j in jobs] == [
        ("apps", "prod", "copy", "v1"),
        ("apps", "dr", "copy", "v1"),
        ("mirror-deletes", "dr", "copy", "v1"),
    ]
    assert [j.rule for j in RECORDER.events(pushed("team/app", "tmp-1"))] == []
    assert [j.rule for j in RECORDER.events(pushed("other/app", "latest"))] == []
    # By digest: nothing, unless it has a subject (then the subject is copied again).
    assert RECORDER.events(pushed("team/app", None)) == []
    subject = "sha256:" + "c" * 64
    signature = json.dumps({"subject": {"digest": subject, "size": 2}}).encode()
    assert {j.reference for j in RECORDER.events(pushed("team/app", None, signature))} == {subject}
    deleted = RECORDER.events(TagDeleted("team/app", "v1"))
    assert [(j.rule, j.action, j.reference) for j in deleted] == [
        ("mirror-deletes", "delete", "v1")
    ]
    gone = RECORDER.events(ManifestDeleted("x/y", "sha256:" + "d" * 64, ("v1",)))
    assert [(j.rule, j.action) for j in gone] == [("mirror-deletes", "delete")]


async def test_jobs_commit_and_roll_back_with_the_push(database_url: str) -> None:
    store = MetadataStore(create_engine(database_url))
    try:
        to_store = manifest(BLOB)
        with recording(RECORDER), pytest.raises(MissingReferencesError):
            await store.put_manifest("team/app", to_store, "v1")
        assert await store.count("replication_jobs") == 0
        await store.commit_blob("team/app", BLOB, 3)
        with recording(NOTIFY_RECORDER), recording(RECORDER) as recorded:
            await store.put_manifest("team/app", to_store, "v1")
        assert len(recorded.written) == 3
        assert await store.count("replication_jobs") == 3
        assert await store.pending_counts() == {"all": 1, "no-deletes": 1}  # both recorded
        counts = await store.job_counts()
        assert counts == {
            ("apps", "prod", "pending"): 1,
            ("apps", "dr", "pending"): 1,
            ("mirror-deletes", "dr", "pending"): 1,
        }
    finally:
        await store.close()


async def test_one_job_per_destination_and_repository_in_order(database_url: str) -> None:
    store = MetadataStore(create_engine(database_url))
    try:
        with recording(RECORDER):
            for tag in ("v1", "v2"):
                await store.commit_blob("team/app", BLOB, 3)
                await store.put_manifest("team/app", manifest(BLOB), tag)
            await store.commit_blob("team/web", BLOB, 3)
            await store.put_manifest("team/web", manifest(BLOB), "v1")
        now = utc_now()
        heads = await store.next_jobs(now)
        assert sorted((j.rule, j.destination, j.repository, j.reference) for j in heads) == [
            ("apps", "dr", "team/app", "v1"),
            ("apps", "dr", "team/web", "v1"),
            ("apps", "prod", "team/app", "v1"),
            ("apps", "prod", "team/web", "v1"),
        ]
        first = next(j for j in heads if j.destination == "prod" and j.repository == "team/app")
        # A failed attempt waits for its backoff, and the repository's next job behind it.
        await store.job_retry(first, "connection refused", now + timedelta(minutes=1))
        waiting = await store.next_jobs(now)
        assert not [j for j in waiting if j.destination == "prod" and j.repository == "team/app"]
        later = await store.next_jobs(now + timedelta(minutes=2))
        again = next(j for j in later if j.id == first.id)
        assert (again.attempts, again.last_error) == (1, "connection refused")
        # Out of retries: failed and kept, and the next job of the repository comes up.
        await store.job_failed(again, "connection refused")
        following = await store.next_jobs(now)
        assert ("team/app", "v2") in {
            (j.repository, j.reference) for j in following if j.destination == "prod"
        }
        failures = await store.recent_failures(10)
        assert [(f.id, f.state, f.attempts) for f in failures] == [(first.id, "failed", 2)]
        # A later copy of the same image succeeds: the failure is superseded.
        await store.enqueue_jobs(RECORDER.events(pushed("team/app", "v1"))[:1])
        following_job = _prod_app(await store.next_jobs(utc_now()))
        assert following_job.reference == "v2"  # the new job waits behind v2
        await store.job_done(following_job)
        repeat = _prod_app(await store.next_jobs(utc_now()))
        assert (repeat.reference, repeat.attempts) == ("v1", 0)
        await store.job_done(repeat)
        assert await store.recent_failures(10) == []
        assert await store.prune_done_jobs(utc_now() + timedelta(seconds=1)) == 2
    finally:
        await store.close()


def _prod_app(jobs: list[QueuedJob]) -> QueuedJob:
    return next(j for j in jobs if j.destination == "prod" and j.repository == "team/app")
