"""A real PostgreSQL 15 for the tests: one server per test session, a database per test.

The server is Debian's (``/usr/lib/postgresql/15/bin``, package ``postgresql``, installed
by ``scripts/install-test-deps.sh``), started on 127.0.0.1 at a free port with its own data
directory and socket directory, without fsync, and stopped at the end of the session. It
never touches another cluster on the machine. Under pytest-xdist each worker starts its own.

A test gets a database of its own with the schema at head and no rows. Databases are
reused: when a test ends, its database is emptied (``TRUNCATE``, about 16 ms per test here)
and handed to the next one. A new copy of a migrated template (``CREATE DATABASE ...
TEMPLATE``) took 70-120 ms per test with its ``DROP``, and an empty database plus the
migrations more. Tests of the migrations themselves get an empty database, dropped after.

The cluster collates text with ICU's ``en-US`` on purpose: there ``a < B < b``, unlike byte
order, so a query that leaves the order to the database's collation fails the tests. For
the same reason its time zone is UTC+05:45: a time that loses its offset on the way is off.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from dockyard.metadata import schema
from dockyard.metadata.engine import create_engine, migrate

PG_BIN = Path(os.environ.get("DOCKYARD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "postgres"
TEMPLATE = "dockyard_template"
START_ATTEMPTS = 3
SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
    "-c full_page_writes=off -c TimeZone=Asia/Kathmandu"
)


# Leftover connections of a test (a store it did not close) would hold locks.
_CLOSE_OTHERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
_TRUNCATE = "TRUNCATE {} RESTART IDENTITY CASCADE".format(
    ", ".join(f'"{name}"' for name in schema.metadata.tables)
)


class PostgresError(RuntimeError):
    """The test server could not be set up; the message says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` as the ``postgres`` user when we are root (initdb refuses root)."""
    return ["runuser", "-u", USER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_postgres(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


@dataclass
class PostgresServer:
    """A running cluster we started; ``stop()`` ends it and removes its directory."""

    directory: Path
    port: int = 0
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _idle: list[str] = field(default_factory=list)
    _head: str | None = None  # the template's revision, once it exists

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @classmethod
    def start(cls) -> PostgresServer:
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            raise PostgresError(
                f"{initdb} is missing: install the Debian package postgresql "
                "(scripts/install-test-deps.sh)"
            )
        # Not under pytest's tmp_path: that is private to root, and the server runs as
        # postgres.
        server = cls(Path(tempfile.mkdtemp(prefix="dockyard-pg-")))
        try:
            if os.geteuid() == 0:
                account = pwd.getpwnam(USER)
                os.chown(server.directory, account.pw_uid, account.pw_gid)
            _run([str(initdb), "-D", str(server.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US",
                  "--no-sync"])  # fmt: skip
            server._listen()
        except BaseException:
            shutil.rmtree(server.directory, ignore_errors=True)
            raise
        return server

    def _listen(self) -> None:
        """Start on a free port; another process may take the port first: then again."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = _free_port()
            options = f"{SETTINGS} -p {self.port} -k {self.directory}"
            try:
                _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                      "-w", "-t", "30", "-o", options, "start"])  # fmt: skip
                return
            except PostgresError:
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                in_use = "already in use" in log
                if not in_use or attempt == START_ATTEMPTS:
                    raise

    def stop(self) -> None:
        with contextlib.suppress(PostgresError):
            _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{database}"

    async def _connect(self, database: str = "postgres") -> asyncpg.Connection:
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user=USER, database=database)

    async def execute(self, statement: str) -> None:
        """Run one statement as the superuser, outside a transaction."""
        connection = await self._connect()
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def acquire(self) -> str:
        """The URL of a database with the schema at head and no rows: a used one emptied
        again (:meth:`release`), or a new copy of the template."""
        if self._idle:
            return self.url(self._idle.pop())
        await self._ensure_template()
        name = f"test_{next(self._names)}"
        await self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
        return self.url(name)

    async def release(self, url: str) -> None:
        """Empty a database from :meth:`acquire` for the next test, closing what still
        connects to it; one whose schema a test changed is dropped instead."""
        name = str(make_url(url).database)
        connection = await self._connect(name)
        try:
            await connection.execute(_CLOSE_OTHERS)
            version = await connection.fetchval(
                "SELECT max(version_num) FROM alembic_version", timeout=30
            )
            if version == self._head:
                await connection.execute(_TRUNCATE)
                self._idle.append(name)
                return
        except asyncpg.UndefinedTableError:
            pass
        finally:
            await connection.close()
        await self.drop_database(url)

    async def create_empty(self) -> str:
        """The URL of a new database without any table (drop it with :meth:`drop_database`)."""
        name = f"test_{next(self._names)}"
        await self.execute(f"CREATE DATABASE {name} STRATEGY FILE_COPY")
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, closing whatever still connects to it."""
        name = make_url(url).database
        await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _ensure_template(self) -> None:
        if self._head is not None:
            return
        await self.execute(f"CREATE DATABASE {TEMPLATE}")
        engine = create_engine(self.url(TEMPLATE))
        try:
            await migrate(engine)
        finally:
            await engine.dispose()  # a template must have no connections to be copied
        connection = await self._connect(TEMPLATE)
        try:
            self._head = await connection.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await connection.close()
