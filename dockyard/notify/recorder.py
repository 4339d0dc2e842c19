"""From what happened to the events each endpoint is sent.

:class:`EventRecorder` is the store's :class:`~dockyard.metadata.changes.ChangeRecorder`
(changes reported inside their transactions) and also describes reads (pulls), which
change nothing. Each event goes, as one outbox row, to every endpoint whose filters let
it through; an event nobody wants writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard.metadata.changes import (
    BlobDeleted,
    BlobMounted,
    BlobPushed,
    Change,
    ManifestDeleted,
    ManifestPushed,
    OutboxEvent,
    TagDeleted,
)
from dockyard.metadata.records import ManifestRecord
from dockyard.notify import events
from dockyard.notify.settings import NotifySettings
from dockyard.registry.requests import current_request

# What stands in for the caller in the events of Dockyard's own jobs. A colon cannot be
# part of a user name (Basic auth splits at it), so no user can be mistaken for them.
GC_ACTOR = "dockyard:gc"
RETENTION_ACTOR = "dockyard:retention"


class EventRecorder:
    def __init__(
        self, settings: NotifySettings, source: events.Source, actor: str | None = None
    ) -> None:
        """``actor``: the job recorded for (garbage collection, retention), for changes
        made outside any request."""
        self._settings = settings
        self._source = source
        self._actor = actor

    def for_job(self, actor: str) -> EventRecorder:
        """The recorder of a job's deletions (``GC_ACTOR``, ``RETENTION_ACTOR``)."""
        return EventRecorder(self._settings, self._source, actor)

    def events(self, change: Change) -> Sequence[OutboxEvent]:
        base = self._base_url()
        if isinstance(change, BlobPushed):
            target = events.blob_target(change.repository, change.digest, change.size, base)
            return self._rows("push", change.repository, [target])
        if isinstance(change, BlobMounted):
            target = events.blob_target(
                change.repository, change.digest, change.size, base, change.source
            )
            return self._rows("mount", change.repository, [target])
        if isinstance(change, ManifestPushed):
            target = events.manifest_target(
                change.repository,
                change.digest,
                change.media_type,
                change.payload,
                change.tag,
                base,
                self._settings.include_references,
            )
            return self._rows("push", change.repository, [target])
        if isinstance(change, ManifestDeleted):
            # As registry:2: the manifest, then each tag that pointed at it.
            targets = [events.deleted_target(change.repository, digest=change.digest)]
            targets += [events.deleted_target(change.repository, tag=tag) for tag in change.tags]
            return self._rows("delete", change.repository, targets)
        if isinstance(change, BlobDeleted):
            target = events.deleted_target(change.repository, digest=change.digest)
            return self._rows("delete", change.repository, [target])
        if isinstance(change, TagDeleted):
            target = events.deleted_target(change.repository, tag=change.tag)
            return self._rows("delete", change.repository, [target])
        raise TypeError(f"unknown change {change!r}")

    def manifest_pulled(
        self, repository: str, record: ManifestRecord, tag: str | None
    ) -> Sequence[OutboxEvent]:
        target = events.manifest_target(
            repository,
            record.digest,
            record.media_type,
            record.payload,
            tag,
            self._base_url(),
            self._settings.include_references,
        )
        return self._rows("pull", repository, [target])

    def blob_pulled(self, repository: str, digest: str, size: int) -> Sequence[OutboxEvent]:
        target = events.blob_target(repository, digest, size, self._base_url())
        return self._rows("pull", repository, [target])

    def _base_url(self) -> str | None:
        request = current_request()
        return None if request is None else request.base_url

    def _rows(
        self, action: str, repository: str, targets: list[dict[str, Any]]
    ) -> list[OutboxEvent]:
        request = current_request()
        rows = []
        for target in targets:
            media_type = target.get("mediaType", "")
            wanted = [e for e in self._settings.endpoints if e.wants(action, media_type)]
            if not wanted:
                continue
            payload = events.encoded(
                events.event(action, target, request, self._source, self._actor)
            )
            rows += [OutboxEvent(e.name, repository, payload) for e in wanted]
        return rows
