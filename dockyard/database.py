"""The metadata database from the operator's side: the revision of its schema, migrating
it (``dockyard db migrate``), and the check ``dockyard serve`` makes before it forks.

``database.migrate`` says whether ``serve`` migrates: ``onstart`` brings the schema to the
code's revision before the workers start; ``never`` refuses to serve a schema older than
the code and names the command that migrates it. Unset, SQLite migrates on start (an
embedded database has one server) and PostgreSQL does not (replicas of a new version
should not each alter a schema that the old version's replicas are still serving).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from dockyard.config import Config, masked_url
from dockyard.metadata.engine import (
    Migration,
    code_revision,
    create_engine,
    current_revision,
    known_revision,
    migrate,
)
from dockyard.startup import StartupError

MIGRATE_COMMAND = "dockyard db migrate CONFIG"
log = logging.getLogger("dockyard")


class SchemaError(StartupError):
    """The database cannot be used or migrated as it is; one line for the operator."""


def shown_url(url: str) -> str:
    """The database URL for messages: password masked, driver names left out."""
    parsed = make_url(url)
    plain = parsed.set(drivername=parsed.get_backend_name())
    return masked_url(plain.render_as_string(hide_password=False))


def in_process_database(url: str) -> bool:
    """An in-memory SQLite database: it lives inside the process that serves it."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def migrates_on_start(config: Config) -> bool:
    """Whether ``serve`` migrates the schema itself (``database.migrate``)."""
    return config.migrate_setting() == "onstart"


@dataclass(frozen=True)
class SchemaStatus:
    """The schema's revision in the database (None: no schema yet), and the code's."""

    url: str
    current: str | None
    code: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.code

    @property
    def newer(self) -> bool:
        """At a revision this version does not know: a newer Dockyard migrated it."""
        return self.current is not None and not known_revision(self.current)

    def report(self) -> list[str]:
        """What ``dockyard db status`` prints."""
        if self.up_to_date:
            state = "up to date"
        elif self.newer:
            state = "newer than this Dockyard: a newer version migrated it"
        else:
            state = f"behind the code: run `{MIGRATE_COMMAND}`"
        return [
            f"database: {self.url}",
            f"schema revision: {self.current or 'none (no schema yet)'}",
            f"code revision: {self.code}",
            f"state: {state}",
        ]

    def problem(self) -> str | None:
        """Why ``serve`` cannot use the schema as it is, or None."""
        if self.up_to_date:
            return None
        if self.newer:
            return (
                f"database: the schema of {self.url} is at revision {self.current}, which "
                f"this Dockyard (revision {self.code}) does not know: a newer version "
                "migrated it; run that version"
            )
        found = "has no schema yet" if self.current is None else f"is at {self.current}"
        return (
            f"database: {self.url} {found}, this Dockyard needs revision {self.code}: run "
            f"`{MIGRATE_COMMAND}` first (or set database.migrate: onstart)"
        )


async def schema_status(config: Config) -> SchemaStatus:
    """The schema's revision; reading it creates no SQLite file that is not there."""
    url = config.database_url()
    parsed = make_url(url)
    file = Path(parsed.database or "")
    on_file = parsed.get_backend_name() == "sqlite" and not in_process_database(url)
    if on_file and not await asyncio.to_thread(file.is_file):
        return SchemaStatus(shown_url(url), None, code_revision())
    engine = create_engine(url)
    try:
        current = await current_revision(engine)
    except (OSError, DBAPIError) as exc:
        raise _unusable(url, exc) from None
    finally:
        await engine.dispose()
    return SchemaStatus(shown_url(url), current, code_revision())


async def migrate_schema(config: Config) -> Migration:
    """Bring the schema to the code's revision; refuses one a newer version wrote."""
    url = config.database_url()
    status = await schema_status(config)
    if status.newer:
        raise SchemaError(status.problem() or "")
    if status.up_to_date:  # without loading Alembic: the usual start of a server
        return Migration(status.current, status.current)
    engine = create_engine(url)
    try:
        return await migrate(engine)
    except (OSError, DBAPIError) as exc:
        raise _unusable(url, exc) from None
    finally:
        await engine.dispose()


def migration_summary(config: Config, done: Migration) -> str:
    """One line on what :func:`migrate_schema` did."""
    url = shown_url(config.database_url())
    if done.before == done.after:
        return f"database {url}: schema already at revision {done.after}, nothing to do"
    if done.before is None:
        return f"database {url}: schema created at revision {done.after}"
    return f"database {url}: schema migrated from revision {done.before} to {done.after}"


async def prepare_schema(config: Config) -> None:
    """What ``serve`` does before its workers start: migrate (``database.migrate``), or
    check that the schema is the code's; raises SchemaError when it cannot serve."""
    if migrates_on_start(config):
        status = await schema_status(config)
        if status.newer:
            raise SchemaError(status.problem() or "")
        if status.up_to_date:  # the usual start: nothing to migrate, no process forked
            return
        from dockyard.migrate_apart import migrate_in_child

        done = migrate_in_child(config)  # Alembic is loaded there, not in the parent
        if done.before != done.after:
            log.info("%s", migration_summary(config, done))
        return
    problem = (await schema_status(config)).problem()
    if problem is not None:
        raise SchemaError(problem)


def _unusable(url: str, error: Exception) -> SchemaError:
    reason = getattr(error, "orig", None) or error
    return SchemaError(f"database: cannot use {shown_url(url)}: {reason}")
