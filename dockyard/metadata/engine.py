"""Database engines for SQLite (embedded default) and PostgreSQL, and their migrations.

SQLite runs *inline*: its statements execute on the calling (event-loop) thread through
SQLAlchemy's synchronous engine. A typical query takes tens of microseconds there, while a
hop to aiosqlite's thread and back costs hundreds, and under load milliseconds (measured:
docs/performance.md). SQLite runs in WAL mode, and write transactions start with
``BEGIN IMMEDIATE`` so that writers in several worker processes queue for the write lock
instead of failing on a lock upgrade. The store's writer waits for that lock without
blocking the event loop (:class:`InlineConnection`), and the coroutines of one process take
turns on it (:attr:`InlineEngine.write_lock`), so one process's transactions never
interleave even when one of them suspends.

PostgreSQL runs through SQLAlchemy's asyncio engine (asyncpg). Both kinds of engine offer
the same ``connect()`` → ``execute()`` surface to :mod:`dockyard.metadata.store`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

from sqlalchemy import Connection, Dialect, Executable, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound, OperationalError
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Alembic and SQLAlchemy's asyncio layer (with its ORM) are imported only when they are
# used, to migrate and for PostgreSQL: a server that finds its schema current never loads
# them (about 17 MiB of the footprint, docs/performance.md).

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# How the store's writer polls for a write lock another process holds (seconds).
LOCK_POLL_FIRST = 0.0002
LOCK_POLL_MAX = 0.005
# Execution option that makes a SQLite transaction take the write lock at BEGIN.
WRITE = {"dockyard_write": True}
T = TypeVar("T")


PREPARED = "dockyard_prepared"
S = TypeVar("S", bound=Executable)
# Told the SQL and duration of each statement an inline (SQLite) connection runs, prepared
# or not, and of each BEGIN (set by the metrics wiring; None: not timed). Timed here rather
# than with SQLAlchemy's cursor events, which cost several microseconds per statement.
StatementTimer = Callable[[str, float], None]
_statement_timer: StatementTimer | None = None


def time_statements(timer: StatementTimer | None) -> None:
    global _statement_timer
    _statement_timer = timer


def prepared(statement: S) -> S:
    """Mark a statement that is built once and run often: on the store's SQLite
    connections it is compiled once and run on the driver directly (:class:`_Plan`)."""
    return statement.execution_options(**{PREPARED: True})


class _Rows:
    """The part of SQLAlchemy's result interface the store uses, over driver rows."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Any]:
        return self._rows

    fetchall = all

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise MultipleResultsFound("more than one row")
        return self.first()

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise NoResultFound("no row") if not self._rows else MultipleResultsFound("rows")
        return self._rows[0][0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


class _Plan:
    """A prepared statement compiled for SQLite once: its SQL, the order of its
    parameters with SQLAlchemy's own bind processors (times become the strings SQLAlchemy
    stores), and for rows the result processors and a named tuple.

    SQLAlchemy spends about 60 µs around each execution (cache key, execution context,
    result object) of an 8 µs SQLite call; a push runs dozens of statements per image."""

    def __init__(self, statement: Any, dialect: Dialect, keys: list[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = compiled.string
        binds = compiled.binds
        names = tuple(compiled.positiontup or ())
        self.parameters = tuple(
            (
                name,
                binds[name].effective_value,
                _impl(binds[name].type, dialect).bind_processor(dialect),
            )
            for name in names
        )
        self.row: Any = None
        self.results: tuple[Any, ...] = ()
        columns = list(getattr(statement, "exported_columns", ()))
        if columns:
            self.row = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
            self.results = tuple(
                _impl(c.type, dialect).result_processor(dialect, None) for c in columns
            )

    def arguments(self, given: dict[str, Any]) -> tuple[Any, ...]:
        values = []
        for name, default, process in self.parameters:
            value = given.get(name, default)
            values.append(value if process is None or value is None else process(value))
        return tuple(values)

    def run(self, driver: Any, parameters: Any) -> _Rows:
        try:
            if isinstance(parameters, list):
                cursor = driver.executemany(self.sql, [self.arguments(p) for p in parameters])
                return _Rows([], cursor.rowcount)
            cursor = driver.execute(self.sql, self.arguments(parameters or {}))
            if cursor.description is None:  # no rows to return
                return _Rows([], cursor.rowcount)
            make, processors = self.row._make, self.results
            rows = [
                make(_processed(raw, processors)) if any(processors) else make(raw)
                for raw in cursor.fetchall()
            ]
            return _Rows(rows, cursor.rowcount)
        except sqlite3.Error as error:
            raise DBAPIError.instance(self.sql, parameters, error, sqlite3.Error) from error


def _impl(type_: Any, dialect: Dialect) -> Any:
    """The dialect's own implementation of a column type (SQLite's DATETIME stores and
    parses its own string format)."""
    return type_.dialect_impl(dialect)


def _processed(raw: tuple[Any, ...], processors: tuple[Any, ...]) -> list[Any]:
    return [v if f is None or v is None else f(v) for v, f in zip(raw, processors, strict=True)]


class InlineConnection:
    """A synchronous SQLAlchemy connection with the awaitable surface of AsyncConnection.

    With ``wait_async``, a transaction that finds the write lock taken by another process
    waits for it with ``asyncio.sleep`` (SQLite's own busy handler sleeps on the event loop
    thread, stalling every other request of the worker meanwhile); the connection's busy
    timeout must then be 0."""

    def __init__(
        self,
        connection: Connection,
        wait_async: bool = False,
        plans: dict[tuple[int, tuple[str, ...]], tuple[Executable, _Plan]] | None = None,
    ) -> None:
        self.sync_connection = connection
        self._wait_async = wait_async
        # Prepared statements run on the driver only on the store's own connections, whose
        # transactions are always explicit (or which are in autocommit).
        self._plans = plans

    async def execute(self, statement: Executable, parameters: Any = None) -> Any:
        plans = self._plans
        timer = _statement_timer
        if plans is None or not statement.get_execution_options().get(PREPARED):
            if timer is None:
                return self.sync_connection.execute(statement, parameters)
            started = time.perf_counter()
            result = self.sync_connection.execute(statement, parameters)
            timer(result.context.statement, time.perf_counter() - started)
            return result
        first = parameters[0] if isinstance(parameters, list) else parameters or {}
        keys = tuple(sorted(first))
        entry = plans.get((id(statement), keys))
        if entry is None:
            plan = _Plan(statement, self.sync_connection.dialect, list(keys) or None)
            # The statement is kept with its plan, so its id cannot be reused meanwhile.
            entry = plans[(id(statement), keys)] = (statement, plan)
        driver = self.sync_connection.connection.driver_connection
        if timer is None:
            return entry[1].run(driver, parameters)
        started = time.perf_counter()
        try:
            return entry[1].run(driver, parameters)
        finally:
            timer(entry[1].sql, time.perf_counter() - started)

    async def execution_options(self, **options: Any) -> InlineConnection:
        self.sync_connection = self.sync_connection.execution_options(**options)
        return self

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        if not self._wait_async:
            with self.sync_connection.begin():
                yield
            return
        driver = self.sync_connection.connection.driver_connection
        delay, waited = LOCK_POLL_FIRST, 0.0
        while True:
            try:
                _on_driver(driver, "BEGIN IMMEDIATE")
                break
            except OperationalError as exc:
                if not _is_busy(exc) or waited >= BUSY_TIMEOUT_MS / 1000:
                    raise
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, LOCK_POLL_MAX)
        # The transaction is the driver's: prepared statements run on it directly, and a
        # statement through SQLAlchemy joins it (its "begin" event issues no second BEGIN);
        # SQLAlchemy's transaction, if one began so, ends with it.
        try:
            yield
            self._end(driver, "COMMIT")
        except BaseException:
            self._end(driver, "ROLLBACK")
            raise

    def _end(self, driver: Any, sql: str) -> None:
        connection = self.sync_connection
        if connection.in_transaction():
            if sql == "COMMIT":
                connection.commit()
            else:
                connection.rollback()
        if driver.in_transaction:
            _on_driver(driver, sql)

    async def commit(self) -> None:
        self.sync_connection.commit()

    async def run_sync(self, function: Callable[[Connection], T]) -> T:
        return function(self.sync_connection)


class InlineEngine:
    """An engine whose connections execute on the calling thread (used for SQLite).

    Besides pooled connections (``connect()``), it keeps one reader in autocommit mode and
    one writer for :mod:`dockyard.metadata.store`: a read then costs one statement, with no
    pool checkout, BEGIN or ROLLBACK. Reads never suspend; a write transaction holds
    :attr:`write_lock` for as long as it runs.
    """

    def __init__(self, engine: Engine) -> None:
        self.sync_engine = engine
        self._reader: InlineConnection | None = None
        self._writer: InlineConnection | None = None
        # Held for a whole write transaction on the writer: a transaction may wait for the
        # write lock, or for storage (a blob's bytes made visible inside its commit), and
        # another coroutine of this process must not begin on the same connection meanwhile.
        self.write_lock = asyncio.Lock()
        self._plans: dict[tuple[int, tuple[str, ...]], tuple[Executable, _Plan]] = {}

    def reader(self) -> InlineConnection:
        if self._reader is None:
            connection = self.sync_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._reader = InlineConnection(connection, plans=self._plans)
        return self._reader

    def writer(self) -> InlineConnection:
        if self._writer is None:
            connection = self.sync_engine.connect().execution_options(**WRITE)
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")  # waits in InlineConnection.begin
            self._writer = InlineConnection(connection, wait_async=True, plans=self._plans)
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


def _on_driver(driver: Any, sql: str) -> None:
    """Run a transaction statement on the SQLite driver; a refusal is raised as
    SQLAlchemy would have raised it (OperationalError for a lock held elsewhere)."""
    timer = _statement_timer
    started = time.perf_counter()
    try:
        driver.execute(sql)
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, None, error, sqlite3.Error) from error
    finally:
        if timer is not None:
            timer(sql, time.perf_counter() - started)


def _is_busy(error: OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error.orig)


# Union with a string: AsyncEngine is imported lazily, only for PostgreSQL.
Database = Union["AsyncEngine", InlineEngine]
DbConnection = Union["AsyncConnection", InlineConnection]


@dataclass(frozen=True)
class PoolSettings:
    """The connection pool of a PostgreSQL engine (``database.pool``); seconds."""

    size: int = 10
    overflow: int = 20
    timeout: float = 30.0
    recycle: float = 3600.0  # 0: never


#: SQLite settings for a process that reads and rewrites much of the database at once (the
#: ``garbage-collect`` command): the file mapped, so that a page already in the OS's cache
#: costs no read call, and a page cache of its own of 64 MiB instead of 2 MiB, so that the
#: pages a batch touches are still there for its next statement.
BULK_PRAGMAS = ("mmap_size=268435456", "cache_size=-65536")


def create_engine(url: str, pool: PoolSettings | None = None, *, bulk: bool = False) -> Database:
    """The engine of ``url``; ``bulk`` tunes SQLite for a command that touches much of
    the database (:data:`BULK_PRAGMAS`; nothing changes on PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        from sqlalchemy.ext.asyncio import create_async_engine

        pool = pool or PoolSettings()
        return create_async_engine(
            url,
            pool_size=pool.size,
            max_overflow=pool.overflow,
            pool_timeout=pool.timeout,
            pool_recycle=pool.recycle if pool.recycle > 0 else -1,
            pool_pre_ping=True,
        )
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
        # First: switching to WAL needs a lock that another process creating the same
        # database may hold, and without a busy timeout it fails at once.
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        for pragma in BULK_PRAGMAS if bulk else ():
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # each statement is its own transaction
        driver = connection.connection.driver_connection
        if driver.in_transaction:  # type: ignore[union-attr]
            return  # the store's writer began it (InlineConnection.begin)
        sql = "BEGIN IMMEDIATE" if options.get("dockyard_write", False) else "BEGIN"
        # On the driver itself: SQLAlchemy's execution machinery costs more than the BEGIN
        # (docs/performance.md).
        _on_driver(driver, sql)

    return InlineEngine(engine)


def _alembic_config(connection: Connection) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


# The PostgreSQL advisory lock that migrations hold: "dockyard" in ASCII, a key no other
# user of the database is likely to pick.
MIGRATION_LOCK = 0x646F636B79617264


@dataclass(frozen=True)
class Migration:
    """The schema revision a migration found, and the one it left."""

    before: str | None
    after: str | None


_REVISION_LINE = re.compile(r'^(revision|down_revision) = "(\w+)"$', re.MULTILINE)


@cache
def _revisions() -> dict[str, str | None]:
    """Each migration's revision and the one it follows, read from the version files as
    text (Alembic is not loaded for this; tests check it agrees with Alembic's view)."""
    found: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("[0-9]*.py")):
        values = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        found[values["revision"]] = values.get("down_revision")
    return found


def code_revision() -> str:
    """The newest revision this version of Dockyard knows: the schema its code expects."""
    revisions = _revisions()
    (head,) = set(revisions) - set(revisions.values())
    return head


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this version's migrations (a newer Dockyard's is not)."""
    return revision in _revisions()


async def migrate(engine: Database) -> Migration:
    """Bring the schema to the newest revision (idempotent), in one transaction.

    Concurrent migrations (replicas starting together, ``dockyard db migrate`` on two hosts)
    take turns: on PostgreSQL under an advisory lock, on SQLite under the write lock
    (``BEGIN IMMEDIATE``); the second finds the schema at head and changes nothing.
    """
    async with engine.connect() as connection:
        connection = await connection.execution_options(**WRITE)
        done = await connection.run_sync(_upgrade)
        await connection.commit()
    return done


def _upgrade(connection: Connection) -> Migration:
    if connection.dialect.name == "postgresql":
        # Held until the transaction ends, so another migration waits here until this one
        # has committed, then reads the revision it left.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    # This read begins the transaction (on SQLite with the write lock): Alembic then runs
    # inside it instead of committing on its own.
    context = MigrationContext.configure(connection)
    before = context.get_current_revision()
    command.upgrade(_alembic_config(connection), "head")
    return Migration(before, context.get_current_revision())


async def current_revision(engine: Database) -> str | None:
    """The schema's revision in the database, None when it has none yet."""
    async with engine.connect() as connection:
        return await connection.run_sync(_read_revision)


def _read_revision(connection: Connection) -> str | None:
    from sqlalchemy import inspect

    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])
