"""Failed-login times in the database, shared by every replica on one PostgreSQL server
(the :class:`dockyard.auth.ratelimit.FailureLog` of several replicas).

Times come from the database's clock, so replicas whose clocks disagree still count one
window. Each failure is a row; recording one also deletes the bucket's rows beyond the
newest ``limit``, so the table holds at most buckets * limit rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

_NOW = "extract(epoch FROM clock_timestamp())::float8"
_RECENT = text(
    f"WITH clock AS (SELECT {_NOW} AS now) "
    "SELECT clock.now, ARRAY(SELECT f.failed_at FROM failed_logins AS f "
    "WHERE f.bucket = :bucket AND f.failed_at > clock.now - :window) FROM clock"
)
# The DELETE sees the table as it was before the INSERT (one snapshot): it keeps the
# newest ``limit - 1`` older rows, and the new one.
_ADD = text(
    "WITH added AS (INSERT INTO failed_logins (bucket, failed_at) "
    f"VALUES (:bucket, {_NOW}) RETURNING id) "
    "DELETE FROM failed_logins WHERE bucket = :bucket AND id NOT IN ("
    "SELECT id FROM failed_logins WHERE bucket = :bucket ORDER BY failed_at DESC LIMIT :keep)"
)


class DatabaseFailures:
    """Failure times in the ``failed_logins`` table of a PostgreSQL database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def recent(self, bucket: int, window: float) -> tuple[float, list[float]]:
        async with self._engine.connect() as connection:
            row = (await connection.execute(_RECENT, {"bucket": bucket, "window": window})).one()
        return float(row[0]), [float(t) for t in row[1]]

    async def add(self, bucket: int, limit: int) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(_ADD, {"bucket": bucket, "keep": max(limit - 1, 0)})
