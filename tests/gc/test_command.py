"""``dockyard garbage-collect`` as an operator runs it, and the scheduled collection of
``serve``: the lease that keeps collectors one at a time, the jobs that run before each
collection, and the observers of its report."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from dockyard.gc.report import GcReport
from dockyard.gc.schedule import LEASE, ScheduledCollection
from dockyard.metadata.leases import Leases
from dockyard.registry.service import Registry
from tests.api.helpers import Client, push_blob, push_image
from tests.e2e.server import REPO_ROOT
from tests.gc.test_collector import age_everything, stored


def garbage_collect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "garbage-collect", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_inmemory_storage_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage: inmemory\n")
    done = garbage_collect(str(config))
    assert done.returncode == 1
    assert "lives in the serving process: nothing to collect" in done.stderr


def test_dry_run_then_collect_prints_items_and_summary(tmp_path: Path) -> None:
    root = tmp_path / "store"
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
        "gc:\n  reviewafter: 0s\n"
    )

    async def fill() -> None:
        from aiohttp.test_utils import TestClient, TestServer

        from dockyard.app import make_web_app, open_registry
        from dockyard.config import load_config

        loaded = load_config(config).config
        registry = await open_registry(loaded, migrate_first=True)
        async with TestClient(TestServer(make_web_app(loaded, registry, False))) as client:
            await push_image(client, "app", "v1")
            await push_blob(client, "app", b"nothing references me")
        await registry.close()

    asyncio.run(fill())
    before = {p.parent.name for p in root.rglob("data") if "blobs" in p.parts}

    dry = garbage_collect("--dry-run", str(config))
    assert dry.returncode == 0, dry.stderr
    assert "would delete blob sha256:" in dry.stdout
    assert "Dry run: nothing was changed. Would remove 0 manifests and 1 blob" in dry.stdout
    assert {p.parent.name for p in root.rglob("data") if "blobs" in p.parts} == before

    done = garbage_collect("-q", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Removed 0 manifests and 1 blob; freed 21 B in ")
    assert "deleted blob" not in done.stdout  # --quiet: the summary only
    assert len(before) - len({p.parent.name for p in root.rglob("data")}) == 1


def scheduled(registry: Registry) -> ScheduledCollection:
    return ScheduledCollection(
        registry.metadata,
        registry.storage,
        Leases(registry.metadata.engine),
        interval=timedelta(hours=1),
        review_after=timedelta(minutes=1),
    )


async def test_scheduled_round_runs_its_jobs_first_and_tells_its_observers(
    client: Client, registry: Registry
) -> None:
    stray = await push_blob(client, "app", b"stray")
    await age_everything(registry)
    order: list[str] = []
    reports: list[GcReport] = []

    async def retention() -> None:
        order.append("retention")
        assert await stored(registry, stray)  # before the collection

    job = scheduled(registry)
    job.before.append(retention)
    job.observers.append(reports.append)

    report = await job.run_once()

    assert order == ["retention"] and reports == [report]
    assert report is not None and [r.digest for r in report.blobs] == [stray]
    assert report.blobs_removed == 1 and report.bytes_freed == 5


async def test_a_round_is_skipped_while_another_collector_holds_the_lease(
    client: Client, registry: Registry
) -> None:
    await push_blob(client, "app", b"stray")
    await age_everything(registry)
    ran: list[str] = []

    async def job_before() -> None:
        ran.append("before")

    job = scheduled(registry)
    job.before.append(job_before)
    elsewhere = Leases(registry.metadata.engine)
    async with elsewhere.hold(LEASE) as held:
        assert held
        assert await job.run_once() is None
    assert ran == []
    assert await job.run_once() is not None and ran == ["before"]


def test_the_command_loads_no_http_client_and_opens_sqlite_for_bulk_work(tmp_path: Path) -> None:
    """What ``garbage-collect`` imports leaves aiohttp out (about a second of a run on a
    busy machine), and its SQLite connections map the file with a larger page cache."""
    code = (
        "import asyncio, sys\n"
        "import dockyard.cli, dockyard.gc_command\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'aiohttp'], 'aiohttp'\n"
        "from dockyard.metadata.engine import create_engine\n"
        f"engine = create_engine('sqlite:///{tmp_path / 'gc.db'}', bulk=True)\n"
        "reader = engine.reader().sync_connection.connection.driver_connection\n"
        "print(reader.execute('PRAGMA cache_size').fetchone()[0],"
        " reader.execute('PRAGMA mmap_size').fetchone()[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["-65536", "268435456"]
