"""``dockyard_database_query_duration_seconds{statement}`` on both databases: ordinary
and prepared statements, and SQLite's BEGIN, each counted once under its name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import column, select, table, text

from dockyard.metadata.engine import InlineEngine, create_engine, prepared, time_statements
from dockyard.observability import batch
from dockyard.observability.database_metrics import instrument
from tests.databases import DATABASES, fresh_database

FAMILY = "dockyard_database_query_duration_seconds_count"
TAGS = table("tags", column("name"))


def counted(statement: str) -> float:
    return REGISTRY.get_sample_value(FAMILY, {"statement": statement}) or 0.0


@pytest.fixture
def untimed_afterwards() -> Iterator[None]:
    yield
    time_statements(None)


@pytest.mark.parametrize("database", DATABASES)
async def test_each_statement_is_counted_once_by_name(
    database: str, request: pytest.FixtureRequest, untimed_afterwards: None
) -> None:
    async with fresh_database(database, request) as url:
        engine = create_engine(url)
        instrument(engine)
        instrument(engine)  # idempotent: still counted once
        before = {name: counted(name) for name in ("select_tags", "select_manifests", "begin")}
        try:
            if isinstance(engine, InlineEngine):
                reader, writer = engine.reader(), engine.writer()
                await reader.execute(text("SELECT count(*) FROM tags"))
                by_name = prepared(select(TAGS.c.name).where(TAGS.c.name == "x"))
                await reader.execute(by_name, {})
                async with writer.begin():
                    await writer.execute(text("SELECT count(*) FROM manifests"))
            else:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT count(*) FROM tags"))
                    await connection.execute(select(TAGS.c.name).where(TAGS.c.name == "x"))
                    await connection.execute(text("SELECT count(*) FROM manifests"))
        finally:
            await engine.dispose()
        batch.flush()
        assert counted("select_tags") == before["select_tags"] + 2
        assert counted("select_manifests") == before["select_manifests"] + 1
        if database == "sqlite":  # BEGIN IMMEDIATE, issued by the engine itself
            assert counted("begin") == before["begin"] + 1
