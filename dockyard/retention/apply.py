"""Running the retention rules against the metadata store: ``dockyard retention`` and the
round the scheduled collection runs (:func:`apply_retention`).

Deletions are the store's guarded ones: a tag goes only if it was not pushed since it was
planned, a manifest only if it is still untagged, unreferenced and unwanted. What loses
its last reference that way is left for garbage collection; no blob bytes are deleted here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dockyard.metadata.store import MetadataStore
from dockyard.retention.plan import RepositoryPlan, plan_repository
from dockyard.retention.policy import RetentionPolicy

log = logging.getLogger("dockyard.retention")

# Called after each repository: (repositories done, repositories in all, name).
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Removal:
    """One tag or untagged manifest a rule removes (or, in a dry run, would remove)."""

    repository: str
    kind: str  # "tag" or "manifest"
    reference: str  # the tag, or the manifest's digest
    digest: str
    rule: str
    since: datetime  # the tag's push, the manifest's last use
    #: False when the deletion found it changed since it was planned (kept)
    done: bool = True


@dataclass
class RetentionReport:
    """What a run removed; the numbers a metrics hook counts
    (``dockyard_retention_runs_total``, ``dockyard_retention_deleted_tags_total``)."""

    dry_run: bool
    repositories: int = 0
    removals: list[Removal] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def deleted_tags(self) -> int:
        return sum(1 for r in self.removals if r.kind == "tag" and r.done)

    @property
    def deleted_manifests(self) -> int:
        return sum(1 for r in self.removals if r.kind == "manifest" and r.done)

    @property
    def kept_changed(self) -> int:
        """Planned removals skipped because a push changed them meanwhile."""
        return sum(1 for r in self.removals if not r.done)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        line = (
            f"retention {verb} {_count(self.deleted_tags, 'tag')} and "
            f"{_count(self.deleted_manifests, 'untagged manifest')} in "
            f"{_count(self.repositories, 'repository', 'repositories')} "
            f"({self.seconds:.2f}s)"
        )
        if self.kept_changed:
            line += f"; kept {self.kept_changed} that changed since they were planned"
        return line


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else (many or one + 's')}"


async def apply_retention(
    metadata: MetadataStore,
    policy: RetentionPolicy,
    dry_run: bool,
    *,
    repositories: Sequence[str] | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> RetentionReport:
    """Apply ``policy`` to every repository (or to ``repositories``); with ``dry_run``
    only report. Repositories no rule matches are left alone."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    report = RetentionReport(dry_run=dry_run)
    names = (
        list(repositories)
        if repositories is not None
        else await metadata.list_repositories(None, None)
    )
    for done, name in enumerate(names, start=1):
        rule = policy.rule_for(name)
        snapshot = None if rule is None else await metadata.repository_snapshot(name)
        if rule is not None and snapshot is not None:
            report.repositories += 1
            plan = plan_repository(snapshot, rule, policy.immutable, now)
            report.removals += await _carry_out(metadata, plan, dry_run)
        if progress is not None:
            progress(done, len(names), name)
    report.seconds = time.monotonic() - started
    return report


#: Deletions per transaction: few enough that a push waits at most a few milliseconds.
BATCH = 100


async def _carry_out(metadata: MetadataStore, plan: RepositoryPlan, dry_run: bool) -> list[Removal]:
    removals = []
    label = plan.rule.label
    for start in range(0, len(plan.tags), BATCH):
        batch = plan.tags[start : start + BATCH]
        deleted = (
            {tag.name for tag in batch}
            if dry_run
            else await metadata.delete_tags_unless_pushed(plan.name, batch)
        )
        removals += [
            Removal(
                plan.name,
                "tag",
                tag.name,
                plan.digests.get(tag.manifest_id, ""),
                label,
                tag.pushed_at,
                tag.name in deleted,
            )
            for tag in batch
        ]
    if plan.wanted_before is None:
        return removals
    for start in range(0, len(plan.manifests), BATCH):
        rows = plan.manifests[start : start + BATCH]
        gone = (
            {row.id for row in rows}
            if dry_run
            else await metadata.delete_untagged_manifests(
                plan.name, [row.id for row in rows], plan.wanted_before
            )
        )
        removals += [
            Removal(
                plan.name, "manifest", row.digest, row.digest, label, row.wanted_at, row.id in gone
            )
            for row in rows
        ]
    return removals


async def scheduled_retention(
    metadata: MetadataStore, policy: RetentionPolicy
) -> RetentionReport | None:
    """One scheduled round, for the collector's loop to call before each collection (under
    its lease): the rules applied (only reported with ``retention.dryrun``) and a log line
    when something was, or would be, removed. None when there are no rules."""
    if not policy.rules:
        return None
    report = await apply_retention(metadata, policy, policy.dry_run)
    if report.removals:
        log.info("%s", report.summary())
    return report
