"""The database fails after a batch deleted its bytes and before the batch's transaction
commits: the rows roll back, and the registry must not go on serving them (a client told
the blob exists skips the upload its manifest needs). On both databases, through the
registry's HTTP API.

The storage is the real in-memory driver (no local files: a ``HEAD`` answers from the
database alone, as on an object store), wrapped to start the outage right after it deleted
a batch's bytes: no real database fails on demand at that point. The outage itself is
real. On PostgreSQL the database refuses connections and every backend of it is
terminated (``pg_terminate_backend``, the collector's among them), as in a restart, or
only the collector's session is, beside another session that holds a row or a manifest
push waiting on the batch; on SQLite the writer's connection refuses writes (``PRAGMA
query_only``), as a read-only or failing disk would.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from dockyard.fsck.check import check_store
from dockyard.gc.collector import Collector
from dockyard.metadata import schema as t
from dockyard.metadata.engine import InlineEngine
from dockyard.oci.digest import Digest
from dockyard.registry.service import Registry
from dockyard.storage import paths
from dockyard.storage.driver import StorageDriver, StorageError
from dockyard.storage.inmemory import InMemoryDriver
from tests.api.helpers import OCI_MANIFEST, Client, digest_of, image_manifest, push_blob
from tests.gc.test_collector import (
    age_everything,
    collect,
    collector_of,
    config_and_layers,
    put_manifest,
    stored,
)
from tests.postgres import USER, PostgresServer


class Outage(Protocol):
    async def begin(self) -> None: ...
    async def end(self) -> None: ...


class PostgresOutage:
    """The test's database refuses connections, and every session on it is terminated."""

    def __init__(self, server: PostgresServer, url: str) -> None:
        self._server = server
        self._name = str(make_url(url).database)
        self.terminated = 0
        #: False: only the sessions inside a transaction (the collector's) are terminated,
        #: and the database takes connections all along
        self.refuses = True
        #: whether another session locks a blob row (``holding``) at the outage, for a
        #: second, as a push would
        self.holds = False
        self.holding = ""
        self._holder: asyncio.Task[None] | None = None

    async def _run(self, statement: str) -> int:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self._server.port, user=USER, database="postgres"
        )
        try:
            return int(await connection.fetchval(statement) or 0)
        finally:
            await connection.close()

    async def begin(self) -> None:
        which = f"datname = '{self._name}'"
        if self.refuses:
            await self._run(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS false')
        else:
            which += " AND state = 'idle in transaction'"
        self.terminated += await self._run(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE {which}"
        )
        if self.holds:
            holder = await asyncpg.connect(
                host="127.0.0.1", port=self._server.port, user=USER, database=self._name
            )
            locking = holder.transaction()
            await locking.start()
            await holder.execute("SELECT 1 FROM blobs WHERE digest = $1 FOR UPDATE", self.holding)
            self._holder = asyncio.create_task(self._release(holder, locking))

    async def _release(self, holder: asyncpg.Connection, locking: Any) -> None:
        await asyncio.sleep(1.0)
        await locking.commit()
        await holder.close()

    async def lock_waited_for(self) -> None:
        """Return once a session of the test's database waits for a lock."""
        waiting = (
            "SELECT count(*) FROM pg_stat_activity "
            f"WHERE datname = '{self._name}' AND wait_event_type = 'Lock'"
        )
        for _ in range(1500):  # 30 s
            if await self._run(waiting):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("no session waited for a lock")

    async def end(self) -> None:
        await self._run(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS true')
        if self._holder is not None:
            await self._holder


class SqliteOutage:
    """The store's one writer connection refuses every write."""

    def __init__(self, registry: Registry) -> None:
        engine = registry.metadata.engine
        assert isinstance(engine, InlineEngine)
        driver = engine.writer().sync_connection.connection.driver_connection
        assert driver is not None
        self._driver = driver
        self.terminated = 0

    async def begin(self) -> None:
        self._driver.execute("PRAGMA query_only = 1")
        self.terminated += 1

    async def end(self) -> None:
        self._driver.execute("PRAGMA query_only = 0")


class FailsAfterDeleting(InMemoryDriver):
    """Deletes as the real driver does; when a batch holds ``target``, starts the outage
    once its bytes are deleted, and ends it ``lasting`` seconds later (never if None).
    The bytes at ``spared`` stay, unreported (a delete an object store dropped, or bytes
    a push put back at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.outage: Outage | None = None
        self.target = ""
        self.spared = ""
        self.lasting: float | None = None
        #: run before the target's batch deletes anything
        self.first: Callable[[], Awaitable[None]] | None = None
        self._ending: asyncio.Task[None] | None = None

    async def delete_many(self, paths: Sequence[str]) -> dict[str, StorageError]:
        outage = self.outage if self.target in paths else None
        if outage is not None and self.first is not None:
            await self.first()
        failures = await super().delete_many([p for p in paths if p != self.spared])
        if outage is not None:
            self.outage = None
            await outage.begin()
            if self.lasting is not None:
                self._ending = asyncio.create_task(self._end(outage, self.lasting))
        return failures

    async def _end(self, outage: Outage, after: float) -> None:
        await asyncio.sleep(after)
        await outage.end()


@pytest.fixture
def storage_driver() -> StorageDriver:
    return FailsAfterDeleting()


@pytest.fixture
async def outage(
    database: str, database_url: str, registry: Registry, request: pytest.FixtureRequest
) -> AsyncIterator[PostgresOutage | SqliteOutage]:
    found: PostgresOutage | SqliteOutage
    if database == "postgresql":
        found = PostgresOutage(request.getfixturevalue("postgres"), database_url)
    else:
        found = SqliteOutage(registry)
    yield found
    await found.end()  # whatever the test did: the database's teardown connects to it


def armed(registry: Registry, outage: Outage, digest: str, lasting: float | None) -> None:
    driver = registry.storage
    assert isinstance(driver, FailsAfterDeleting)
    driver.outage, driver.target, driver.lasting = (
        outage,
        paths.blob_dir(Digest.parse(digest)),
        lasting,
    )


async def failing_collection(registry: Registry, retry_for: float) -> Collector:
    """A collection that fails with the outage; the collector, for its report so far."""
    await age_everything(registry)
    collector = collector_of(registry, retry_for=retry_for)
    with pytest.raises(DBAPIError):
        await collector.run()
    return collector


async def present_rows(registry: Registry) -> set[str]:
    query = select(t.blobs.c.digest).where(t.blobs.c.missing_at.is_(None))
    async with registry.metadata.engine.connect() as connection:
        return set((await connection.execute(query)).scalars())


async def every_present_row_has_its_bytes(registry: Registry) -> None:
    for digest in await present_rows(registry):
        assert await stored(registry, digest), digest


async def push_tagged(client: Client, name: str, tag: str, blobs: list[bytes]) -> bytes:
    """An image of ``blobs`` (the first its config), every blob pushed as clients do:
    ``HEAD`` first, uploaded only if unknown. Returns the manifest."""
    for blob in blobs:
        head = await client.head(f"/v2/{name}/blobs/{digest_of(blob)}")
        assert head.status in (200, 404)
        if head.status == 404:
            await push_blob(client, name, blob)
    manifest = image_manifest(blobs[0], blobs[1:])
    await put_manifest(client, name, tag, manifest, OCI_MANIFEST)
    return manifest


async def pulls_back(
    client: Client, name: str, tag: str, manifest: bytes, blobs: list[bytes]
) -> None:
    response = await client.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    assert response.status == 200 and await response.read() == manifest
    for blob in blobs:
        response = await client.get(f"/v2/{name}/blobs/{digest_of(blob)}")
        assert response.status == 200 and await response.read() == blob


async def test_a_commit_that_fails_after_the_bytes_went_leaves_no_row_serving_them(
    client: Client, registry: Registry, outage: PostgresOutage | SqliteOutage
) -> None:
    # The database is back within a second: the marks are tried again until then.
    await rows_of_deleted_bytes_not_served(client, registry, outage, lasting=1.0)


@pytest.mark.parametrize("database", ["postgresql"])
async def test_the_collectors_session_terminated_mid_batch(
    client: Client,
    registry: Registry,
    outage: PostgresOutage | SqliteOutage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the collector's session ends; another holds one of the rows for a second (as
    a push would): the recovery marks the others, then that one once it is released."""
    assert isinstance(outage, PostgresOutage)
    outage.refuses, outage.holds = False, True

    with caplog.at_level(logging.WARNING, logger="dockyard.gc"):
        await rows_of_deleted_bytes_not_served(client, registry, outage, lasting=None)

    assert outage.terminated == 1
    assert any("held by another transaction" in r.getMessage() for r in caplog.records)


async def rows_of_deleted_bytes_not_served(
    client: Client, registry: Registry, outage: Outage, lasting: float | None
) -> None:
    """A batch of strays fails after their bytes went; afterwards the registry answers 404
    for each, a push of one of them with a manifest pulls back, and what was kept serves."""
    kept = [*config_and_layers()[1], os.urandom(700)]
    kept_manifest = await push_tagged(client, "app", "v1", [b"{}", *kept])
    strays = [os.urandom(300 + i) for i in range(6)]
    stray_digests = [await push_blob(client, "app", blob) for blob in strays]
    armed(registry, outage, stray_digests[0], lasting)
    spared = stray_digests[2]
    gone = [d for d in stray_digests if d != spared]
    driver = registry.storage
    assert isinstance(driver, FailsAfterDeleting)
    driver.spared = paths.blob_dir(Digest.parse(spared))
    if isinstance(outage, PostgresOutage):
        outage.holding = stray_digests[-1]

    collector = await failing_collection(registry, retry_for=10.0)

    assert collector.report.problems == []
    for digest in gone:
        assert not await stored(registry, digest)
        assert (await client.head(f"/v2/app/blobs/{digest}")).status == 404
        assert (await client.get(f"/v2/app/blobs/{digest}")).status == 404
    # The bytes a look still finds keep serving; the next run reviews them again.
    response = await client.get(f"/v2/app/blobs/{spared}")
    assert response.status == 200 and await response.read() == strays[2]
    await every_present_row_has_its_bytes(registry)
    await pulls_back(client, "app", "v1", kept_manifest, [b"{}", *kept])

    # A client pushes one of them again, with a manifest that references it.
    again = await push_tagged(client, "app", "v2", [b"{}", strays[0]])
    await pulls_back(client, "app", "v2", again, [b"{}", strays[0]])

    # The next collection deletes the marked rows it reviews again, and the spared one.
    driver.spared = ""
    report = await collect(registry)
    assert {r.digest for r in report.blobs} == set(stray_digests[1:])
    assert not await stored(registry, spared)
    assert await registry.metadata.missing_blob_count() == 0
    await every_present_row_has_its_bytes(registry)
    await pulls_back(client, "app", "v1", kept_manifest, [b"{}", *kept])
    await pulls_back(client, "app", "v2", again, [b"{}", strays[0]])


async def test_marks_that_cannot_be_written_are_named_for_fsck(
    client: Client,
    registry: Registry,
    outage: PostgresOutage | SqliteOutage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    strays = [await push_blob(client, "app", os.urandom(400 + i)) for i in range(3)]
    armed(registry, outage, strays[0], lasting=None)  # not back before the retries end

    with caplog.at_level(logging.ERROR, logger="dockyard.gc"):
        collector = await failing_collection(registry, retry_for=0.6)

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "dockyard fsck --repair" in errors[0]
    assert all(digest in errors[0] for digest in strays)
    assert len(collector.report.problems) == 1
    assert all(digest in collector.report.problems[0] for digest in strays)

    # Back again: the rows are still served until the operator runs what the error says.
    await outage.end()
    assert (await client.head(f"/v2/app/blobs/{strays[0]}")).status == 200
    fsck = await check_store(registry.metadata, registry.storage, repair=True)
    assert {f.subject for f in fsck.findings if f.kind == "missing-bytes"} == set(strays)
    for digest in strays:
        assert (await client.head(f"/v2/app/blobs/{digest}")).status == 404
    await every_present_row_has_its_bytes(registry)


async def test_deleted_manifest_bytes_are_marked_when_their_batch_fails(
    client: Client, registry: Registry, outage: PostgresOutage | SqliteOutage
) -> None:
    config, layers = config_and_layers()
    blobs = [config, *layers]
    manifest = await push_tagged(client, "app", "v1", blobs)
    digest = digest_of(manifest)
    assert (await client.delete(f"/v2/app/manifests/{digest}")).status == 202
    armed(registry, outage, digest, lasting=1.0)

    collector = await failing_collection(registry, retry_for=10.0)

    assert collector.report.problems == []
    assert not await stored(registry, digest)
    query = select(t.gc_manifest_bytes.c.deleted_at).where(t.gc_manifest_bytes.c.digest == digest)
    async with registry.metadata.engine.connect() as connection:
        assert (await connection.execute(query)).scalar_one() is not None
    # The same image pushed again: its manifest bytes are at their blob path again.
    assert await push_tagged(client, "app", "v1", blobs) == manifest
    assert await stored(registry, digest)
    await pulls_back(client, "app", "v1", manifest, blobs)
    fsck = await check_store(registry.metadata, registry.storage)
    assert [f for f in fsck.findings if f.kind in ("missing-bytes", "manifest-bytes")] == []


@pytest.mark.parametrize("database", ["postgresql"])
async def test_a_manifest_pushed_beside_the_failed_batch_gets_its_bytes_back(
    client: Client, registry: Registry, outage: PostgresOutage | SqliteOutage
) -> None:
    """A push of a deleted manifest writes its bytes, then waits for the batch that is
    deleting them; the batch fails, and the push commits, reading no mark: the recovery
    finds the manifest row and writes its bytes again from the database."""
    assert isinstance(outage, PostgresOutage)
    outage.refuses = False
    config, layers = config_and_layers()
    manifest = await push_tagged(client, "app", "v1", [config, *layers])
    # Another manifest keeps the blobs, so that the first can be pushed again.
    other = image_manifest(config, layers, annotations={"other": "yes"})
    await put_manifest(client, "app", "other", other, OCI_MANIFEST)
    digest = digest_of(manifest)
    assert (await client.delete(f"/v2/app/manifests/{digest}")).status == 202
    pushes: list[asyncio.Task[str]] = []

    async def push_meanwhile() -> None:
        push = put_manifest(client, "app", "v1", manifest, OCI_MANIFEST)
        pushes.append(asyncio.create_task(push))
        await outage.lock_waited_for()

    driver = registry.storage
    assert isinstance(driver, FailsAfterDeleting)
    driver.first = push_meanwhile
    armed(registry, outage, digest, lasting=None)

    collector = await failing_collection(registry, retry_for=10.0)

    assert outage.terminated == 1
    assert await pushes[0] == digest
    assert collector.report.problems == []
    assert await stored(registry, digest)
    await pulls_back(client, "app", "v1", manifest, [config, *layers])
    fsck = await check_store(registry.metadata, registry.storage)
    assert fsck.findings == []
