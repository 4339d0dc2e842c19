"""``replication`` (Dockyard's own top-level section): the registries that images are
copied to (``destinations``), which images go where and when (``rules``), and how a
failed copy is retried (``retries``, ``backoff``). See docs/replication.md."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from dockyard.config.durations import Duration, PositiveDuration, longer_than_zero
from dockyard.sync.rules import SyncRules


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", value):
        raise ValueError(
            f"{value!r}: a name of letters, digits, '.', '_' and '-' (at most 40), "
            "starting with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(_name)]


class DestinationConfig(_Section):
    """A registry images are replicated to: any OCI registry (Dockyard, registry:2, ...)."""

    name: Name
    url: str
    username: str | None = None
    password: str | None = None
    # A Bearer token sent as it is (instead of username and password).
    token: str | None = None
    tlsverify: bool = True
    cafile: str | None = None
    disabled: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip().rstrip("/")
        match = re.fullmatch(r"(https?)://([^/\s]+)", text)
        if match is None:
            raise ValueError(
                f"{value!r}: the registry's base URL, http(s)://host[:port] "
                "(no path: repositories keep their names)"
            )
        return text

    @model_validator(mode="after")
    def _one_credential(self) -> DestinationConfig:
        if self.token and (self.username or self.password):
            raise ValueError(f"destination {self.name!r}: set username/password or token, not both")
        if self.password and not self.username:
            raise ValueError(f"destination {self.name!r}: a password needs a username")
        return self


def _globs(globs: list[str]) -> list[str]:
    for glob in globs:
        if not glob.strip() or any(c.isspace() for c in glob):
            raise ValueError(f"{glob!r} is not a repository glob")
    return globs


def _pattern(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
    return pattern


class RuleConfig(_Section):
    """Which images (``repositories`` globs, ``tags`` regex, ``exclude`` regex: the
    filters of ``dockyard sync``) go to which destinations, on push and/or every
    ``interval``; ``deletes`` replicates tag and manifest deletions too."""

    name: Name
    destination: str | None = None
    destinations: list[str] = Field(default_factory=list)
    repositories: Annotated[list[str], AfterValidator(_globs)] = Field(default_factory=list)
    tags: Annotated[str | None, AfterValidator(_pattern)] = None
    exclude: Annotated[str | None, AfterValidator(_pattern)] = None
    onpush: bool = True
    interval: PositiveDuration | None = None
    deletes: bool = False

    @model_validator(mode="after")
    def _has_destinations(self) -> RuleConfig:
        if not self.targets():
            raise ValueError(f"rule {self.name!r}: name its destination (or destinations)")
        if not self.onpush and self.interval is None:
            raise ValueError(
                f"rule {self.name!r}: with onpush false, set an interval (or the rule never runs)"
            )
        return self

    def targets(self) -> list[str]:
        """The destination names, ``destination`` first, each once."""
        names = ([self.destination] if self.destination else []) + self.destinations
        return list(dict.fromkeys(names))

    def filters(self) -> SyncRules:
        return SyncRules(include=tuple(self.repositories), tags=self.tags, exclude=self.exclude)


class BackoffConfig(_Section):
    """The wait before a failed job's next attempt: ``initial``, doubled after each
    failure, at most ``max``."""

    initial: PositiveDuration = timedelta(seconds=5)
    max: PositiveDuration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.max < self.initial:
            raise ValueError("backoff.max must not be shorter than backoff.initial")
        return self


class ReplicationConfig(_Section):
    destinations: list[DestinationConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    # Failed attempts retried after the first; then the job is marked failed (and kept).
    retries: int = Field(default=5, ge=0)
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    # How often a worker looks for jobs that other processes or replicas wrote.
    interval: Annotated[Duration, AfterValidator(longer_than_zero)] = timedelta(seconds=2)
    # How long finished jobs stay countable by ``dockyard replication status``.
    keepdone: PositiveDuration = timedelta(hours=24)

    @model_validator(mode="after")
    def _references(self) -> ReplicationConfig:
        names = [d.name for d in self.destinations]
        for name in {n for n in names if names.count(n) > 1}:
            raise ValueError(f"destinations: the name {name!r} is used twice")
        rules = [r.name for r in self.rules]
        for name in {n for n in rules if rules.count(n) > 1}:
            raise ValueError(f"rules: the name {name!r} is used twice")
        for index, rule in enumerate(self.rules):
            for target in rule.targets():
                if target not in names:
                    known = ", ".join(names) or "none configured"
                    raise ValueError(
                        f"rules[{index}] ({rule.name}): no destination named {target!r} "
                        f"(destinations: {known})"
                    )
        return self

    @property
    def enabled(self) -> bool:
        """Whether any rule has an enabled destination."""
        return any(self.active_targets(rule) for rule in self.rules)

    def destination(self, name: str) -> DestinationConfig:
        return next(d for d in self.destinations if d.name == name)

    def active_targets(self, rule: RuleConfig) -> list[str]:
        """The rule's destinations that are not disabled."""
        return [n for n in rule.targets() if not self.destination(n).disabled]
