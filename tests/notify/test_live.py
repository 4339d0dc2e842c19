"""Notifications of a served registry, with skopeo as the client: the same events as
Debian's docker-registry 2.8.2 (registry:2) sends for the same push and pull, and events
that wait in the outbox across a restart of Dockyard while their endpoint is down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clients import Skopeo, make_client_env, remove_tree
from tests.e2e.images import build_image
from tests.e2e.server import RegistryServer, write_config
from tests.notify.receiver import Receiver


@pytest.fixture(scope="module")
def skopeo() -> Iterator[Skopeo]:
    env = make_client_env()
    yield Skopeo(env)
    remove_tree(env.root)


def notifications(receiver: Receiver) -> str:
    return (
        "notifications:\n"
        "  events:\n    includereferences: true\n"
        "  endpoints:\n"
        "    - name: hook\n"
        f"      url: {receiver.url}\n"
        "      timeout: 1s\n      threshold: 2\n      backoff: 200ms\n"
        "outbox:\n  interval: 100ms\n"
    )


def served(kind: str, workdir: Path, receiver: Receiver, extra: str = "") -> RegistryServer:
    server = RegistryServer(kind, workdir)
    server.store.mkdir(parents=True)
    write_config(server.config, store=server.store, port=server.port, extra="")
    server.config.write_text(server.config.read_text() + notifications(receiver) + extra)
    return server


def shape(event: dict[str, Any]) -> tuple[Any, ...]:
    """What must be the same from both servers (ids, times and addresses differ)."""
    target = event["target"]
    return (
        event["action"],
        tuple(target),
        target.get("mediaType"),
        target.get("digest"),
        target.get("size"),
        target.get("tag"),
        tuple(r["digest"] for r in target.get("references", ())),
        tuple(event["request"]),
        event["request"]["method"],
        tuple(event["source"]),
        event["actor"],
    )


@pytest.mark.parametrize("kind", ["dockyard", "registry2"])
async def test_skopeo_push_and_pull_notify_as_registry2(
    kind: str, tmp_path: Path, skopeo: Skopeo, receiver: Receiver
) -> None:
    image = build_image(tmp_path / "layout", "v1", data_size=2048)
    server = served(kind, tmp_path / kind, receiver)
    server.start()
    try:
        await asyncio.to_thread(
            skopeo.copy, f"oci:{image.layout}:v1", server.docker_ref("team/app", "v1")
        )
        pushed = len(image.layer_digests) + 2  # layers, config, manifest
        await receiver.wait_for(pushed)
        await asyncio.to_thread(
            skopeo.copy, server.docker_ref("team/app", "v1"), f"oci:{tmp_path / 'pulled'}:v1"
        )
        events = await receiver.wait_for(pushed * 2)
    finally:
        server.stop()
    manifest = json.loads(image.manifest_bytes)
    blobs = {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
    pushes, pulls = events[:pushed], events[pushed:]
    # Blobs go up in any order (skopeo uploads them in parallel): compare them as a set.
    assert {e["target"]["digest"] for e in pushes[:-1]} == blobs
    assert shape(pushes[-1]) == (
        "push",
        ("mediaType", "size", "digest", "length", "repository", "url", "tag", "references"),
        manifest["mediaType"],
        image.manifest_digest,
        len(image.manifest_bytes),
        "v1",
        (manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])),
        ("id", "addr", "host", "method", "useragent"),
        "PUT",
        ("addr", "instanceID"),
        {},
    )
    assert shape(pulls[0])[:7] == ("pull", *shape(pushes[-1])[1:7])
    assert {e["target"]["digest"] for e in pulls[1:]} == blobs
    for event in [*pushes[:-1], *pulls[1:]]:
        assert tuple(event["target"]) == (
            "mediaType",
            "size",
            "digest",
            "length",
            "repository",
            "url",
        )
        assert event["target"]["mediaType"] == "application/octet-stream"
    assert all(e["request"]["useragent"].startswith("skopeo/") for e in events)
    assert all(e["source"]["addr"].endswith(f":{server.port}") for e in events)


async def test_events_wait_across_a_restart_until_the_endpoint_is_back(
    tmp_path: Path, skopeo: Skopeo
) -> None:
    """With two workers, each of which may deliver: one does at a time, so no event
    comes twice."""
    receiver = Receiver()  # not started: connections are refused
    server = served("dockyard", tmp_path / "dockyard", receiver, "serve:\n  workers: 2\n")
    image = build_image(tmp_path / "layout", "v1", data_size=2048)
    server.start()
    try:
        await asyncio.to_thread(
            skopeo.copy, f"oci:{image.layout}:v1", server.docker_ref("team/app", "v1")
        )
        server.restart()  # the events are in the database, not in the process
        receiver.status = 503
        await receiver.start()
        await receiver.wait_until(lambda: receiver.attempts >= 1, "a delivery attempt")
        assert receiver.received == []
        receiver.status = 200
        events = await receiver.wait_for(len(image.layer_digests) + 2)
        await asyncio.to_thread(
            skopeo.copy, server.docker_ref("team/app", "v1"), f"oci:{tmp_path / 'pulled'}:v1"
        )
        pulled = await receiver.wait_for(2 * len(events))
        await asyncio.sleep(1.5)  # a round of each worker: nothing more may come
        assert len(receiver.received) == len(pulled)
        assert len({e["id"] for e in pulled}) == len(pulled)
        assert len(server.worker_pids(expect=2)) == 2
    finally:
        server.stop()
        await receiver.stop()
    assert events[-1]["action"] == "push"
    assert events[-1]["target"]["digest"] == image.manifest_digest
    assert events[-1]["target"]["tag"] == "v1"
    log = server.log_text()
    assert "notifications: endpoint 'hook'" in log
