"""From a change the store made to the replication jobs it asks for.

A push by tag that a rule selects queues a copy of that tag to each of the rule's
destinations. A manifest pushed by digest with a ``subject`` (a signature, an SBOM)
queues a copy of its subject by digest: that brings the new referrer to destinations
that already hold the subject (see :mod:`dockyard.replication.delivery`). With
``deletes``, tag and manifest deletions are queued too. Other changes queue nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from dockyard.metadata.changes import (
    Change,
    ManifestDeleted,
    ManifestPushed,
    ReplicationJob,
    TagDeleted,
)
from dockyard.replication.settings import ReplicationSettings, Rule


def subject_of(payload: bytes) -> str | None:
    """The digest of a (validated) manifest's ``subject``, if it has one."""
    try:
        subject = json.loads(payload).get("subject")
    except (ValueError, AttributeError):
        return None
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None


class JobRecorder:
    """The store's :class:`~dockyard.metadata.changes.ChangeRecorder` for replication."""

    def __init__(self, settings: ReplicationSettings) -> None:
        self._settings = settings

    def events(self, change: Change) -> Sequence[ReplicationJob]:
        if isinstance(change, ManifestPushed):
            if change.tag is not None:
                return self._jobs("copy", change.repository, change.tag, change.tag, push=True)
            subject = subject_of(change.payload)
            if subject is None:
                return []  # an index child or a config-less push: its tag's job brings it
            return self._jobs("copy", change.repository, subject, None, push=True)
        if isinstance(change, TagDeleted):
            return self._jobs("delete", change.repository, change.tag, change.tag, push=False)
        if isinstance(change, ManifestDeleted):
            return self._jobs("delete", change.repository, change.digest, None, push=False)
        return []

    def _jobs(
        self, action: str, repository: str, reference: str, tag: str | None, *, push: bool
    ) -> list[ReplicationJob]:
        jobs = []
        for rule in self._settings.rules:
            if not self._applies(rule, push) or not rule.selects(repository, tag):
                continue
            jobs += [
                ReplicationJob(rule.name, destination, action, repository, reference)
                for destination in rule.destinations
            ]
        return jobs

    @staticmethod
    def _applies(rule: Rule, push: bool) -> bool:
        return rule.on_push if push else rule.deletes
