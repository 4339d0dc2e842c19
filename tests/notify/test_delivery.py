"""Notifications from a registry in this process to a real receiver, on both databases:
what each action sends, an endpoint that fails and comes back, the filters, and the
bounds of the outbox."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from tests.api.helpers import OCI_MANIFEST, digest_of, push_blob, push_image
from tests.notify.conftest import config_text, drained, endpoint, serving
from tests.notify.receiver import Receiver

EVENT_KEYS = ["id", "timestamp", "action", "target", "request", "actor", "source"]
BLOB = "application/octet-stream"


async def test_each_action_sends_what_registry2_sends(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    text = config_text(
        database_url, "  events:\n    includereferences: true\n  endpoints:\n" + endpoint(receiver)
    )
    async with serving(tmp_path, text) as served:
        client = served.client
        digest, manifest, layers = await push_image(client, "team/app", "v1")
        config_digest = json.loads(manifest)["config"]["digest"]
        pushed = await receiver.wait_for(4)
        assert [e["action"] for e in pushed] == ["push"] * 4
        assert [e["target"]["digest"] for e in pushed[:3]] == [
            config_digest,
            *[digest_of(layer) for layer in layers],
        ]
        blob = pushed[1]
        assert list(blob) == EVENT_KEYS
        assert blob["target"] == {
            "mediaType": BLOB,
            "size": len(layers[0]),
            "digest": digest_of(layers[0]),
            "length": len(layers[0]),
            "repository": "team/app",
            "url": f"http://{client.host}:{client.port}/v2/team/app/blobs/{digest_of(layers[0])}",
        }
        request = blob["request"]
        assert request["method"] == "POST"
        assert request["host"] == f"{client.host}:{client.port}"
        assert request["addr"].startswith("127.0.0.1:")
        assert request["useragent"].startswith("Python")
        assert blob["actor"] == {}
        assert blob["source"]["addr"].endswith(":5000")
        target = pushed[3]["target"]
        assert list(target) == [
            *["mediaType", "size", "digest", "length", "repository", "url", "tag"],
            "references",
        ]
        assert (target["mediaType"], target["digest"], target["tag"]) == (
            OCI_MANIFEST,
            digest,
            "v1",
        )
        assert target["size"] == target["length"] == len(manifest)
        assert [r["digest"] for r in target["references"]] == [
            config_digest,
            *[digest_of(layer) for layer in layers],
        ]
        sent = receiver.received[0]
        assert sent.headers["Content-Type"] == "application/vnd.docker.distribution.events.v1+json"
        assert sent.headers["Authorization"] == "Bearer t0ken"
        assert sent.body.startswith(b'{\n   "events": [\n      {\n         "id": ')

        # Pulls: manifest GET by tag and HEAD by digest, blob HEAD and GET.
        accept = {"Accept": OCI_MANIFEST}
        by_tag = await client.get("/v2/team/app/manifests/v1", headers=accept)
        assert by_tag.status == 200
        assert (await client.head(f"/v2/team/app/manifests/{digest}", headers=accept)).status == 200
        layer = digest_of(layers[0])
        assert (await client.head(f"/v2/team/app/blobs/{layer}")).status == 200
        assert (await client.get(f"/v2/team/app/blobs/{layer}")).status == 200
        assert (await client.get("/v2/team/app/blobs/" + digest_of(b"nothing"))).status == 404
        pulls = (await receiver.wait_for(8))[4:]
        assert [e["action"] for e in pulls] == ["pull"] * 4
        assert pulls[0]["target"]["tag"] == "v1" and "tag" not in pulls[1]["target"]
        # the request's own id, as in its log lines (Distribution's request.id)
        assert pulls[0]["request"]["id"] == by_tag.headers["X-Request-Id"]
        assert [p["request"]["method"] for p in pulls] == ["GET", "HEAD", "HEAD", "GET"]
        assert pulls[2]["target"]["mediaType"] == BLOB

        # A mount, then deletes: a blob, a tag, a manifest (with the tag still on it).
        mounted = await client.post(f"/v2/team/other/blobs/uploads/?mount={layer}&from=team/app")
        assert mounted.status == 201
        assert (await client.delete(f"/v2/team/other/blobs/{layer}")).status == 202
        _, _, _ = await push_image(client, "team/app", "v2")
        assert (await client.delete("/v2/team/app/manifests/v1")).status == 202
        second = (await receiver.wait_for(15))[13]["target"]["digest"]
        assert (await client.delete(f"/v2/team/app/manifests/{second}")).status == 202
        events = await receiver.wait_for(17)
        assert events[8]["action"] == "mount"
        assert events[8]["target"]["fromRepository"] == "team/app"
        assert events[8]["target"]["repository"] == "team/other"
        assert events[9]["action"] == "delete"
        assert events[9]["target"] == {"digest": layer, "repository": "team/other"}
        assert events[14]["target"] == {"repository": "team/app", "tag": "v1"}
        assert events[15]["target"] == {"digest": second, "repository": "team/app"}
        assert events[16]["target"] == {"repository": "team/app", "tag": "v2"}
        assert events[15]["request"]["id"] == events[16]["request"]["id"]
        assert len({e["id"] for e in events}) == 17
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 17
        assert served.observer.queued_events["hook"] == 17
        assert served.observer.answers[("hook", 200)] == 17
        await drained(served)


async def test_an_endpoint_that_fails_gets_every_event_in_order_when_it_is_back(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    text = config_text(database_url, "  endpoints:\n" + endpoint(receiver))
    receiver.status = 503
    async with serving(tmp_path, text) as served:
        client = served.client
        blobs = {repo: [os.urandom(64) for _ in range(3)] for repo in ("a/one", "b/two")}
        for index in range(3):
            for repo, data in blobs.items():
                await push_blob(client, repo, data[index])
        await receiver.wait_until(lambda: receiver.attempts >= 4, "the threshold, then the backoff")
        assert receiver.received == []
        assert await served.registry.metadata.count("notification_outbox") == 6
        assert served.observer.answers[("hook", 503)] >= 2
        receiver.status = 200
        events = await receiver.wait_for(6)
        for repo, data in blobs.items():
            got = [e["target"]["digest"] for e in events if e["target"]["repository"] == repo]
            assert got == [digest_of(d) for d in data]
        await drained(served)
        assert served.observer.dropped_events == {}


async def test_ignored_media_types_and_actions(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    other = Receiver()
    await other.start()
    try:
        text = config_text(
            database_url,
            "  endpoints:\n"
            + endpoint(receiver, "no-pulls", "      ignore:\n        actions: [pull]\n")
            + endpoint(other, "manifests", f"      ignoredmediatypes: [{BLOB}]\n")
            + endpoint(other, "off", "      disabled: true\n"),
        )
        async with serving(tmp_path, text) as served:
            client = served.client
            digest, _, _ = await push_image(client, "team/app", "v1")
            accept = {"Accept": OCI_MANIFEST}
            assert (await client.get("/v2/team/app/manifests/v1", headers=accept)).status == 200
            assert (await client.delete(f"/v2/team/app/manifests/{digest}")).status == 202
            no_pulls = await receiver.wait_for(6)
            manifests = await other.wait_for(4)
            await asyncio.sleep(0.3)
        assert [e["action"] for e in no_pulls] == ["push"] * 4 + ["delete"] * 2
        assert [(e["action"], e["target"].get("mediaType")) for e in manifests] == [
            ("push", OCI_MANIFEST),
            ("pull", OCI_MANIFEST),
            ("delete", None),
            ("delete", None),
        ]
        assert len(receiver.received) == 6 and len(other.received) == 4
        assert set(served.observer.queued_events) == {"no-pulls", "manifests"}
    finally:
        await other.stop()


async def test_without_an_enabled_endpoint_nothing_is_written(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    text = config_text(
        database_url, "  endpoints:\n" + endpoint(receiver, extra="      disabled: true\n")
    )
    async with serving(tmp_path, text) as served:
        # No notification wrapper anywhere in the chain (the push-session one stays).
        layer: object = served.registry.manifests
        while hasattr(layer, "_inner"):
            assert not type(layer).__module__.startswith("dockyard.notify")
            layer = layer._inner
        assert type(layer).__name__ == "ManifestService"
        await push_image(served.client, "team/app", "v1")
        got = await served.client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert got.status == 200
        await drained(served)
    assert receiver.attempts == 0


async def test_the_outbox_bounds_drop_and_count(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    text = config_text(
        database_url,
        "  endpoints:\n" + endpoint(receiver),
        "  maxattempts: 3\n  maxpending: 2\n",
    )
    receiver.status = 500
    async with serving(tmp_path, text) as served:
        for _ in range(4):
            await push_blob(served.client, "team/app", os.urandom(32))
        await drained(served)
        # Two dropped as the queue was full, two after three failed attempts each.
        assert served.observer.dropped_events["hook"] == 4
        assert served.observer.answers[("hook", 500)] >= 6  # 3 for each of the last two
        receiver.status = 200
        kept = await push_blob(served.client, "team/app", b"after")
        (event,) = await receiver.wait_for(1)
        assert event["target"]["digest"] == kept
