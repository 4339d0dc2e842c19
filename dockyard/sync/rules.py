"""Which repositories and tags a sync copies, and where they land."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SyncRules:
    """``include``: repository globs (``*`` crosses ``/``; empty: every repository);
    ``tags``: a regex a tag must match in full (None: every tag); ``exclude``: a regex
    searched in ``repo:tag`` (and in ``repo`` alone) that drops a match."""

    include: tuple[str, ...] = ()
    tags: str | None = None
    exclude: str | None = None
    _tags: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _exclude: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tags", re.compile(self.tags) if self.tags else None)
        object.__setattr__(self, "_exclude", re.compile(self.exclude) if self.exclude else None)

    def wants_repository(self, repo: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(repo, g) for g in self.include):
            return False
        return not (self._exclude is not None and self._exclude.search(repo))

    def wants_tag(self, repo: str, tag: str) -> bool:
        if self._tags is not None and not self._tags.fullmatch(tag):
            return False
        return not (self._exclude is not None and self._exclude.search(f"{repo}:{tag}"))


@dataclass(frozen=True)
class PrefixMap:
    """Source repositories under ``source`` land under ``dest`` (either may be empty)."""

    source: str = ""
    dest: str = ""

    def relative(self, repo: str) -> str | None:
        """``repo`` without the source prefix ("" for the prefix itself); None when it
        lies outside it."""
        if not self.source:
            return repo
        if repo == self.source:
            return ""
        if repo.startswith(self.source + "/"):
            return repo[len(self.source) + 1 :]
        return None

    def destination(self, relative: str) -> str:
        if not relative:
            return self.dest or self.source
        return f"{self.dest}/{relative}" if self.dest else relative

    def origin(self, relative: str) -> str:
        return f"{self.source}/{relative}" if self.source and relative else self.source or relative
