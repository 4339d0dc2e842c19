"""``health``: periodic checks, with Distribution's keys and defaults, plus a database check.

Every check runs every ``interval`` (default 10s). A check with a ``threshold`` fails only
after that many failures in a row; without one (0), a single failure fails it. While any
check fails, ``/debug/health`` answers 503 and the registry port answers 503 UNAVAILABLE.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard.config.durations import Duration
from dockyard.config.http_syntax import HEADER_NAME, canonical_header, split_host_port

DEFAULT_INTERVAL = timedelta(seconds=10)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _interval_or_default(value: timedelta) -> timedelta:
    """Distribution treats a zero (unset) interval as its 10s default."""
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value or DEFAULT_INTERVAL


class _Periodic(_Section):
    interval: Duration = DEFAULT_INTERVAL

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        return _interval_or_default(value)


class StorageDriverCheckConfig(_Periodic):
    """``health.storagedriver``: a ``stat`` of the storage root."""

    enabled: bool = False
    threshold: int = Field(default=0, ge=0)


class FileCheckConfig(_Periodic):
    """``health.file[]``: fails while the file exists (take a replica out of rotation)."""

    file: str

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class HttpCheckConfig(_Periodic):
    """``health.http[]``: a ``HEAD`` of ``uri`` must answer ``statuscode``."""

    uri: str
    headers: dict[str, list[str]] = Field(default_factory=dict)
    statuscode: int = Field(default=200, ge=0, le=599)
    timeout: Duration = timedelta(0)
    threshold: int = Field(default=0, ge=0)

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("statuscode")
    @classmethod
    def _statuscode(cls, value: int) -> int:
        return value or 200

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if any(any(c in item for c in "\r\n\0") for item in values):
                raise ValueError(f"the value of {name} must not contain line breaks")
        return {canonical_header(name): values for name, values in value.items()}


class TcpCheckConfig(_Periodic):
    """``health.tcp[]``: a TCP connection to ``addr`` must open."""

    addr: str
    timeout: Duration = timedelta(0)
    threshold: int = Field(default=0, ge=0)

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        split_host_port(value.strip())
        return value.strip()


class DatabaseCheckConfig(_Periodic):
    """``health.database`` (Dockyard's own): ``SELECT 1`` on the metadata database."""

    enabled: bool = False
    timeout: Duration = timedelta(seconds=5)
    threshold: int = Field(default=0, ge=0)


class HealthConfig(_Section):
    storagedriver: StorageDriverCheckConfig = Field(default_factory=StorageDriverCheckConfig)
    file: list[FileCheckConfig] = Field(default_factory=list)
    http: list[HttpCheckConfig] = Field(default_factory=list)
    tcp: list[TcpCheckConfig] = Field(default_factory=list)
    database: DatabaseCheckConfig = Field(default_factory=DatabaseCheckConfig)

    @property
    def any(self) -> bool:
        return (
            bool(self.storagedriver.enabled or self.file or self.http or self.tcp)
            or self.database.enabled
        )
