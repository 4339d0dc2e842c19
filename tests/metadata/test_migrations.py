"""The Alembic migrations build exactly the tables of ``dockyard.metadata.schema``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Integer, MetaData, inspect, text

from dockyard.metadata import schema
from dockyard.metadata.engine import (
    MIGRATIONS,
    WRITE,
    Database,
    create_engine,
    current_revision,
    migrate,
)

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


@pytest.fixture(params=["file", "memory"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'metadata.db'}"
        if request.param == "file"
        else "sqlite+aiosqlite://"
    )
    database = create_engine(url)
    yield database
    await database.dispose()


def differences(connection: Connection, metadata: MetaData = schema.metadata) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def run(engine: Database, function: Any) -> Any:
    async with engine.connect() as connection:
        return await connection.run_sync(function)


def test_migrations_have_a_single_head() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert len(scripts.get_heads()) == 1
    assert HEAD is not None


async def test_fresh_database_has_no_revision(engine: Database) -> None:
    assert await current_revision(engine) is None


async def test_migrations_build_exactly_the_schema(engine: Database) -> None:
    await migrate(engine)
    assert await run(engine, differences) == []


async def test_comparison_would_see_a_difference(engine: Database) -> None:
    """The check above is not vacuous: a schema the migrations do not build is reported."""
    await migrate(engine)
    changed = MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["blobs"].append_column(Column("extra", Integer))
    found = await run(engine, lambda connection: differences(connection, changed))
    assert [(d[0], d[3].name) for d in found] == [("add_column", "extra")]


async def test_constraints_and_indexes_match_the_schema(engine: Database) -> None:
    """Names, columns and ON DELETE of keys, which autogenerate does not fully compare."""
    await migrate(engine)

    def reflect(connection: Connection) -> dict[str, Any]:
        inspector = inspect(connection)
        return {
            table: {
                "pk": inspector.get_pk_constraint(table),
                "fks": inspector.get_foreign_keys(table),
                "uniques": inspector.get_unique_constraints(table),
                "indexes": inspector.get_indexes(table),
            }
            for table in inspector.get_table_names()
        }

    found = await run(engine, reflect)
    assert set(found) == set(schema.metadata.tables) | {"alembic_version"}
    for name, table in schema.metadata.tables.items():
        reflected = found[name]
        assert reflected["pk"]["name"] == table.primary_key.name
        assert reflected["pk"]["constrained_columns"] == [c.name for c in table.primary_key]
        expected_fks = sorted(
            (
                fk.name,
                tuple(fk.column_keys),
                fk.referred_table.name,
                tuple(e.column.name for e in fk.elements),
                fk.ondelete,
            )
            for fk in table.foreign_key_constraints
        )
        assert (
            sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    fk["options"].get("ondelete"),
                )
                for fk in reflected["fks"]
            )
            == expected_fks
        ), name
        expected_indexes = sorted(
            (index.name, tuple(c.name for c in index.columns), bool(index.unique))
            for index in table.indexes
        )
        assert (
            sorted(
                (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                for index in reflected["indexes"]
            )
            == expected_indexes
        ), name


async def test_migrate_is_idempotent_and_keeps_data(engine: Database) -> None:
    await migrate(engine)
    assert await current_revision(engine) == HEAD
    async with engine.connect() as connection:
        connection = await connection.execution_options(**WRITE)
        async with connection.begin():
            await connection.execute(
                text("INSERT INTO blobs (digest, size, created_at) VALUES ('d', 1, '2024-01-01')")
            )
    await migrate(engine)
    await migrate(engine)
    assert await current_revision(engine) == HEAD
    assert await run(engine, differences) == []
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT digest, size FROM blobs"))).all()
    assert [tuple(row) for row in rows] == [("d", 1)]


async def test_downgrade_to_base_and_back(engine: Database) -> None:
    await migrate(engine)

    def downgrade(connection: Connection) -> None:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    async with engine.connect() as connection:
        connection = await connection.execution_options(**WRITE)
        await connection.run_sync(downgrade)
        await connection.commit()
    assert await current_revision(engine) is None
    tables = await run(engine, lambda c: inspect(c).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await migrate(engine)
    assert await current_revision(engine) == HEAD
    assert await run(engine, differences) == []
