"""``serve``'s migration, run in a forked child process that exits when it is done.

Migrating loads Alembic and the migration scripts (about 11 MiB). In the parent of
``serve`` they would stay for good, and be copied into the memory every worker shares;
in a child they are gone with it. What the child did, or the one line that says why it
could not, comes back through a pipe; the parent raises the same
:class:`~dockyard.database.SchemaError` that migrating in-process would have.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback

from dockyard.config import Config
from dockyard.database import SchemaError, migrate_schema
from dockyard.metadata.engine import Migration


def migrate_in_child(config: Config) -> Migration:
    """:func:`~dockyard.database.migrate_schema` in a forked child; its result, or its
    SchemaError raised here."""
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        _child(config, write)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        outcome = json.loads(answer) if answer else {}
    except ValueError:
        outcome = {}
    if "error" in outcome:
        raise SchemaError(str(outcome["error"]))
    if "after" not in outcome:
        code = os.waitstatus_to_exitcode(status)
        raise SchemaError(f"database: the migration process ended without a result ({code})")
    return Migration(outcome.get("before"), outcome["after"])


def _child(config: Config, write: int) -> None:
    status = 1
    try:
        try:
            done = asyncio.run(migrate_schema(config))
            outcome: dict[str, str | None] = {"before": done.before, "after": done.after}
            status = 0
        except SchemaError as exc:
            outcome = {"error": str(exc)}
        except BaseException as exc:  # a bug: its traceback for the log, one line back
            traceback.print_exc()
            outcome = {"error": f"database: migration failed: {exc!r}"}
        with os.fdopen(write, "wb") as pipe:
            pipe.write(json.dumps(outcome).encode())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
