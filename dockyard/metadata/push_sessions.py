"""Push sessions: the review delay counted from the last request of a push.

A client pushes an image as a run of requests into one repository (``HEAD`` and skip,
upload, mount, the child manifests by digest, then the index or the tagged manifest), and
what it wanted early in the run is referenced only at its end. Under load, or for a big
image, that run takes longer than a short review delay. So each repository has a session
(``gc_push_sessions``): ``active_at``, when a client last pushed to it, and ``started_at``,
since when it has not rested for the review window. While a session runs (it was active
within the window), whatever was wanted in that repository since the session started is
kept, however long ago, up to a limit the collector sets (so that a repository that never
rests still gets collected). A session that rested starts again from one window before its
new request: what was wanted within that window was kept anyway.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, and_, bindparam, case, exists, select

from dockyard.metadata import schema as t
from dockyard.metadata.engine import prepared
from dockyard.metadata.transactions import StoreBase

_s = t.gc_push_sessions
_STARTED = bindparam("started", type_=DateTime(timezone=True))
_NOW = bindparam("now", type_=DateTime(timezone=True))


def _note_statement(statement: Any) -> Any:
    """The upsert of a repository's session (``statement``: the dialect's insert into
    ``gc_push_sessions``)."""
    rested = _s.c.active_at < _STARTED
    return statement.from_select(
        ["repository_id", "started_at", "active_at"],
        select(t.repositories.c.id, _STARTED, _NOW).where(
            t.repositories.c.name == bindparam("name")
        ),
    ).on_conflict_do_update(
        index_elements=["repository_id"],
        set_={
            "started_at": case((rested, statement.excluded.started_at), else_=_s.c.started_at),
            "active_at": case(
                (_s.c.active_at < statement.excluded.active_at, statement.excluded.active_at),
                else_=_s.c.active_at,
            ),
        },
    )


def session_keeps(
    repository_id: ColumnElement[int] | None,
    wanted: ColumnElement[datetime],
    cutoff: datetime | ColumnElement[datetime],
    since: datetime | ColumnElement[datetime],
    digest: ColumnElement[str] | None = None,
) -> ColumnElement[bool]:
    """Whether a push session that still runs keeps what was last wanted at ``wanted``:
    one of the repository ``repository_id`` (a manifest), or of a repository that links
    the blob ``digest``. A session runs when it was active at ``cutoff`` or later (the
    collector's own cutoff); only what was wanted at ``since`` or later is kept."""
    alive = [_s.c.active_at >= cutoff, _s.c.started_at <= wanted]
    if digest is not None:
        links = t.repository_blobs
        found = exists().where(
            links.c.digest == digest, _s.c.repository_id == links.c.repository_id, *alive
        )
    else:
        assert repository_id is not None
        found = exists().where(_s.c.repository_id == repository_id, *alive)
    return and_(wanted >= since, found)


class PushSessionQueries(StoreBase):
    """Noting pushes into each repository's session."""

    _note_push_statement: Any = None

    async def note_push(self, name: str, now: datetime, window: timedelta) -> None:
        """Record that a client pushes to repository ``name`` at ``now``; a session that
        has not been active within ``window`` (the collector's review window) starts again,
        from ``window`` before ``now``. Nothing for a repository that does not exist yet:
        its first commit wants what it writes, and the next push starts its session."""
        if self._note_push_statement is None:
            self._note_push_statement = prepared(_note_statement(self._insert(_s)))
        parameters = {"name": name, "started": now - window, "now": now}
        async with self._write(invalidates=False) as connection:
            await connection.execute(self._note_push_statement, parameters)
