"""``retention`` and ``immutabletags`` (Dockyard's own top-level sections): the rules of
:mod:`dockyard.retention`, as the configuration writes them."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dockyard.config.durations import Duration
from dockyard.retention.policy import (
    ImmutableRule,
    ImmutableTags,
    RetentionPolicy,
    RetentionRule,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_globs(globs: list[str]) -> list[str]:
    for glob in globs:
        if not glob.strip() or any(c.isspace() for c in glob):
            raise ValueError(f"{glob!r} is not a repository glob")
    return globs


def _check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
    return patterns


class _RuleConfig(_Section):
    """What every rule has: a name for messages, and the repositories it applies to."""

    name: str | None = None
    repositories: list[str] = Field(min_length=1)

    @field_validator("repositories")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return _check_globs(value)


class RetentionRuleConfig(_RuleConfig):
    """One rule of ``retention.rules`` (see docs/retention.md for its exact meaning)."""

    keeplast: int | None = Field(default=None, ge=0)
    keeptags: list[str] = Field(default_factory=list)
    olderthan: Duration | None = None
    untaggedolderthan: Duration | None = None

    @field_validator("keeptags")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _check_patterns(value)

    @field_validator("olderthan", "untaggedolderthan")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    def rule(self, index: int) -> RetentionRule:
        return RetentionRule(
            label=self.name or f"retention.rules[{index}]",
            repositories=tuple(self.repositories),
            keep_last=self.keeplast,
            keep_tags=tuple(self.keeptags),
            tags_older_than=self.olderthan,
            untagged_older_than=self.untaggedolderthan,
        )


class RetentionConfig(_Section):
    """``retention``: rules per repository glob, the first matching one applies; they
    run with ``dockyard retention`` and with each scheduled collection."""

    dryrun: bool = False
    rules: list[RetentionRuleConfig] = Field(default_factory=list)


class ImmutableRuleConfig(_RuleConfig):
    """One rule of ``immutabletags.rules``."""

    tags: list[str] = Field(min_length=1)

    @field_validator("tags")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _check_patterns(value)

    def rule(self, index: int) -> ImmutableRule:
        return ImmutableRule(
            label=self.name or f"immutabletags.rules[{index}]",
            repositories=tuple(self.repositories),
            tags=tuple(self.tags),
        )


class ImmutableTagsConfig(_Section):
    """``immutabletags``: tags that, once pushed, cannot be moved nor deleted."""

    rules: list[ImmutableRuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_unique(self) -> ImmutableTagsConfig:
        names = [r.name for r in self.rules if r.name]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        return self

    def policy(self) -> ImmutableTags:
        return ImmutableTags(tuple(r.rule(i) for i, r in enumerate(self.rules)))


def retention_policy(
    retention: RetentionConfig,
    immutable: ImmutableTagsConfig,
    first: tuple[RetentionRule, ...] = (),
) -> RetentionPolicy:
    """The policy :func:`dockyard.retention.apply.apply_retention` runs; ``first``: rules
    tried before the configured ones (the pull-through cache's expiry)."""
    return RetentionPolicy(
        rules=first + tuple(r.rule(i) for i, r in enumerate(retention.rules)),
        immutable=immutable.policy(),
        dry_run=retention.dryrun,
    )
