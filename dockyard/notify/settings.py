"""What notifications need from the configuration, as plain values (the wiring reads the
``notifications`` and ``outbox`` sections into them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True)
class EndpointSettings:
    """An enabled endpoint: where to POST, with which headers, how patiently, and which
    events it does not want."""

    name: str
    url: str
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: timedelta = timedelta(seconds=1)
    threshold: int = 10
    backoff: timedelta = timedelta(seconds=1)
    ignored_media_types: frozenset[str] = frozenset()
    ignored_actions: frozenset[str] = frozenset()

    def wants(self, action: str, media_type: str) -> bool:
        """Distribution's filter: an ignored action, or an ignored target media type."""
        return action not in self.ignored_actions and media_type not in self.ignored_media_types


@dataclass(frozen=True)
class NotifySettings:
    endpoints: tuple[EndpointSettings, ...]
    include_references: bool = False
    # Failed deliveries after which an event is dropped (0: never).
    max_attempts: int = 0
    # Events that may wait per endpoint; beyond, the oldest are dropped.
    max_pending: int = 100_000
    # How often a process looks for events that others wrote (seconds).
    interval: float = 1.0
    user_agent: str = "dockyard"
