"""``dockyard_database_query_duration_seconds{statement}``: every statement timed where
the engine runs it.

On SQLite the inline engine times each statement itself (ordinary, prepared and BEGIN):
a plain call, where SQLAlchemy's cursor events cost several microseconds per statement.
On PostgreSQL the cursor events time what goes through SQLAlchemy; each statement there
costs far more than the events do. The ``statement`` label is the verb and the first
table (``select_manifests``, ``insert_tags``): a handful of values, whatever the
parameters.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from typing import Any

from sqlalchemy import event

from dockyard.metadata.engine import Database, InlineEngine, time_statements
from dockyard.observability import batch, metrics

_VERB = re.compile(r"\s*(\w+)")
_TABLE = re.compile(r"""(?is)\b(?:from|into|update)\s+["`]?(\w+)""")
_STARTED = "dockyard_started"


@lru_cache(maxsize=2048)
def statement_name(sql: str) -> str:
    """``select_manifests`` for ``SELECT … FROM manifests …``; the verb alone if no table."""
    verb = _VERB.match(sql)
    name = verb.group(1).lower() if verb else "unknown"
    if name == "with":  # a CTE: name it after the statement that uses it
        tail = re.search(r"(?is)\)\s*(select|insert|update|delete)\b", sql)
        name = tail.group(1).lower() if tail else name
    table = _TABLE.search(sql)
    return f"{name}_{table.group(1).lower()}" if table else name


@lru_cache(maxsize=2048)
def _child(sql: str) -> Any:
    return batch.histogram(metrics.DB_QUERY.labels(statement_name(sql)))


def observe(sql: str, seconds: float) -> None:
    _child(sql).observe(seconds)


def _before(_conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool) -> None:
    if context is not None:
        setattr(context, _STARTED, time.perf_counter())


def _after(_conn: Any, _cursor: Any, sql: str, _params: Any, context: Any, _many: bool) -> None:
    started = getattr(context, _STARTED, None)
    if started is not None:
        observe(sql, time.perf_counter() - started)


def instrument(engine: Database) -> None:
    """Time every statement ``engine`` runs (idempotent)."""
    if isinstance(engine, InlineEngine):
        time_statements(observe)
        return
    sync_engine = engine.sync_engine
    if not event.contains(sync_engine, "before_cursor_execute", _before):
        event.listen(sync_engine, "before_cursor_execute", _before)
        event.listen(sync_engine, "after_cursor_execute", _after)
