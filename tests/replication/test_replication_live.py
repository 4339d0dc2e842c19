"""Replication inside the server, with real parts: a Dockyard with a ``replication``
section, images pushed to it with skopeo, and a Distribution 2.8.2 destination that
receives them byte-identical; a destination that is down and comes back; a restart with
jobs pending; filters; a job that runs out of retries; a scheduled rule; the queue on
SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.clients import Skopeo
from tests.e2e.images import Image, ImageIndex, build_image, sha256_digest
from tests.e2e.server import RegistryServer
from tests.replication.helpers import (
    assert_same_image,
    dead_url,
    dockyard_with,
    eventually,
    has_manifest,
    replication_section,
    replication_status,
    serving,
)
from tests.sync.test_sync_live import push_signature, referrers

pytestmark = pytest.mark.e2e


def rules(repo: str) -> str:
    return (
        "    - name: to-prod\n      destination: prod\n"
        f"      repositories: ['{repo}/*']\n      exclude: ':skip-'\n"
        "    - name: nightly\n      destination: prod\n"
        f"      repositories: ['{repo}-sched/*']\n      onpush: false\n      interval: 1s\n"
        "    - name: to-nowhere\n      destination: nowhere\n"
        f"      repositories: ['{repo}-dead/*']\n"
    )


def test_pushed_images_reach_registry2_byte_identical(
    tmp_path: Path, prod: RegistryServer, skopeo: Skopeo, image: Image,
    image_index: ImageIndex, repo: str, dev_database: str | None,
) -> None:  # fmt: skip
    section = replication_section({"prod": prod.url, "nowhere": dead_url()}, rules(repo), retries=1)
    dev = dockyard_with(tmp_path / "dev", section, dev_database)
    with serving(dev):
        app, multi = f"{repo}/app", f"{repo}/multi"
        skopeo.copy(image.ref, dev.docker_ref(app, "skip-1"))  # excluded by the rule
        skopeo.copy(image.ref, dev.docker_ref(app, "v1"))
        skopeo.copy(image_index.ref, dev.docker_ref(multi, "v1"), "--all")
        eventually(lambda: has_manifest(prod, multi, "v1"), "the index in prod")
        eventually(lambda: has_manifest(prod, app, "v1"), "the image in prod")
        assert_same_image(skopeo, dev, prod, app, "v1")
        assert skopeo.inspect_raw(prod.docker_ref(multi, "v1")) == skopeo.inspect_raw(
            dev.docker_ref(multi, "v1")
        )
        for child in image_index.index["manifests"]:
            raw = skopeo.inspect_raw(prod.docker_ref(multi, child["digest"]))
            assert sha256_digest(raw) == child["digest"]
        assert skopeo.list_tags(prod.docker_repo(app)) == ["v1"]  # skip-1 stayed home

        # A signature pushed later follows its subject (the fallback tag in registry:2).
        manifest = skopeo.inspect_raw(dev.docker_ref(app, "v1"))
        signature = push_signature(dev, app, manifest)
        eventually(
            lambda: signature in referrers(prod, app, sha256_digest(manifest)),
            "the signature in prod",
        )

        # A scheduled rule copies without a push job; a dead destination fails and is kept.
        built = build_image(tmp_path / "sched", "s", data_size=2048)
        skopeo.copy(built.ref, dev.docker_ref(f"{repo}-sched/app", "1.0"))
        skopeo.copy(built.ref, dev.docker_ref(f"{repo}-dead/app", "1.0"))
        eventually(lambda: has_manifest(prod, f"{repo}-sched/app", "1.0"), "the scheduled copy")

        def failed() -> bool:
            return any(q["failed"] for q in replication_status(dev)[1]["queues"])

        eventually(failed, "the job to nowhere to fail")
        code, status = replication_status(dev)
        assert code == 1
        queues = {(q["rule"], q["destination"]): q for q in status["queues"]}
        assert queues[("to-prod", "prod")]["pending"] == 0
        assert queues[("to-prod", "prod")]["done"] >= 3  # app:v1, multi:v1, the signature
        assert queues[("to-nowhere", "nowhere")]["failed"] == 1
        failure = status["failures"][0]
        assert failure["repository"] == f"{repo}-dead/app" and failure["state"] == "failed"
        assert failure["attempts"] == 2 and "Connect" in failure["last_error"]
        assert ":skip-" not in str(status)


def test_a_destination_that_is_down_gets_the_image_when_it_is_back(
    tmp_path: Path, skopeo: Skopeo, image: Image, repo: str
) -> None:
    flaky = RegistryServer("registry2", tmp_path / "flaky")
    flaky.start()
    flaky.stop()  # configured and known, but down when the push comes
    rule = f"    - name: to-flaky\n      destination: flaky\n      repositories: ['{repo}']\n"
    dev = dockyard_with(tmp_path / "dev", replication_section({"flaky": flaky.url}, rule))
    with serving(dev):
        skopeo.copy(image.ref, dev.docker_ref(repo, "v1"))

        def retrying() -> bool:
            failures = replication_status(dev)[1]["failures"]
            return bool(failures) and failures[0]["attempts"] >= 2

        eventually(retrying, "two failed attempts")
        job = replication_status(dev)[1]["failures"][0]
        assert job["state"] == "pending" and job["last_error"]
        flaky.start()
        try:
            eventually(lambda: has_manifest(flaky, repo, "v1"), "the image once flaky is up")
            assert_same_image(skopeo, dev, flaky, repo, "v1")
            code, status = replication_status(dev)
            assert code == 0 and status["failures"] == []
        finally:
            flaky.stop()


def test_a_restart_resumes_pending_jobs(
    tmp_path: Path, skopeo: Skopeo, image: Image, repo: str, dev_database: str | None
) -> None:
    later = RegistryServer("registry2", tmp_path / "later")
    later.start()
    later.stop()
    rule = f"    - name: to-later\n      destination: later\n      repositories: ['{repo}']\n"
    section = replication_section({"later": later.url}, rule)
    dev = dockyard_with(tmp_path / "dev", section, dev_database)
    dev.start()
    try:
        skopeo.copy(image.ref, dev.docker_ref(repo, "v1"))
        skopeo.copy(image.ref, dev.docker_ref(repo, "v2"))
        eventually(lambda: bool(replication_status(dev)[1]["failures"]), "a failed attempt")
        dev.stop()
        _, status = replication_status(dev)
        assert status["queues"][0]["pending"] == 2
        later.start()
        dev.start()
        eventually(lambda: has_manifest(later, repo, "v2"), "the images after the restart")
        assert skopeo.list_tags(later.docker_repo(repo)) == ["v1", "v2"]
        assert_same_image(skopeo, dev, later, repo, "v2")
    finally:
        dev.stop()
        later.stop()


def test_deletes_follow_when_the_rule_says_so(
    tmp_path: Path, prod: RegistryServer, skopeo: Skopeo, image: Image, repo: str
) -> None:
    rule = (
        f"    - name: with-deletes\n      destination: prod\n      repositories: ['{repo}']\n"
        "      deletes: true\n"
    )
    dev = dockyard_with(tmp_path / "dev", replication_section({"prod": prod.url}, rule))
    with serving(dev):
        skopeo.copy(image.ref, dev.docker_ref(repo, "v1"))
        skopeo.copy(image.ref, dev.docker_ref(repo, "v2"))
        eventually(lambda: has_manifest(prod, repo, "v2"), "v2 in prod")

        # registry:2 cannot delete a tag: the job fails at once, and prod keeps the tag.
        assert dev.request("DELETE", f"/v2/{repo}/manifests/v2").status == 202
        eventually(lambda: bool(replication_status(dev)[1]["failures"]), "the refused delete")
        code, status = replication_status(dev)
        failure = status["failures"][0]
        assert code == 1 and failure["action"] == "delete" and failure["attempts"] == 1
        assert "refuses to delete tag 'v2'" in failure["last_error"]
        assert has_manifest(prod, repo, "v2")

        # A manifest deleted by digest is deleted there too (with the tags on it).
        digest = image.manifest_digest
        assert dev.request("DELETE", f"/v2/{repo}/manifests/{digest}").status == 202
        eventually(lambda: not has_manifest(prod, repo, digest), "the manifest gone from prod")
        assert not has_manifest(prod, repo, "v1")
