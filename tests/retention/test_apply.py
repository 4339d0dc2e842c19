"""Retention against a real database: what goes, what stays, and a push racing it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from dockyard.registry.service import Registry
from dockyard.retention.apply import apply_retention, scheduled_retention
from dockyard.retention.policy import RetentionPolicy, RetentionRule
from tests.api.helpers import OCI_INDEX, OCI_MANIFEST, Client, push_image
from tests.retention.conftest import RELEASES

LATER = timedelta(days=40)


def policy(**rule: object) -> RetentionPolicy:
    return RetentionPolicy(
        (RetentionRule("ci", ("prod/**", "ci/**"), **rule),),  # type: ignore[arg-type]
        RELEASES,
    )


async def tags_of(client: Client, name: str) -> list[str]:
    response = await client.get(f"/v2/{name}/tags/list")
    return sorted((await response.json())["tags"])


async def test_dry_run_lists_and_a_run_removes(protected: tuple[Client, Registry]) -> None:
    client, registry = protected
    for tag in ("b1", "b2", "b3", "v1.0"):
        await push_image(client, "prod/app", tag)
    await push_image(client, "other/app", "b1")  # no rule matches it
    rules = policy(keep_last=1, untagged_older_than=timedelta(days=7))
    now = datetime.now(UTC) + LATER

    dry = await apply_retention(registry.metadata, rules, dry_run=True, now=now)
    assert [(r.kind, r.reference) for r in dry.removals if r.kind == "tag"] == [
        ("tag", "b1"),
        ("tag", "b2"),
    ]
    assert dry.deleted_manifests == 2  # b1's and b2's manifests, untagged by the same run
    assert await tags_of(client, "prod/app") == ["b1", "b2", "b3", "v1.0"]

    done = await apply_retention(registry.metadata, rules, dry_run=False, now=now)
    assert (done.deleted_tags, done.deleted_manifests, done.repositories) == (2, 2, 1)
    assert await tags_of(client, "prod/app") == ["b3", "v1.0"]
    assert await tags_of(client, "other/app") == ["b1"]
    gone = [r.digest for r in done.removals if r.kind == "manifest"]
    for digest in gone:
        response = await client.get(f"/v2/prod/app/manifests/{digest}")
        assert response.status == 404
    again = await apply_retention(registry.metadata, rules, dry_run=False, now=now)
    assert again.removals == []


async def test_a_tag_pushed_after_the_plan_stays(protected: tuple[Client, Registry]) -> None:
    client, registry = protected
    _, manifest, _ = await push_image(client, "ci/app", "t1")
    metadata = registry.metadata
    snapshot = await metadata.repository_snapshot("ci/app")
    assert snapshot is not None
    (planned,) = snapshot.tags
    pushed = await client.put(
        "/v2/ci/app/manifests/t1", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert pushed.status == 201
    assert await metadata.delete_tags_unless_pushed("ci/app", [planned]) == set()
    assert await tags_of(client, "ci/app") == ["t1"]


async def test_an_untagged_manifest_tagged_meanwhile_stays(
    protected: tuple[Client, Registry],
) -> None:
    client, registry = protected
    digest, manifest, _ = await push_image(client, "ci/app", "t1")
    assert (await client.delete("/v2/ci/app/manifests/t1")).status == 202
    snapshot = await registry.metadata.repository_snapshot("ci/app")
    assert snapshot is not None and not snapshot.tags
    (row,) = snapshot.manifests
    await client.put(
        "/v2/ci/app/manifests/t2", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    future = datetime.now(UTC) + LATER
    assert await registry.metadata.delete_untagged_manifests("ci/app", [row.id], future) == set()
    assert (await client.get(f"/v2/ci/app/manifests/{digest}")).status == 200


async def test_a_scheduled_dry_run_only_reports(protected: tuple[Client, Registry]) -> None:
    client, registry = protected
    for tag in ("a", "b"):
        await push_image(client, "ci/app", tag)
    rules = policy(keep_last=1)
    dry = RetentionPolicy(rules.rules, rules.immutable, dry_run=True)
    report = await scheduled_retention(registry.metadata, dry)
    assert report is not None and report.dry_run and report.deleted_tags == 1
    assert await tags_of(client, "ci/app") == ["a", "b"]
    assert await scheduled_retention(registry.metadata, RetentionPolicy()) is None
    done = await scheduled_retention(registry.metadata, rules)
    assert done is not None and done.deleted_tags == 1
    assert await tags_of(client, "ci/app") == ["b"]


async def test_an_old_untagged_index_goes_with_its_children_a_tagged_one_keeps_them(
    protected: tuple[Client, Registry],
) -> None:
    client, registry = protected
    children = [await push_image(client, "ci/multi", f"child{n}") for n in range(4)]
    for n in range(4):
        assert (await client.delete(f"/v2/ci/multi/manifests/child{n}")).status == 202
    descriptors = [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}
        for digest, body, _ in children
    ]
    for tag, listed in (("old", descriptors[:2]), ("kept", descriptors[2:])):
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}
        ).encode()
        response = await client.put(
            f"/v2/ci/multi/manifests/{tag}", data=index, headers={"Content-Type": OCI_INDEX}
        )
        assert response.status == 201
    assert (await client.delete("/v2/ci/multi/manifests/old")).status == 202
    rules = policy(untagged_older_than=timedelta(days=7))
    report = await apply_retention(
        registry.metadata, rules, dry_run=False, now=datetime.now(UTC) + LATER
    )
    assert report.kept_changed == 0
    gone = {r.digest for r in report.removals if r.kind == "manifest"}
    assert gone >= {children[0][0], children[1][0]} and len(gone) == 3  # the index too
    for digest, _, _ in children[2:]:
        assert (await client.get(f"/v2/ci/multi/manifests/{digest}")).status == 200
    assert await tags_of(client, "ci/multi") == ["kept"]
