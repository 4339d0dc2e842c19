"""Whole tag lists, as one read saw them, and the per-process cache that keeps them until
the next write (within a budget of characters)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable

from dockyard.metadata.generation import WriteGeneration
from dockyard.oci.names import TAG_SEPARATOR  # joins tags as a tags/list body does

# Each process keeps whole tag lists of at most this many characters in all; the memory
# they take is about eight times that (the string, the list split from it, the body).
TAG_CACHE_CHARS = 2_000_000
# What an entry costs in the budget besides its characters, so that many empty lists
# are bounded too.
_TAG_ENTRY_COST = 100


class TagList:
    """Every tag of one repository in byte order, as one read saw them. Immutable.

    The database hands the tags back as one string, joined by :data:`TAG_SEPARATOR`: a
    row per tag (a tuple and a string made for each) costs more on a long list. The
    list is split from the string on first use. ``memo`` keeps what callers derive from
    the list (the API: its response body) for as long as the list itself is cached.
    """

    __slots__ = ("_joined", "_tags", "memo")

    def __init__(self, joined: str) -> None:
        self._joined = joined
        self._tags: list[str] | None = None
        self.memo: dict[str, object] = {}

    @classmethod
    def of(cls, tags: Iterable[str]) -> TagList:
        return cls(TAG_SEPARATOR.join(tags))

    @classmethod
    def in_byte_order(cls, joined: str) -> TagList:
        """The list of tags ``joined`` in an order nothing promised, in byte order: sorted
        here unless it already is (checking costs a fifth of the read on long lists)."""
        tags = joined.split(TAG_SEPARATOR) if joined else []
        ordered = sorted(tags)
        found = cls(joined if ordered == tags else TAG_SEPARATOR.join(ordered))
        found._tags = ordered
        return found

    @property
    def size(self) -> int:
        """Characters held: what the list costs in the cache's budget."""
        return len(self._joined)

    @property
    def tags(self) -> list[str]:
        if self._tags is None:
            self._tags = self._joined.split(TAG_SEPARATOR) if self._joined else []
        return self._tags

    def joined(self, separator: str) -> str:
        """The tags joined by ``separator``; free for :data:`TAG_SEPARATOR`."""
        return self._joined if separator == TAG_SEPARATOR else separator.join(self.tags)

    def page(self, limit: int | None, last: str | None) -> list[str]:
        """Up to ``limit`` tags after ``last``, as the page query returns them: Python
        compares strings by code point, as SQLite's BINARY collation compares UTF-8."""
        tags = self.tags
        start = 0 if last is None else bisect_right(tags, last)
        return tags[start:] if limit is None else tags[start : start + limit]


class TagListCache:
    """Whole tag lists by repository, each valid while the write generation it was read
    at is current; at most ``budget`` characters in all, the least recently used evicted
    first. A list larger than the whole budget is not kept, only remembered as too large
    (for its generation), so that its pages are read page by page instead."""

    def __init__(self, generation: WriteGeneration, budget: int) -> None:
        self._generation = generation
        self._budget = budget
        self._used = 0
        self._entries: dict[str, tuple[int, TagList]] = {}
        self._too_large: dict[str, int] = {}
        # Told True for a hit, False for a miss (metrics); None: nobody listens.
        self.on_lookup: Callable[[bool], None] | None = None

    @property
    def enabled(self) -> bool:
        return not self._generation.disabled

    def get(self, name: str) -> TagList | None:
        if self._generation.disabled:
            return None
        found = self._lookup(name)
        if self.on_lookup is not None:
            self.on_lookup(found is not None)
        return found

    def _lookup(self, name: str) -> TagList | None:
        entry = self._entries.pop(name, None)
        if entry is None:
            return None
        if entry[0] != self._generation.current():
            self._used -= entry[1].size + _TAG_ENTRY_COST
            return None
        self._entries[name] = entry  # now the most recently used
        return entry[1]

    def too_large(self, name: str) -> bool:
        return self._too_large.get(name, -1) == self._generation.current()

    def put(self, name: str, generation: int, tags: TagList) -> None:
        if self._generation.disabled:
            return
        old = self._entries.pop(name, None)
        if old is not None:
            self._used -= old[1].size + _TAG_ENTRY_COST
        cost = tags.size + _TAG_ENTRY_COST
        if cost > self._budget:
            if len(self._too_large) >= 1000:
                self._too_large.clear()
            self._too_large[name] = generation
            return
        while self._used + cost > self._budget:
            evicted = self._entries.pop(next(iter(self._entries)))
            self._used -= evicted[1].size + _TAG_ENTRY_COST
        self._entries[name] = (generation, tags)
        self._used += cost

    @property
    def used(self) -> int:
        """Characters held, entries' overhead included (for tests)."""
        return self._used
