"""What a request needs and what a credential grants: resources, actions, scopes.

The vocabulary is the Docker token specification's, which registry:2 uses on the wire:
a *scope* ``repository:team/app:pull,push`` names a resource type, a resource name and
actions; the ``access`` claim of a token lists the same triples as JSON; an action ``*``
grants every action on its resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

PULL: Final = "pull"
PUSH: Final = "push"
DELETE: Final = "delete"
ANY_ACTION: Final = "*"
REPOSITORY_ACTIONS: Final = (PULL, PUSH, DELETE)

REPOSITORY: Final = "repository"
REGISTRY: Final = "registry"
CATALOG: Final = "catalog"


@dataclass(frozen=True, order=True)
class Access:
    """One action on one resource, e.g. ``Access("repository", "team/app", "pull")``."""

    type: str
    name: str
    action: str

    def as_record(self) -> dict[str, str]:
        """registry:2's shape for the ``detail`` of an UNAUTHORIZED error body."""
        return {"Type": self.type, "Class": "", "Name": self.name, "Action": self.action}


def repository_access(name: str, *actions: str) -> list[Access]:
    return [Access(REPOSITORY, name, action) for action in actions]


CATALOG_ACCESS: Final = Access(REGISTRY, CATALOG, ANY_ACTION)


@dataclass(frozen=True)
class Scope:
    """A resource and the actions asked for or granted on it."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def claim(self) -> dict[str, Any]:
        """The entry of a token's ``access`` claim."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(text: str) -> Scope | None:
    """Parse ``type[(class)]:name:action,action``; None when malformed.

    The name may itself contain ``:`` (a registry host with a port), so the type ends at
    the first colon and the actions start after the last one.
    """
    kind, sep, rest = text.partition(":")
    name, sep2, actions_text = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    if "(" in kind:  # "repository(plugin)": the resource class is not part of the match
        kind = kind.split("(", 1)[0]
    actions = tuple(dict.fromkeys(a.strip() for a in actions_text.split(",") if a.strip()))
    if not actions or any(c in text for c in ' "\\\r\n\t'):
        return None
    return Scope(kind, name, actions)


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Every well-formed scope in ``values``; each value may hold several, space-separated."""
    scopes: list[Scope] = []
    for value in values:
        for part in value.split():
            scope = parse_scope(part)
            if scope is not None:
                scopes.append(scope)
    return scopes


def scopes_of(required: Iterable[Access]) -> list[Scope]:
    """Group accesses by resource, keeping the order of first appearance."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for access in required:
        actions = grouped.setdefault((access.type, access.name), [])
        if access.action not in actions:
            actions.append(access.action)
    return [Scope(kind, name, tuple(actions)) for (kind, name), actions in grouped.items()]


class AccessSet:
    """What a credential grants, for fast membership tests (``*`` grants every action)."""

    def __init__(self, scopes: Iterable[Scope] = ()) -> None:
        self._actions: dict[tuple[str, str], frozenset[str]] = {}
        for scope in scopes:
            key = (scope.type, scope.name)
            self._actions[key] = self._actions.get(key, frozenset()) | frozenset(scope.actions)

    def allows(self, access: Access) -> bool:
        actions = self._actions.get((access.type, access.name))
        return actions is not None and (access.action in actions or ANY_ACTION in actions)

    def __len__(self) -> int:
        return len(self._actions)

    @classmethod
    def from_claim(cls, claim: object) -> AccessSet:
        """The ``access`` claim of a token; malformed entries grant nothing."""
        scopes: list[Scope] = []
        if isinstance(claim, list):
            for entry in claim:
                scope = _scope_from_claim(entry)
                if scope is not None:
                    scopes.append(scope)
        return cls(scopes)


def _scope_from_claim(entry: object) -> Scope | None:
    if not isinstance(entry, Mapping):
        return None
    kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
    if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
        return None
    return Scope(kind, name, tuple(a for a in actions if isinstance(a, str)))
