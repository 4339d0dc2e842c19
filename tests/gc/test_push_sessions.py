"""A push that outlasts the review delay loses nothing while it goes on: what it wanted
early (a child manifest pushed by digest, a layer nothing references yet) stays while it
keeps pushing into the repository, and goes once the repository rests for the delay.

A real application (``open_registry`` and ``make_web_app``: the wiring that notes push
sessions) serves on 127.0.0.1 with a review delay of one second; collections run beside
it, as ``dockyard garbage-collect --delete-untagged`` does. On both databases.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from dockyard.app import make_web_app, open_registry
from dockyard.config import load_config
from dockyard.gc.collector import Collector
from dockyard.gc.report import GcReport
from dockyard.gc.review import SESSION_DELAYS, head_refresh
from dockyard.gc.sessions import PushSessions
from dockyard.metadata import schema as t
from dockyard.registry.service import Registry
from tests.api.helpers import OCI_INDEX, OCI_MANIFEST, digest_of, image_manifest

REVIEW_AFTER = timedelta(seconds=1)
#: a push that goes on: a request into the repository this often (well within the delay)
PACE = 0.2


class Pushing:
    """A client of the served application, and collections beside it."""

    def __init__(self, session: aiohttp.ClientSession, registry: Registry) -> None:
        self.session = session
        self.registry = registry

    async def blob(self, name: str, data: bytes) -> str:
        digest = digest_of(data)
        async with self.session.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=data) as r:
            assert r.status == 201, await r.text()
        return digest

    async def slow_blob(self, name: str, data: bytes, pieces: int, pause: float) -> str:
        """An upload whose body takes ``pieces`` pauses to arrive (a big layer, a slow link)."""

        async def body() -> AsyncIterator[bytes]:
            size = -(-len(data) // pieces)
            for start in range(0, len(data), size):
                await asyncio.sleep(pause)
                yield data[start : start + size]

        digest = digest_of(data)
        url = f"/v2/{name}/blobs/uploads/?digest={digest}"
        async with self.session.post(url, data=body()) as r:
            assert r.status == 201, await r.text()
        return digest

    async def manifest(self, name: str, reference: str, body: bytes, kind: str) -> int:
        url = f"/v2/{name}/manifests/{reference}"
        async with self.session.put(url, data=body, headers={"Content-Type": kind}) as r:
            return r.status

    async def child(self, name: str, *layers: bytes) -> bytes:
        config = json.dumps({"os": "linux", "n": os.urandom(4).hex()}).encode()
        for blob in (config, *layers):
            await self.blob(name, blob)
        body = image_manifest(config, list(layers))
        assert await self.manifest(name, digest_of(body), body, OCI_MANIFEST) == 201
        return body

    async def keep_pushing(self, name: str, seconds: float) -> None:
        """Other uploads of the same push, one every ``PACE`` seconds."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await self.blob(name, os.urandom(100))
            await asyncio.sleep(PACE)

    async def collect(self) -> GcReport:
        collector = Collector(
            self.registry.metadata,
            self.registry.storage,
            review_after=REVIEW_AFTER,
            delete_untagged=True,
        )
        return await collector.run()

    async def pulls(self, name: str, digest: str) -> bool:
        async with self.session.get(f"/v2/{name}/manifests/{digest}") as r:
            return r.status == 200


async def age(registry: Registry, by: timedelta, session_rested: bool) -> None:
    """Move every want (and the start of every push session) ``by`` into the past; with
    ``session_rested``, as if no push had come since then either."""
    long_ago = datetime.now(UTC) - by
    sessions = {"started_at": long_ago, **({"active_at": long_ago} if session_rested else {})}
    async with registry.metadata.engine.connect() as connection:
        await connection.execute(update(t.manifests).values(wanted_at=long_ago))
        await connection.execute(update(t.blobs).values(wanted_at=long_ago))
        await connection.execute(update(t.gc_push_sessions).values(**sessions))
        await connection.commit()


def blobs_of(manifest: bytes) -> set[str]:
    parsed = json.loads(manifest)
    return {parsed["config"]["digest"], *(layer["digest"] for layer in parsed["layers"])}


def index_of(*children: bytes) -> bytes:
    entries = [
        {"mediaType": OCI_MANIFEST, "digest": digest_of(c), "size": len(c)} for c in children
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()


@pytest.fixture
async def pushing(database_url: str, tmp_path: Path) -> AsyncIterator[Pushing]:
    path = tmp_path / "config.yml"
    path.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'store'}\n"
        "http:\n  addr: 127.0.0.1:5000\n"
        f"database:\n  url: {database_url}\n"
        "gc:\n  reviewafter: 1s\n"
    )
    config = load_config(path).config
    registry = await open_registry(config)
    server = TestServer(make_web_app(config, registry, maintenance=False))
    await server.start_server()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}") as session:
            yield Pushing(session, registry)
    finally:
        await server.close()
        await registry.close()


async def test_a_push_that_outlasts_the_delay_keeps_what_it_pushed_first(
    pushing: Pushing,
) -> None:
    first = await pushing.child("multi", os.urandom(300))
    later_layer = os.urandom(400)
    await pushing.blob("multi", later_layer)  # uploaded first, referenced at the end

    await pushing.keep_pushing("multi", 2.5 * REVIEW_AFTER.total_seconds())
    report = await pushing.collect()

    kept = {digest_of(first), digest_of(later_layer)}
    assert kept.isdisjoint(r.digest for r in [*report.manifests, *report.blobs])
    second = await pushing.child("multi", later_layer)
    assert await pushing.manifest("multi", "v1", index_of(first, second), OCI_INDEX) == 201
    assert await pushing.pulls("multi", digest_of(first))


async def test_what_a_push_left_goes_once_the_repository_rests(pushing: Pushing) -> None:
    first = await pushing.child("multi", os.urandom(300))
    await asyncio.sleep(1.5 * REVIEW_AFTER.total_seconds())  # the client went away

    report = await pushing.collect()

    assert [r.digest for r in report.manifests] == [digest_of(first)]
    assert not await pushing.pulls("multi", digest_of(first))


async def test_a_repository_that_never_rests_is_still_collected(pushing: Pushing) -> None:
    """A session keeps what it wanted for SESSION_DELAYS review delays at the most."""
    first = await pushing.child("multi", os.urandom(300))
    await age(pushing.registry, (SESSION_DELAYS + 1) * REVIEW_AFTER, session_rested=False)
    await pushing.blob("multi", os.urandom(100))  # still pushing

    report = await pushing.collect()

    assert [r.digest for r in report.manifests] == [digest_of(first)]
    assert {r.digest for r in report.blobs} == blobs_of(first)  # not the last upload


async def test_a_head_keeps_the_child_manifest_it_finds(pushing: Pushing) -> None:
    """A client that finds an index's child (pushed long ago, untagged) by a ``HEAD``
    skips pushing it, then pushes the index."""
    first = await pushing.child("multi", os.urandom(300))
    await age(pushing.registry, timedelta(hours=1), session_rested=True)
    async with pushing.session.head(f"/v2/multi/manifests/{digest_of(first)}") as found:
        assert found.status == 200

    report = await pushing.collect()

    assert report.manifests == []
    second = await pushing.child("multi", os.urandom(200))
    assert await pushing.manifest("multi", "v1", index_of(first, second), OCI_INDEX) == 201


async def test_a_request_that_outlasts_the_delay_is_a_push_in_flight(pushing: Pushing) -> None:
    """Nothing else reaches the repository while one upload takes longer than the delay:
    the push goes on all the same."""
    first = await pushing.child("multi", os.urandom(300))
    layer = os.urandom(3000)
    upload = asyncio.create_task(pushing.slow_blob("multi", layer, pieces=3, pause=0.9))
    await asyncio.sleep(2.2 * REVIEW_AFTER.total_seconds())  # the upload is still going

    report = await pushing.collect()

    assert not upload.done()
    await upload
    assert digest_of(first) not in {r.digest for r in report.manifests}
    second = await pushing.child("multi", layer)
    assert await pushing.manifest("multi", "v1", index_of(first, second), OCI_INDEX) == 201


async def active_at(registry: Registry, name: str) -> datetime:
    query = (
        select(t.gc_push_sessions.c.active_at)
        .join(t.repositories, t.repositories.c.id == t.gc_push_sessions.c.repository_id)
        .where(t.repositories.c.name == name)
    )
    async with registry.metadata.engine.connect() as connection:
        found: datetime = (await connection.execute(query)).scalar_one()
        return found


async def test_a_pushing_request_starts_no_task_of_its_own(pushing: Pushing) -> None:
    """The heartbeat lives as long as the worker: the first push starts it, and no request
    starts or cancels a task (a quiet worker's requests each went from 0 in flight to 1)."""
    await pushing.blob("multi", os.urandom(100))
    sessions = PushSessions(pushing.registry.metadata, REVIEW_AFTER)
    loop = asyncio.get_running_loop()
    created: list[asyncio.Task[object]] = []

    def counting(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, object]
    ) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.Task(coro, loop=loop)
        if getattr(coro, "__qualname__", "").startswith("PushSessions."):
            created.append(task)  # (not the database driver's own)
        return task

    loop.set_task_factory(counting)  # type: ignore[arg-type]
    try:
        for _ in range(20):
            async with sessions.pushing("multi"):
                await asyncio.sleep(0)
    finally:
        loop.set_task_factory(None)
        await sessions.close()

    assert len(created) == 1  # the heartbeat, once
    assert created[0].done()  # stopped by close


async def test_the_heartbeat_notes_a_request_that_runs_long(pushing: Pushing) -> None:
    await pushing.blob("multi", os.urandom(100))
    sessions = PushSessions(pushing.registry.metadata, REVIEW_AFTER)
    refresh = head_refresh(REVIEW_AFTER).total_seconds()
    try:
        async with sessions.pushing("multi"):
            noted = await active_at(pushing.registry, "multi")
            await asyncio.sleep(4 * refresh)  # the request goes on, nothing else comes
            beaten = await active_at(pushing.registry, "multi")
            assert (beaten - noted).total_seconds() >= 2 * refresh
        # A beat may still land between that read and the end; after the end none does.
        ended = await active_at(pushing.registry, "multi")
        await asyncio.sleep(3 * refresh)  # once it ends, nothing more is noted
        assert await active_at(pushing.registry, "multi") == ended
    finally:
        await sessions.close()
