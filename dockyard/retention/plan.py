"""What one rule removes from one repository, decided from a snapshot (no I/O).

Tags first: a tag goes when the rule removes tags and it is kept by nothing (a
``keeptags`` pattern, an immutable-tag rule, its place among the ``keeplast`` newest of
the removable tags, or a push more recent than ``olderthan``). Then manifests: with
``untaggedolderthan``, a manifest goes when, once those tags are gone, nothing keeps it.
What keeps a manifest: a tag; being wanted (pushed, tagged, referenced by a pushed index)
within ``untaggedolderthan``; being a child of a kept index; being a referrer
(``subject``) of a kept manifest. Manifests are listed parents first, so that each
deletion finds nothing referencing what it deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dockyard.metadata.retention_queries import ManifestRow, RepositorySnapshot, TagRow
from dockyard.retention.policy import ImmutableTags, RetentionRule


@dataclass(frozen=True)
class RepositoryPlan:
    name: str
    rule: RetentionRule
    tags: tuple[TagRow, ...]
    manifests: tuple[ManifestRow, ...]
    #: the digest each removed tag pointed at, for reports
    digests: dict[int, str]
    #: the untagged-manifest cutoff the deletions re-check
    wanted_before: datetime | None


def plan_repository(
    snapshot: RepositorySnapshot, rule: RetentionRule, immutable: ImmutableTags, now: datetime
) -> RepositoryPlan:
    removed_tags = _tags_to_remove(snapshot, rule, immutable, now)
    gone = {tag.name for tag in removed_tags}
    kept_tags = [tag for tag in snapshot.tags if tag.name not in gone]
    wanted_before = None if rule.untagged_older_than is None else now - rule.untagged_older_than
    manifests: tuple[ManifestRow, ...] = ()
    if wanted_before is not None:
        manifests = _manifests_to_remove(snapshot, kept_tags, wanted_before)
    digests = {row.id: row.digest for row in snapshot.manifests}
    return RepositoryPlan(snapshot.name, rule, removed_tags, manifests, digests, wanted_before)


def _tags_to_remove(
    snapshot: RepositorySnapshot, rule: RetentionRule, immutable: ImmutableTags, now: datetime
) -> tuple[TagRow, ...]:
    if not rule.removes_tags:
        return ()
    removable = [
        tag
        for tag in snapshot.tags
        if not rule.keeps_by_pattern(tag.name)
        and immutable.protecting(snapshot.name, tag.name) is None
    ]
    # Newest first; ties by name, so that the outcome does not depend on row order.
    removable.sort(key=lambda tag: tag.name)
    removable.sort(key=lambda tag: tag.pushed_at, reverse=True)
    candidates = removable[rule.keep_last or 0 :]
    if rule.tags_older_than is not None:
        cutoff = now - rule.tags_older_than
        candidates = [tag for tag in candidates if tag.pushed_at < cutoff]
    return tuple(sorted(candidates, key=lambda tag: tag.name))


def _manifests_to_remove(
    snapshot: RepositorySnapshot, kept_tags: list[TagRow], wanted_before: datetime
) -> tuple[ManifestRow, ...]:
    by_digest = {row.digest: row for row in snapshot.manifests}
    children: dict[int, list[str]] = {}
    for parent, child in snapshot.children:
        children.setdefault(parent, []).append(child)
    referrers: dict[str, list[ManifestRow]] = {}
    for row in snapshot.manifests:
        if row.subject is not None:
            referrers.setdefault(row.subject, []).append(row)
    tagged = {tag.manifest_id for tag in kept_tags}
    roots = [
        row for row in snapshot.manifests if row.id in tagged or row.wanted_at >= wanted_before
    ]
    kept: set[int] = set()
    pending = list(roots)
    while pending:
        row = pending.pop()
        if row.id in kept:
            continue
        kept.add(row.id)
        pending += [by_digest[d] for d in children.get(row.id, ()) if d in by_digest]
        pending += referrers.get(row.digest, [])
    doomed = [row for row in snapshot.manifests if row.id not in kept]
    return _parents_first(doomed, children)


def _parents_first(
    doomed: list[ManifestRow], children: dict[int, list[str]]
) -> tuple[ManifestRow, ...]:
    """``doomed`` ordered so that every index comes before the children it references."""
    ids = {row.digest: row.id for row in doomed}
    waiting = {row.id: 0 for row in doomed}
    for row in doomed:
        for child in children.get(row.id, ()):
            if child in ids:
                waiting[ids[child]] += 1
    by_id = {row.id: row for row in doomed}
    ready = [row.id for row in doomed if waiting[row.id] == 0]
    ordered: list[ManifestRow] = []
    while ready:
        current = ready.pop(0)
        ordered.append(by_id[current])
        for child in children.get(current, ()):
            if child in ids:
                waiting[ids[child]] -= 1
                if waiting[ids[child]] == 0:
                    ready.append(ids[child])
    return tuple(ordered)
