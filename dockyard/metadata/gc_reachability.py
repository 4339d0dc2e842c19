"""Which untagged manifests no tag reaches, found by walking up from them.

A manifest is kept when a tag reaches it: it is tagged, a child of a kept index, or a
referrer (``subject``) of a kept manifest, within its repository. Rather than computing
everything the tags reach (a pass over every manifest of the store), the walk starts at
the few manifests that may go (those with no tag) and climbs to their parents (the indexes
that list them, the manifest they are a referrer of) until it runs out: a start is kept
when a tagged manifest is among its ancestors. Each step is one indexed query per
:data:`CHUNK` manifests, on both databases.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select

from dockyard.metadata import schema as t
from dockyard.metadata.engine import DbConnection
from dockyard.metadata.push_sessions import session_keeps

_m = t.manifests
_r = t.manifest_references
_tags = t.tags
_parent = _m.alias("parent")
_child = _m.alias("child")
#: ids per query of a step
CHUNK = 500

# The indexes that list a child: its digest's references, then each one's manifest by id.
# (``+ 0`` keeps SQLite, which has no statistics, from starting at every manifest of the
# child's repository instead, by the subject index, and probing each one's references:
# 10,000 probes for 100 children in repositories of 100 manifests.)
_INDEX_PARENTS = (
    select(_child.c.id, _parent.c.id)
    .join(_r, and_(_r.c.digest == _child.c.digest, _r.c.kind == "manifest"))
    .join(
        _parent,
        and_(
            _parent.c.id == _r.c.manifest_id,
            _parent.c.repository_id + 0 == _child.c.repository_id,
        ),
    )
)
_SUBJECTS = select(_child.c.id, _parent.c.id).join(
    _parent,
    and_(
        _parent.c.repository_id == _child.c.repository_id,
        _parent.c.digest == _child.c.subject_digest,
    ),
)


def may_go(cutoff: datetime, since: datetime | None = None) -> ColumnElement[bool]:
    """The condition on ``manifests`` rows that may go: no tag, last wanted before
    ``cutoff``, and not kept by a push session of their repository that still runs (for
    what was wanted at ``since`` or later; None: sessions keep nothing). Whether a tag
    reaches them through a parent, :func:`kept_among` says."""
    wanted = func.coalesce(_m.c.wanted_at, _m.c.created_at)
    return and_(
        ~exists().where(_tags.c.manifest_id == _m.c.id),
        wanted < cutoff,
        ~session_keeps(_m.c.repository_id, wanted, cutoff, cutoff if since is None else since),
    )


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    chunk: list[int] = []
    for one in ids:
        chunk.append(one)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def kept_among(connection: DbConnection, starts: set[int]) -> set[int]:
    """Those of ``starts`` (manifest ids) that a tag reaches."""
    parents: dict[int, set[int]] = {}
    reached, frontier = set(starts), set(starts)
    while frontier:
        found: set[int] = set()
        for chunk in _chunks(frontier):
            for query in (_INDEX_PARENTS, _SUBJECTS):
                rows = await connection.execute(query.where(_child.c.id.in_(chunk)))
                for child, parent in rows:
                    parents.setdefault(child, set()).add(parent)
                    found.add(parent)
        frontier = found - reached
        reached |= frontier
    tagged: set[int] = set()
    for chunk in _chunks(reached):
        query = select(_tags.c.manifest_id).where(_tags.c.manifest_id.in_(chunk))
        tagged.update((await connection.execute(query)).scalars())
    return {start for start in starts if _reaches(start, parents, tagged)}


def _reaches(start: int, parents: dict[int, set[int]], tagged: set[int]) -> bool:
    """Whether ``start`` or one of its ancestors is tagged (the walk may meet cycles)."""
    seen, pending = {start}, [start]
    while pending:
        node = pending.pop()
        if node in tagged:
            return True
        for parent in parents.get(node, ()):
            if parent not in seen:
                seen.add(parent)
                pending.append(parent)
    return False
