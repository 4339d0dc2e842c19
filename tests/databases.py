"""The metadata databases the suites run on: a SQLite file, or PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, text

from dockyard.metadata.engine import MIGRATIONS, WRITE, Database, create_engine, migrate
from tests.postgres import PostgresServer

DATABASES = ("sqlite", "postgresql")


@asynccontextmanager
async def fresh_database(
    kind: str, request: pytest.FixtureRequest, migrated: bool = True
) -> AsyncIterator[str]:
    """The URL of a database of the test's own, with the schema at head and no rows, or
    without any table if not ``migrated``: for ``sqlite`` a file in the test's
    ``tmp_path``, for ``postgresql`` a database on the session's server."""
    if kind == "sqlite":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        url = f"sqlite:///{tmp_path / 'dockyard.db'}"
        if migrated:
            engine = create_engine(url)
            await migrate(engine)
            await engine.dispose()
        yield url
        return
    assert kind == "postgresql", kind
    server: PostgresServer = request.getfixturevalue("postgres")
    if not migrated:
        url = await server.create_empty()
        try:
            yield url
        finally:
            await server.drop_database(url)
        return
    url = await server.acquire()
    try:
        yield url
    finally:
        await server.release(url)


async def move_schema(
    engine: Database, direction: Literal["upgrade", "downgrade"], revision: str
) -> None:
    """Upgrade or downgrade the schema to ``revision`` (``base``: no tables), as another
    version of Dockyard would have left it."""

    def move(connection: Connection) -> None:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)

    async with engine.connect() as connection:
        connection = await connection.execution_options(**WRITE)
        await connection.run_sync(move)
        await connection.commit()


async def schema_at(url: str, revision: str) -> None:
    """Leave the database at ``url`` with the schema of ``revision``, which may be one no
    migration of this version knows (a newer Dockyard's)."""
    engine = create_engine(url)
    try:
        if revision == "newer":
            await migrate(engine)
            async with engine.connect() as connection, connection.begin():
                await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        else:
            await move_schema(engine, "upgrade", revision)
    finally:
        await engine.dispose()
