"""``notifications`` (Distribution's webhooks, its keys and defaults) and ``outbox``
(Dockyard's own: how long an undeliverable event is kept, and how many may wait).

Distribution replaces a zero or negative ``timeout``, ``threshold`` or ``backoff`` with its
default; so does Dockyard.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from dockyard.config.durations import Duration, longer_than_zero
from dockyard.config.http_syntax import checked_headers

DEFAULT_TIMEOUT: Final = timedelta(seconds=1)
DEFAULT_THRESHOLD: Final = 10
DEFAULT_BACKOFF: Final = timedelta(seconds=1)

EventAction = Literal["push", "pull", "mount", "delete"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IgnoreConfig(_Section):
    mediatypes: list[str] = Field(default_factory=list)
    actions: list[EventAction] = Field(default_factory=list)


class EndpointConfig(_Section):
    """One of ``notifications.endpoints``: where events are POSTed, and which are not."""

    name: str
    disabled: bool = False
    url: str
    headers: dict[str, list[str]] = Field(default_factory=dict)
    timeout: Duration = DEFAULT_TIMEOUT
    threshold: int = DEFAULT_THRESHOLD
    backoff: Duration = DEFAULT_BACKOFF
    ignoredmediatypes: list[str] = Field(default_factory=list)
    ignore: IgnoreConfig = Field(default_factory=IgnoreConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if len(value) > 255:
            raise ValueError("must be at most 255 characters")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http or https URL, such as https://ci.example.com/hook")
        return value.strip()

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return checked_headers(value)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        return value if value > timedelta(0) else DEFAULT_TIMEOUT

    @field_validator("backoff")
    @classmethod
    def _backoff(cls, value: timedelta) -> timedelta:
        return value if value > timedelta(0) else DEFAULT_BACKOFF

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: int) -> int:
        return value if value > 0 else DEFAULT_THRESHOLD

    def ignored_media_types(self) -> frozenset[str]:
        """``ignoredmediatypes`` and ``ignore.mediatypes`` together, as Distribution reads them."""
        return frozenset(self.ignoredmediatypes) | frozenset(self.ignore.mediatypes)


class EventsConfig(_Section):
    includereferences: bool = False


class NotificationsConfig(_Section):
    events: EventsConfig = Field(default_factory=EventsConfig)
    endpoints: list[EndpointConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        seen: set[str] = set()
        for index, endpoint in enumerate(self.endpoints):
            if endpoint.name in seen:
                raise ValueError(
                    f"endpoints[{index}]: the name {endpoint.name!r} is used twice "
                    "(Dockyard keeps each endpoint's pending events under its name)"
                )
            seen.add(endpoint.name)
        return self

    def enabled_endpoints(self) -> list[EndpointConfig]:
        return [endpoint for endpoint in self.endpoints if not endpoint.disabled]


class OutboxConfig(_Section):
    """Dockyard's own: the bounds of the notification outbox."""

    # Failed deliveries after which an event is dropped; 0: retry until delivered.
    maxattempts: int = Field(default=0, ge=0)
    # Events that may wait per endpoint; beyond, the oldest are dropped.
    maxpending: int = Field(default=100_000, gt=0)
    # How often a worker looks for events that other processes or replicas wrote.
    interval: Annotated[Duration, AfterValidator(longer_than_zero)] = timedelta(seconds=1)
