"""The Alembic migrations build exactly the tables of ``dockyard.metadata.schema``, on
SQLite (a file, in memory) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Integer, MetaData, inspect, text

from dockyard.metadata import schema
from dockyard.metadata.engine import (
    MIGRATIONS,
    WRITE,
    Database,
    Migration,
    code_revision,
    create_engine,
    current_revision,
    known_revision,
    migrate,
)
from tests.databases import fresh_database, move_schema

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


@pytest.fixture(params=["sqlite", "sqlite-memory", "postgresql"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """An engine on a database without any table."""
    if request.param == "sqlite-memory":
        database = create_engine("sqlite://")
        yield database
        await database.dispose()
        return
    async with fresh_database(request.param, request, migrated=False) as url:
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
                # PostgreSQL also reports a unique constraint's index as an index.
                if not index.get("duplicates_constraint")
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
    await move_schema(engine, "downgrade", "base")
    assert await current_revision(engine) is None
    tables = await run(engine, lambda c: inspect(c).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await migrate(engine)
    assert await current_revision(engine) == HEAD
    assert await run(engine, differences) == []


async def test_migrate_reports_the_revisions_it_found_and_left(engine: Database) -> None:
    await move_schema(engine, "upgrade", "0002")
    assert await migrate(engine) == Migration("0002", HEAD)
    assert await migrate(engine) == Migration(HEAD, HEAD)
    await move_schema(engine, "downgrade", "base")
    assert await migrate(engine) == Migration(None, HEAD)
    assert code_revision() == HEAD
    assert known_revision("0001") and not known_revision("9999")


async def test_uploads_in_progress_keep_their_size_across_0005(engine: Database) -> None:
    """Before 0005 an upload's size was its data file's; each chunk saved the hash state at
    that size, so the row's hash offset is what the upload holds."""
    await move_schema(engine, "upgrade", "0004")
    async with engine.connect() as connection:
        connection = await connection.execution_options(**WRITE)
        async with connection.begin():
            for upload_id, offset in (("hashed", 7340032), ("fresh", None)):
                await connection.execute(
                    text(
                        "INSERT INTO uploads (id, repository, started_at, hash_offset) "
                        "VALUES (:id, 'app', '2024-01-01', :offset)"
                    ),
                    {"id": upload_id, "offset": offset},
                )
    await migrate(engine)
    async with engine.connect() as connection:
        query = text("SELECT id, size, driver_state FROM uploads ORDER BY id")
        rows = (await connection.execute(query)).all()
    assert [tuple(row) for row in rows] == [("fresh", 0, None), ("hashed", 7340032, None)]


def test_revisions_read_as_text_agree_with_alembic() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert code_revision() == HEAD
    every = [script.revision for script in scripts.walk_revisions()]
    assert all(known_revision(revision) for revision in every)
    assert not known_revision("ffffffff")


async def test_0010_queues_the_blobs_of_an_existing_store_that_nothing_references(
    engine: Database,
) -> None:
    """The collector reads only the review queue: the blobs an older schema holds
    unreferenced must be in it after the upgrade, the referenced ones not."""
    await move_schema(engine, "upgrade", "0008")
    statements = (
        "INSERT INTO repositories (id, name, created_at) VALUES (1, 'app', '2024-01-01')",
        "INSERT INTO blobs (digest, size, created_at) VALUES "
        "('sha256:aa', 1, '2024-01-01'), ('sha256:bb', 1, '2024-01-01')",
        "INSERT INTO manifests (id, repository_id, digest, media_type, size, payload, "
        "created_at) VALUES (1, 1, 'sha256:cc', 'm', 1, :payload, '2024-01-01')",
        "INSERT INTO manifest_references (manifest_id, digest, kind) VALUES "
        "(1, 'sha256:aa', 'blob')",
    )
    async with engine.connect() as connection:
        connection = await connection.execution_options(**WRITE)
        async with connection.begin():
            for statement in statements:
                await connection.execute(text(statement), {"payload": b"{}"})
    await migrate(engine)
    async with engine.connect() as connection:
        queued = (await connection.execute(text("SELECT digest FROM gc_blob_reviews"))).all()
    assert [tuple(row) for row in queued] == [("sha256:bb",)]
