"""What replication needs from the configuration, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from dockyard.sync.rules import SyncRules


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    tls_verify: bool = True
    ca_file: str | None = None


@dataclass(frozen=True)
class Rule:
    """``destinations``: the enabled ones only."""

    name: str
    destinations: tuple[str, ...]
    filters: SyncRules
    on_push: bool = True
    interval: timedelta | None = None
    deletes: bool = False

    def selects(self, repository: str, tag: str | None) -> bool:
        """Whether the rule copies ``repository:tag`` (a repository alone: ``tag`` None)."""
        if not self.filters.wants_repository(repository):
            return False
        return tag is None or self.filters.wants_tag(repository, tag)


@dataclass(frozen=True)
class ReplicationSettings:
    destinations: tuple[Destination, ...]
    rules: tuple[Rule, ...]
    retries: int = 5
    backoff_initial: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(minutes=5)
    interval: float = 2.0  # seconds between looks at the queue
    keep_done: timedelta = timedelta(hours=24)

    def backoff(self, failures: int) -> timedelta:
        """The wait after the ``failures``-th failure in a row: ``backoff_initial``,
        doubled each time, at most ``backoff_max``."""
        wait: timedelta = self.backoff_initial * (2 ** min(max(failures - 1, 0), 32))
        return wait if wait < self.backoff_max else self.backoff_max

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)
