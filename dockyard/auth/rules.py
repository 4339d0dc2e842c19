"""Per-repository access rules of Dockyard's token service.

A rule grants ``actions`` (``pull``, ``push``, ``delete``, or ``*`` for all three) on the
repositories matching one of its ``repositories`` globs to the callers it names: ``users``
(``*`` is any logged-in user), ``groups``, or, with ``anonymous``, every caller, logged in
or not (anonymous rules may only grant ``pull``). What a caller may do on a repository is the
union of every rule that names them; there are no deny rules, so adding a rule can only
give. Admins may do everything everywhere and see every repository.

Globs: ``*`` matches within one path component, ``**`` across components, ``?`` one
character of a component; ``${user}`` stands for the caller's user name, so
``users/${user}/**`` gives everyone a namespace of their own. A glob must match the whole
name: ``team/**`` matches ``team/app`` and ``team/a/b``, not ``team`` itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from dockyard.auth.access import (
    ANY_ACTION,
    CATALOG,
    PULL,
    REGISTRY,
    REPOSITORY,
    REPOSITORY_ACTIONS,
    Access,
    Scope,
)
from dockyard.oci.names import is_valid_name

ANY_USER: Final = "*"
USER_PLACEHOLDER: Final = "${user}"


class RuleError(ValueError):
    """A rule cannot be used as written (the message is for the operator)."""


def glob_to_regex(glob: str, user: str | None = None) -> str:
    """The regular expression of a repository glob (see the module docstring)."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith(USER_PLACEHOLDER, i):
            # a name that cannot be a path component never matches (the anonymous caller,
            # or a user name with characters no repository name has)
            out.append(re.escape(user) if user and "/" not in user else "(?!)")
            i += len(USER_PLACEHOLDER)
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def expand_actions(actions: Iterable[str]) -> frozenset[str]:
    expanded: set[str] = set()
    for action in actions:
        if action == ANY_ACTION:
            expanded.update(REPOSITORY_ACTIONS)
        elif action in REPOSITORY_ACTIONS:
            expanded.add(action)
        else:
            raise RuleError(f"unknown action {action!r} (pull, push, delete or *)")
    return frozenset(expanded)


@dataclass(frozen=True)
class Rule:
    repositories: tuple[str, ...]
    actions: frozenset[str]
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    anonymous: bool = False
    _static: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def build(
        cls,
        repositories: Sequence[str],
        actions: Iterable[str],
        users: Iterable[str] = (),
        groups: Iterable[str] = (),
        anonymous: bool = False,
    ) -> Rule:
        if not repositories:
            raise RuleError("a rule needs at least one repository glob")
        granted = expand_actions(actions)
        if not granted:
            raise RuleError("a rule needs at least one action")
        if anonymous and granted - {PULL}:
            raise RuleError("anonymous callers may only be given pull")
        users, groups = frozenset(users), frozenset(groups)
        if not users and not groups and not anonymous:
            raise RuleError("a rule must name users, groups or anonymous")
        static = tuple(
            re.compile(glob_to_regex(glob)) for glob in repositories if USER_PLACEHOLDER not in glob
        )
        return cls(tuple(repositories), granted, users, groups, anonymous, static)

    def names(self, user: str | None, user_groups: frozenset[str]) -> bool:
        if self.anonymous:  # what anyone may do without logging in, a login does not take away
            return True
        if user is None:
            return False
        return ANY_USER in self.users or user in self.users or bool(self.groups & user_groups)

    def covers(self, repository: str, user: str | None) -> bool:
        if any(pattern.fullmatch(repository) for pattern in self._static):
            return True
        return any(
            _user_pattern(glob, user).fullmatch(repository)
            for glob in self.repositories
            if USER_PLACEHOLDER in glob
        )


@functools.lru_cache(maxsize=4096)
def _user_pattern(glob: str, user: str | None) -> re.Pattern[str]:
    return re.compile(glob_to_regex(glob, user))


class AccessRules:
    def __init__(
        self,
        rules: Sequence[Rule] = (),
        groups: Mapping[str, Sequence[str]] | None = None,
        admin_users: Iterable[str] = (),
        admin_groups: Iterable[str] = (),
    ) -> None:
        self.rules = tuple(rules)
        self._groups_of: dict[str, set[str]] = {}
        for group, members in (groups or {}).items():
            for member in members:
                self._groups_of.setdefault(member, set()).add(group)
        self._admin_users = frozenset(admin_users)
        self._admin_groups = frozenset(admin_groups)
        known = set(groups or {})
        for rule in self.rules:
            unknown = rule.groups - known
            if unknown:
                raise RuleError(f"unknown group {sorted(unknown)[0]!r} (define it in groups)")
        unknown = self._admin_groups - known
        if unknown:
            raise RuleError(f"unknown admin group {sorted(unknown)[0]!r} (define it in groups)")

    def groups_of(self, user: str | None) -> frozenset[str]:
        return frozenset(self._groups_of.get(user, ())) if user is not None else frozenset()

    def is_admin(self, user: str | None) -> bool:
        return user is not None and (
            user in self._admin_users or bool(self.groups_of(user) & self._admin_groups)
        )

    @property
    def has_anonymous_rules(self) -> bool:
        return any(rule.anonymous for rule in self.rules)

    def actions(self, user: str | None, repository: str) -> frozenset[str]:
        """What ``user`` (None: anonymous) may do on ``repository``."""
        if not is_valid_name(repository):
            return frozenset()
        if self.is_admin(user):
            return frozenset(REPOSITORY_ACTIONS)
        user_groups = self.groups_of(user)
        granted: set[str] = set()
        for rule in self.rules:
            if rule.names(user, user_groups) and rule.covers(repository, user):
                granted |= rule.actions
        return frozenset(granted)

    def may_list_catalog(self, user: str | None) -> bool:
        return user is not None or self.has_anonymous_rules

    def permits(self, user: str | None, access: Access) -> bool:
        if access.type == REPOSITORY:
            wanted = REPOSITORY_ACTIONS if access.action == ANY_ACTION else (access.action,)
            return set(wanted) <= self.actions(user, access.name)
        if access.type == REGISTRY and access.name == CATALOG:
            return self.may_list_catalog(user)
        return False

    def grant(self, user: str | None, requested: Sequence[Scope]) -> list[Scope]:
        """The part of ``requested`` that ``user`` may have, in the order asked."""
        granted: dict[tuple[str, str], list[str]] = {}
        for scope in requested:
            if scope.type == REPOSITORY:
                allowed = self.actions(user, scope.name)
                wanted = REPOSITORY_ACTIONS if ANY_ACTION in scope.actions else scope.actions
                actions = [a for a in wanted if a in allowed]
            elif (scope.type, scope.name) == (REGISTRY, CATALOG) and self.may_list_catalog(user):
                actions = [ANY_ACTION]
            else:
                actions = []
            if actions:
                have = granted.setdefault((scope.type, scope.name), [])
                have.extend(a for a in actions if a not in have)
        return [Scope(kind, name, tuple(actions)) for (kind, name), actions in granted.items()]
