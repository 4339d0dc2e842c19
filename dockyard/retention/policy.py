"""The rules, as the configuration gives them (``retention`` and ``immutabletags``).

A repository glob matches whole names: ``*`` within one path component, ``**`` across
components, ``?`` one character (the access rules' globs, :mod:`dockyard.auth.rules`).
Tag patterns are Python regular expressions matched with ``re.fullmatch`` against the
whole tag, so ``v1`` does not match ``v10`` unless the pattern says ``v1.*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from dockyard.auth.rules import glob_to_regex


def compile_globs(globs: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern matching a repository name against any of ``globs``."""
    return re.compile("|".join(f"(?:{glob_to_regex(g)})" for g in globs))


@dataclass(frozen=True)
class RetentionRule:
    """One rule of ``retention.rules``; ``label`` names it in reports and messages.

    A tag is removed when it matches none of ``keep_tags``, is not immutable, is not one
    of the ``keep_last`` most recently pushed of the tags the rule could remove, and (when
    ``tags_older_than`` is set) was pushed longer ago than that. Without ``keep_last`` nor
    ``tags_older_than`` the rule removes no tag. ``untagged_older_than`` removes untagged
    manifests that nothing kept references and that nothing wanted for that long.
    """

    label: str
    repositories: tuple[str, ...]
    keep_last: int | None = None
    keep_tags: tuple[str, ...] = ()
    tags_older_than: timedelta | None = None
    untagged_older_than: timedelta | None = None
    _names: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _keep: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", compile_globs(self.repositories))
        object.__setattr__(self, "_keep", tuple(re.compile(p) for p in self.keep_tags))

    def applies_to(self, repository: str) -> bool:
        return self._names.fullmatch(repository) is not None

    def keeps_by_pattern(self, tag: str) -> bool:
        return any(p.fullmatch(tag) for p in self._keep)

    @property
    def removes_tags(self) -> bool:
        return self.keep_last is not None or self.tags_older_than is not None


@dataclass(frozen=True)
class ImmutableRule:
    """One rule of ``immutabletags.rules``: tags matching ``tags`` in the repositories
    matching ``repositories`` cannot be moved to another manifest nor deleted."""

    label: str
    repositories: tuple[str, ...]
    tags: tuple[str, ...]
    _names: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _tags: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", compile_globs(self.repositories))
        object.__setattr__(self, "_tags", tuple(re.compile(p) for p in self.tags))

    def applies_to(self, repository: str) -> bool:
        return self._names.fullmatch(repository) is not None

    def protects(self, repository: str, tag: str) -> bool:
        return self.applies_to(repository) and any(p.fullmatch(tag) for p in self._tags)


@dataclass(frozen=True)
class ImmutableTags:
    """Every immutable-tag rule; a tag is protected when any of them protects it."""

    rules: tuple[ImmutableRule, ...] = ()

    def protecting(self, repository: str, tag: str) -> ImmutableRule | None:
        """The first rule that protects ``tag`` of ``repository``, or None."""
        return next((r for r in self.rules if r.protects(repository, tag)), None)

    def any_for(self, repository: str) -> bool:
        return any(r.applies_to(repository) for r in self.rules)


@dataclass(frozen=True)
class RetentionPolicy:
    """Every retention rule, in order (the first whose globs match a repository is the
    one that applies to it), and the immutable tags retention must leave alone."""

    rules: tuple[RetentionRule, ...] = ()
    immutable: ImmutableTags = ImmutableTags()
    #: scheduled runs only report what they would remove
    dry_run: bool = False

    def rule_for(self, repository: str) -> RetentionRule | None:
        return next((r for r in self.rules if r.applies_to(repository)), None)
