"""``dockyard db migrate`` and ``dockyard db status`` as an operator runs them (real
subprocesses), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from asyncio.subprocess import PIPE, Process
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from dockyard.database import shown_url
from dockyard.metadata.engine import MIGRATION_LOCK, create_engine
from tests.databases import fresh_database, schema_at
from tests.e2e.server import REPO_ROOT, free_port
from tests.metadata.test_migrations import HEAD, differences, run
from tests.test_cli import clean_environment, dockyard


def write_config(path: Path, url: str | None, storage: str = "filesystem") -> Path:
    driver = "inmemory: {}"
    if storage == "filesystem":
        driver = f"filesystem: {{rootdirectory: {path.parent / 'store'}}}"
    database = f"database:\n  url: {url}\n" if url else ""
    path.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  {driver}\n{database}")
    return path


@pytest.fixture
async def empty_url(database: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A database without any table (SQLite: no file yet)."""
    async with fresh_database(database, request, migrated=False) as url:
        yield url


@pytest.fixture
def config(tmp_path: Path, empty_url: str) -> Path:
    return write_config(tmp_path / "config.yml", empty_url)


def db(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return dockyard("db", *map(str, args), env=clean_environment(), cwd=REPO_ROOT)


async def assert_schema_is_the_code(url: str) -> None:
    engine = create_engine(url)
    try:
        assert await run(engine, differences) == []
    finally:
        await engine.dispose()


async def test_migrate_creates_the_schema_then_finds_nothing_to_do(
    config: Path, empty_url: str
) -> None:
    shown = shown_url(empty_url)
    status = db("status", config)
    assert status.returncode == 1, status.stderr
    assert status.stdout.splitlines() == [
        f"database: {shown}",
        "schema revision: none (no schema yet)",
        f"code revision: {HEAD}",
        "state: behind the code: run `dockyard db migrate CONFIG`",
    ]
    first = db("migrate", config)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"database {shown}: schema created at revision {HEAD}\n"
    second = db("migrate", config)
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"database {shown}: schema already at revision {HEAD}, nothing to do\n"
    status = db("status", config)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[1:] == [
        f"schema revision: {HEAD}",
        f"code revision: {HEAD}",
        "state: up to date",
    ]
    await assert_schema_is_the_code(empty_url)


async def test_migrate_an_older_schema(config: Path, empty_url: str) -> None:
    await schema_at(empty_url, "0002")
    assert "schema revision: 0002" in db("status", config).stdout
    done = db("migrate", config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"schema migrated from revision 0002 to {HEAD}\n")
    await assert_schema_is_the_code(empty_url)


async def test_a_schema_from_a_newer_version_is_left_alone(config: Path, empty_url: str) -> None:
    await schema_at(empty_url, "newer")
    status = db("status", config)
    assert status.returncode == 1
    assert "state: newer than this Dockyard: a newer version migrated it" in status.stdout
    refused = db("migrate", config)
    assert refused.returncode == 1
    assert "is at revision 9999, which this Dockyard" in refused.stderr
    assert "Traceback" not in refused.stderr


async def start_migrations(config: Path, count: int = 2) -> list[Process]:
    """``dockyard db migrate CONFIG`` in ``count`` processes at once, as on several hosts."""
    return [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dockyard", "db", "migrate", str(config),
            stdout=PIPE, stderr=PIPE, env=clean_environment(), cwd=REPO_ROOT,
        )
        for _ in range(count)
    ]  # fmt: skip


async def assert_one_created_the_schema(processes: list[Process]) -> None:
    """Every process succeeded; exactly one created the schema, the others found it."""
    outputs = [await asyncio.wait_for(p.communicate(), timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * len(processes), outputs
    said = sorted(out.decode().split(": schema ")[1] for out, _ in outputs)
    nothing = f"already at revision {HEAD}, nothing to do\n"
    assert said == [nothing] * (len(processes) - 1) + [f"created at revision {HEAD}\n"]


@pytest.mark.parametrize("database", ["postgresql"])
async def test_migrations_started_together_take_turns(config: Path, empty_url: str) -> None:
    """Two hosts migrating at once: while the test holds the migration lock, both wait
    for it; released, one creates the schema and the other finds nothing to do."""
    url = make_url(empty_url)
    holder = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    processes: list[Process] = []
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        processes = await start_migrations(config)
        waiting = 0
        for _ in range(3000):  # a guard against hanging, not a timing check
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting == 2 or any(p.returncode is not None for p in processes):
                break
            await asyncio.sleep(0.01)
        assert waiting == 2, "both migrations wait for the lock"
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await assert_one_created_the_schema(processes)
    finally:
        await holder.close()
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    await assert_schema_is_the_code(empty_url)


@pytest.mark.parametrize("database", ["sqlite"])
async def test_sqlite_migrations_started_together_take_turns(config: Path, empty_url: str) -> None:
    """SQLite's write lock makes them take turns."""
    await assert_one_created_the_schema(await start_migrations(config))
    await assert_schema_is_the_code(empty_url)


def test_an_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://dockyard:secret@127.0.0.1:{free_port()}/registry"
    config = write_config(tmp_path / "config.yml", url)
    for command in ("status", "migrate"):
        result = db(command, config)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr and "secret" not in result.stderr
        assert "cannot use postgresql://dockyard:***@127.0.0.1:" in result.stderr, result.stderr


def test_an_in_memory_database_has_nothing_to_migrate(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", None, storage="inmemory")
    result = db("migrate", config)
    assert result.returncode == 1
    assert "in memory (inmemory storage without database.url)" in result.stderr


def test_status_creates_no_sqlite_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", None)
    result = db("status", config)
    assert result.returncode == 1
    assert "schema revision: none (no schema yet)" in result.stdout
    assert not (tmp_path / "store").exists()
