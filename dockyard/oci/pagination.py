"""``n``/``last`` pagination of tag and catalog listings, and the ``Link`` header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

from dockyard.oci import errors

_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() also admits '²'


@dataclass(frozen=True)
class Page:
    """A page request: at most ``limit`` entries strictly after ``last``."""

    limit: int | None
    last: str | None


def parse_page(n: str | None, last: str | None, max_entries: int | None = None) -> Page:
    """Validate ``n`` and ``last``; ``max_entries`` caps ``n`` (catalog.maxentries)."""
    limit: int | None = None
    if n is not None and n != "":
        if not _DIGITS.fullmatch(n):
            raise errors.RegistryError(
                errors.PAGINATION_NUMBER_INVALID,
                "n must be a non-negative integer",
                detail={"n": n[:50]},
            )
        limit = int(n)
    if max_entries is not None:
        limit = max_entries if limit is None else min(limit, max_entries)
    return Page(limit, last or None)


def link_header(path: str, limit: int, last: str, extra: dict[str, str] | None = None) -> str:
    """The RFC 5988 ``Link`` to the next page, as registries send it."""
    query = {"n": str(limit), "last": last, **(extra or {})}
    return f'<{path}?{urlencode(query)}>; rel="next"'
