"""``http.debug``: the debug server beside the registry port (Distribution's keys).

``addr`` turns it on; it serves ``/debug/health`` (and Dockyard's liveness and readiness
probes) and, with ``prometheus.enabled``, the metrics at ``prometheus.path``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard.config.http_syntax import normalize_prefix, split_host_port
from dockyard.observability.debug_paths import (
    DEFAULT_METRICS_PATH,
    HEALTH_PATH,
    LIVE_PATH,
    READY_PATH,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusConfig(_Section):
    enabled: bool = False
    path: str = DEFAULT_METRICS_PATH

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_METRICS_PATH
        if isinstance(value, str):
            path = normalize_prefix(value.strip()) or "/"
            if path in (HEALTH_PATH, LIVE_PATH, READY_PATH):
                raise ValueError(f"{path} is the debug server's health endpoint")
            return path
        return value


class DebugConfig(_Section):
    """``http.debug``: off unless ``addr`` is set, as in Distribution."""

    addr: str | None = None
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)

    @field_validator("addr", mode="before")
    @classmethod
    def _addr(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            split_host_port(value)
        return value

    @property
    def enabled(self) -> bool:
        return self.addr is not None

    @property
    def metrics(self) -> bool:
        """Whether metrics are collected and served (the debug server and Prometheus on)."""
        return self.addr is not None and self.prometheus.enabled

    def bind(self) -> tuple[str, int]:
        """The (host, port) to listen on; an empty host means every IPv4 interface."""
        assert self.addr is not None
        host, port = split_host_port(self.addr)
        return host or "0.0.0.0", port
