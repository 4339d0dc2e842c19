"""The statements that list tags and repositories, in byte order on every database.

registry:2 sorts names by their bytes. SQLite compares text with its BINARY collation,
which is byte order; PostgreSQL with the database's collation (in ``en_US``, ``a < B <
b``) unless a comparison says ``COLLATE "C"``. Every comparison and ORDER BY here is
bytewise, so that a page, the ``last`` it continues after, and a page cut in Python from a
whole list (Python compares strings by code point, as UTF-8 bytes compare) all agree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, select

from dockyard.metadata import schema as t
from dockyard.metadata.engine import prepared

# Catalog order is component by component: "/" sorts before every other character.
PATH_SEPARATOR_KEY = "\x01"
# What "no limit" means in a LIMIT clause that always has a value.
NO_LIMIT = 2**62


def limit_value(limit: int | None) -> int:
    return NO_LIMIT if limit is None else limit


def bytewise(expression: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """``expression`` compared and sorted by byte order on ``dialect``."""
    return expression.collate("C") if dialect == "postgresql" else expression


@dataclass(frozen=True)
class Listings:
    """One dialect's listing statements.

    ``tags_page`` takes ``repository_id``, ``last`` and ``limit``; ``catalog_page`` takes
    ``after`` (a :data:`PATH_SEPARATOR_KEY` key) and ``limit``. ``tag_list`` returns every
    tag of ``repository_id`` in one string joined by ``separator``; ``tag_list_ordered``
    says whether the database promises its order (PostgreSQL's ``string_agg(... ORDER
    BY)``). SQLite before 3.44 has no ORDER BY inside an aggregate: its ``group_concat``
    reads an ordered subquery, which gives byte order in practice but is not promised, so
    the caller checks the order.
    """

    tags_page: Select[Any]
    tag_list: Select[Any]
    tag_list_ordered: bool
    catalog_page: Select[Any]


@functools.cache
def listings(dialect: str) -> Listings:
    """The statements for ``dialect`` (built once: building costs more than running)."""
    name = bytewise(t.tags.c.name, dialect)
    of_repository = t.tags.c.repository_id == bindparam("repository_id")
    tags_page = prepared(
        select(t.tags.c.name)
        .where(of_repository, name > bindparam("last"))
        .order_by(name)
        .limit(bindparam("limit"))
    )
    if dialect == "postgresql":
        tag_list = select(
            func.string_agg(t.tags.c.name, bindparam("separator")).aggregate_order_by(name)
        ).where(of_repository)
    else:
        names = select(t.tags.c.name).where(of_repository).order_by(name).subquery()
        tag_list = select(func.group_concat(names.c.name, bindparam("separator")))
    key = bytewise(func.replace(t.repositories.c.name, "/", PATH_SEPARATOR_KEY), dialect)
    catalog_page = (
        select(t.repositories.c.name)
        .where(bindparam("after") < key)
        .order_by(key)
        .limit(bindparam("limit"))
    )
    return Listings(
        tags_page=tags_page,
        tag_list=prepared(tag_list),
        tag_list_ordered=dialect == "postgresql",
        catalog_page=catalog_page,
    )
