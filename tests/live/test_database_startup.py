"""``dockyard serve`` and the schema of its database: on PostgreSQL it refuses a schema
older than the code (one line naming ``dockyard db migrate``) unless ``database.migrate:
onstart``; on SQLite it migrates on start unless ``database.migrate: never``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dockyard.database import shown_url
from dockyard.metadata.engine import create_engine, current_revision
from tests.databases import fresh_database, schema_at
from tests.e2e.server import RegistryServer, free_port, write_config
from tests.live.test_serve_startup import assert_one_line, serve
from tests.metadata.test_migrations import HEAD

ADVICE = "run `dockyard db migrate CONFIG` first (or set database.migrate: onstart)"


@pytest.fixture
async def empty_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A PostgreSQL database without any table."""
    async with fresh_database("postgresql", request, migrated=False) as url:
        yield url


def configured(tmp_path: Path, url: str, migrate: str | None = None) -> RegistryServer:
    server = RegistryServer("dockyard", tmp_path)
    setting = f"  migrate: {migrate}\n" if migrate else ""
    write_config(
        server.config, store=server.store, port=server.port,
        extra=f"database:\n  url: {url}\n{setting}",
    )  # fmt: skip
    return server


async def revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


async def test_no_schema_is_refused_with_the_command_to_run(tmp_path: Path, empty_url: str) -> None:
    server = configured(tmp_path, empty_url)
    expected = f"Error: database: {shown_url(empty_url)} has no schema yet, this Dockyard"
    assert_one_line(serve(server.config), f"{expected} needs revision {HEAD}: {ADVICE}")
    assert await revision(empty_url) is None


async def test_an_older_schema_is_refused(tmp_path: Path, empty_url: str) -> None:
    await schema_at(empty_url, "0002")
    server = configured(tmp_path, empty_url, migrate="never")
    expected = f"Error: database: {shown_url(empty_url)} is at 0002, this Dockyard needs"
    assert_one_line(serve(server.config), f"{expected} revision {HEAD}: {ADVICE}")
    assert await revision(empty_url) == "0002"


@pytest.mark.parametrize("start", ["0002", None])
async def test_migrate_onstart_migrates_then_serves(
    tmp_path: Path, empty_url: str, start: str | None
) -> None:
    if start is not None:
        await schema_at(empty_url, start)
    server = configured(tmp_path, empty_url, migrate="onstart")
    server.start()
    try:
        digest = server.push_blob("team/app", b"layer bytes")
        assert server.get_blob("team/app", digest).body == b"layer bytes"
        assert server.request("GET", "/v2/_catalog").json() == {"repositories": ["team/app"]}
    finally:
        server.stop()
    done = "created at revision" if start is None else f"migrated from revision {start} to"
    assert f"schema {done} {HEAD}" in server.log_text()
    assert await revision(empty_url) == HEAD
    # No http.secret on PostgreSQL: replicas would count failed logins apart; it says so.
    assert "WARNING dockyard: http.secret is not set: generated a random one" in server.log_text()


async def test_a_schema_from_a_newer_version_is_refused_even_onstart(
    tmp_path: Path, empty_url: str
) -> None:
    await schema_at(empty_url, "newer")
    server = configured(tmp_path, empty_url, migrate="onstart")
    result = serve(server.config)
    assert_one_line(
        result,
        f"Error: database: the schema of {shown_url(empty_url)} is at revision 9999, which "
        f"this Dockyard (revision {HEAD}) does not know: a newer version migrated it; "
        "run that version",
    )


def test_sqlite_with_migrate_never_refuses_a_fresh_store(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yml", store=tmp_path / "store", port=free_port(),
        extra="database:\n  migrate: never\n",
    )  # fmt: skip
    result = serve(config)
    assert result.returncode == 1
    assert "has no schema yet" in result.stdout and ADVICE in result.stdout
    assert not (tmp_path / "store" / "dockyard.db").exists()


async def test_a_migration_that_fails_stops_serve_with_one_line(tmp_path: Path) -> None:
    """The migration runs in a child process (Alembic stays out of the parent); what
    stops it still reaches the operator as one line, and the schema is left as it was."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    await schema_at(url, "0005")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection, connection.begin():
            # What revision 0006 creates, already there: its migration cannot run.
            await connection.execute(text("CREATE TABLE notification_outbox (id INTEGER)"))
    finally:
        await engine.dispose()
    result = serve(configured(tmp_path, url).config)
    assert "Traceback" not in result.stdout, result.stdout
    lines = [line for line in result.stdout.splitlines() if "WARNING" not in line]
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith(f"Error: database: cannot use {shown_url(url)}: "), lines[0]
    assert "already exists" in lines[0]
    assert result.returncode == 1
    assert await revision(url) == "0005"
