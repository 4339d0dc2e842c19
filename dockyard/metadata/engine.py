"""Database engines for SQLite (embedded default) and PostgreSQL, and their migrations.

SQLite runs *inline*: its statements execute on the calling (event-loop) thread through
SQLAlchemy's synchronous engine. A typical query takes tens of microseconds there, while a
hop to aiosqlite's thread and back costs hundreds, and under load milliseconds (measured:
docs/performance.md). Transactions never span an await that suspends, so one process's
transactions never interleave. SQLite runs in WAL mode, and write transactions start with
``BEGIN IMMEDIATE`` so that writers in several worker processes queue for the write lock
instead of failing on a lock upgrade; the store's writer waits for that lock without
blocking the event loop (:class:`InlineConnection`).

PostgreSQL runs through SQLAlchemy's asyncio engine (asyncpg). Both kinds of engine offer
the same ``connect()`` → ``execute()`` surface to :mod:`dockyard.metadata.store`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, CursorResult, Dialect, Executable, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# How the store's writer polls for a write lock another process holds (seconds).
LOCK_POLL_FIRST = 0.0002
LOCK_POLL_MAX = 0.005
# Execution option that makes a SQLite transaction take the write lock at BEGIN.
WRITE = {"dockyard_write": True}
T = TypeVar("T")


class InlineConnection:
    """A synchronous SQLAlchemy connection with the awaitable surface of AsyncConnection.

    With ``wait_async``, a transaction that finds the write lock taken by another process
    waits for it with ``asyncio.sleep`` (SQLite's own busy handler sleeps on the event loop
    thread, stalling every other request of the worker meanwhile); the connection's busy
    timeout must then be 0."""

    def __init__(self, connection: Connection, wait_async: bool = False) -> None:
        self.sync_connection = connection
        self._wait_async = wait_async

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self.sync_connection.execute(statement, parameters)

    async def execution_options(self, **options: Any) -> InlineConnection:
        self.sync_connection = self.sync_connection.execution_options(**options)
        return self

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        if not self._wait_async:
            with self.sync_connection.begin():
                yield
            return
        delay, waited = LOCK_POLL_FIRST, 0.0
        while True:
            try:
                transaction = self.sync_connection.begin()
                break
            except OperationalError as exc:
                if not _is_busy(exc) or waited >= BUSY_TIMEOUT_MS / 1000:
                    raise
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, LOCK_POLL_MAX)
        with transaction:
            yield

    async def commit(self) -> None:
        self.sync_connection.commit()

    async def run_sync(self, function: Callable[[Connection], T]) -> T:
        return function(self.sync_connection)

    def driver_rows(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        """Rows straight from the DB-API cursor, for bulk reads: SQLAlchemy's row
        processing costs about 1.5 µs a row, three times the query itself."""
        driver = self.sync_connection.connection.driver_connection
        assert driver is not None
        return list(driver.execute(sql, parameters).fetchall())


class InlineEngine:
    """An engine whose connections execute on the calling thread (used for SQLite).

    Besides pooled connections (``connect()``), it keeps one reader in autocommit mode and
    one writer for :mod:`dockyard.metadata.store`, whose blocks never suspend while they hold
    them: a read then costs one statement, with no pool checkout, BEGIN or ROLLBACK.
    """

    def __init__(self, engine: Engine) -> None:
        self.sync_engine = engine
        self._reader: InlineConnection | None = None
        self._writer: InlineConnection | None = None

    def reader(self) -> InlineConnection:
        if self._reader is None:
            connection = self.sync_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._reader = InlineConnection(connection)
        return self._reader

    def writer(self) -> InlineConnection:
        if self._writer is None:
            connection = self.sync_engine.connect().execution_options(**WRITE)
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")  # waits in InlineConnection.begin
            self._writer = InlineConnection(connection, wait_async=True)
        return self._writer

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[InlineConnection]:
        with self.sync_engine.connect() as connection:
            yield InlineConnection(connection)

    async def dispose(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.sync_connection.close()
        self._reader = self._writer = None
        self.sync_engine.dispose()


def _is_busy(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error.orig)


Database = AsyncEngine | InlineEngine
DbConnection = AsyncConnection | InlineConnection


def create_engine(url: str) -> Database:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if not in_memory and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    }
    if in_memory:
        kwargs["poolclass"] = StaticPool
    engine = create_sync_engine(parsed.set(drivername="sqlite+pysqlite"), **kwargs)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver; "begin" below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # each statement is its own transaction
        write = options.get("dockyard_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return InlineEngine(engine)


def _alembic_config(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: Database) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(**WRITE)
        await connection.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))
        await connection.commit()


async def current_revision(engine: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
