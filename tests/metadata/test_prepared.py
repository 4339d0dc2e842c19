"""Prepared statements run on the SQLite driver directly: the same rows, values, stored
formats and errors as through SQLAlchemy."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from dockyard.metadata import schema as t
from dockyard.metadata.engine import InlineEngine, create_engine, migrate, prepared


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[InlineEngine]:
    database = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert isinstance(database, InlineEngine)
    await migrate(database)
    yield database
    await database.dispose()


INSERT = t.uploads.insert()
SELECT = select(t.uploads).where(t.uploads.c.repository == bindparam("repository"))


async def test_prepared_and_plain_statements_agree(engine: InlineEngine, tmp_path: Path) -> None:
    moment = datetime(2026, 11, 28, 3, 4, 5, 678901, tzinfo=UTC)
    writer = engine.writer()
    async with writer.begin():
        plain = await writer.execute(INSERT, {"id": "a", "repository": "r", "started_at": moment})
        fast = await writer.execute(
            prepared(INSERT),
            {"id": "b", "repository": "r", "started_at": moment, "hash_state": b"\x00\xff"},
        )
        assert plain.rowcount == fast.rowcount == 1
    reader = engine.reader()
    expected = (await reader.execute(SELECT, {"repository": "r"})).all()
    got = (await reader.execute(prepared(SELECT), {"repository": "r"})).all()
    assert [tuple(row) for row in got] == [tuple(row) for row in expected]
    assert got[1].started_at == expected[1].started_at == moment.replace(tzinfo=None)
    assert got[1].hash_state == b"\x00\xff"
    stored = sqlite3.connect(tmp_path / "db.sqlite").execute("SELECT started_at FROM uploads")
    assert {value for (value,) in stored} == {"2026-11-28 03:04:05.678901"}

    query = prepared(select(t.uploads.c.id).where(t.uploads.c.id == bindparam("id")))
    assert (await reader.execute(query, {"id": "b"})).scalar_one_or_none() == "b"
    assert (await reader.execute(query, {"id": "z"})).scalar_one_or_none() is None


async def test_prepared_errors_are_sqlalchemy_errors(engine: InlineEngine) -> None:
    writer = engine.writer()
    row = {"id": "a", "repository": "r", "started_at": datetime.now(UTC)}
    async with writer.begin():
        await writer.execute(prepared(INSERT), row)
    with pytest.raises(IntegrityError):
        async with writer.begin():
            await writer.execute(prepared(INSERT), [row, row])
    count = (await engine.reader().execute(prepared(SELECT), {"repository": "r"})).all()
    assert len(count) == 1


async def test_a_write_with_both_kinds_of_statement_is_one_transaction(
    engine: InlineEngine,
) -> None:
    """The writer's transaction is the driver's: a statement through SQLAlchemy joins it,
    and commits or rolls back with the prepared ones."""
    writer = engine.writer()
    moment = datetime.now(UTC)
    with pytest.raises(RuntimeError):
        async with writer.begin():
            await writer.execute(
                prepared(INSERT), {"id": "a", "repository": "r", "started_at": moment}
            )
            await writer.execute(INSERT, {"id": "b", "repository": "r", "started_at": moment})
            raise RuntimeError("the caller failed")
    reader = engine.reader()
    assert (await reader.execute(prepared(SELECT), {"repository": "r"})).all() == []
    for turn in range(2):  # and the connection is ready for the next transaction
        async with writer.begin():
            row = {"repository": "r", "started_at": moment}
            await writer.execute(INSERT, {"id": f"c{turn}", **row})
            await writer.execute(prepared(INSERT), {"id": f"d{turn}", **row})
    rows = (await reader.execute(prepared(SELECT), {"repository": "r"})).all()
    assert sorted(row.id for row in rows) == ["c0", "c1", "d0", "d1"]
    assert not writer.sync_connection.in_transaction()
