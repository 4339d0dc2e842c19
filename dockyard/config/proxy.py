"""``proxy``: registry:2's pull-through cache (``remoteurl``, ``username``, ``password``,
``ttl``) and Dockyard's own ``upstreams``: several upstreams, each for a repository prefix."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dockyard.config.durations import PositiveDuration
from dockyard.retention.policy import RetentionRule

DEFAULT_TTL = timedelta(hours=168)


class UpstreamConfig(BaseModel):
    """One upstream: repositories under ``prefix`` (``docker.io`` matches ``docker.io/...``
    and the ``ns=docker.io`` query parameter) are read-only mirrors of ``remoteurl``.
    ``stripprefix`` drops the prefix from the name asked upstream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(min_length=1)
    remoteurl: str = Field(min_length=1)
    username: str | None = None
    password: str | None = None
    ttl: PositiveDuration = DEFAULT_TTL
    stripprefix: bool = False

    @model_validator(mode="after")
    def _prefix_clean(self) -> UpstreamConfig:
        if self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"proxy.upstreams prefix {self.prefix!r}: no leading or trailing /")
        return self


class ProxyConfig(BaseModel):
    """With ``remoteurl``, the whole registry is a read-only mirror of that upstream, as
    registry:2 is; ``upstreams`` mirror some prefixes and leave the rest local."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remoteurl: str | None = None
    username: str | None = None
    password: str | None = None
    ttl: PositiveDuration = DEFAULT_TTL
    upstreams: list[UpstreamConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way(self) -> ProxyConfig:
        if self.remoteurl and self.upstreams:
            raise ValueError(
                "set remoteurl (one upstream for every repository) or upstreams "
                "(one per prefix), not both"
            )
        prefixes = [u.prefix for u in self.upstreams]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("proxy.upstreams: each prefix once")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.remoteurl) or bool(self.upstreams)


def expiry_rules(proxy: ProxyConfig) -> tuple[RetentionRule, ...]:
    """Expiry of cached content as retention rules, one per upstream, tried before the
    operator's own: a cached tag fetched (or moved upstream) longer than ``ttl`` ago is
    removed, and so is a cached manifest nothing wanted for ``ttl``; the garbage collector
    then removes the blobs that no manifest uses any more, by reference counts."""
    if proxy.remoteurl:
        return (_expiry("proxy", "**", proxy.ttl),)
    return tuple(
        _expiry(f"proxy.upstreams[{u.prefix}]", f"{u.prefix}/**", u.ttl) for u in proxy.upstreams
    )


def _expiry(label: str, glob: str, ttl: timedelta) -> RetentionRule:
    return RetentionRule(
        label=label, repositories=(glob,), tags_older_than=ttl, untagged_older_than=ttl
    )
