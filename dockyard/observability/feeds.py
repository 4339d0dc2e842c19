"""What other capabilities report, as plain calls: the wiring hooks these to their
callbacks (the collector's report, the notification deliverer's observer), so that no
capability imports the metrics library.

Each call is cheap and safe from any process; counts from every worker add up in one
scrape.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from dockyard.observability import metrics

# registry:2's values of ``registry_notifications_events_total{type}``.
EVENT_TYPES: Final = ("Events", "Successes", "Failures", "Errors")


def gc_finished(deleted_manifests: int, deleted_blobs: int, freed_bytes: int) -> None:
    """One garbage-collection run ended, having deleted these."""
    metrics.GC_RUNS.inc()
    metrics.GC_DELETED_MANIFESTS.inc(max(deleted_manifests, 0))
    metrics.GC_DELETED_BLOBS.inc(max(deleted_blobs, 0))
    metrics.GC_FREED_BYTES.inc(max(freed_bytes, 0))


def retention_finished(deleted_tags: int) -> None:
    """One retention run ended, having deleted ``deleted_tags`` tags."""
    metrics.RETENTION_RUNS.inc()
    metrics.RETENTION_DELETED_TAGS.inc(max(deleted_tags, 0))


def notification_event(endpoint: str, kind: str, count: int = 1) -> None:
    """registry:2's event counter: ``kind`` is Events (queued), Successes, Failures
    (the endpoint answered an error) or Errors (it could not be reached)."""
    if kind not in EVENT_TYPES:
        raise ValueError(f"kind must be one of {', '.join(EVENT_TYPES)}")
    metrics.NOTIFICATION_EVENTS.labels(kind, endpoint).inc(count)


def notification_status(endpoint: str, status: int) -> None:
    """An endpoint answered a delivery with ``status`` (labelled ``200 OK``, as registry:2
    labels it)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    code = f"{status} {reason}".strip()
    metrics.NOTIFICATION_STATUS.labels(code, endpoint).inc()


def notification_pending(endpoint: str, depth: int) -> None:
    """Events waiting for ``endpoint`` now (the outbox's depth)."""
    metrics.NOTIFICATION_PENDING.labels(endpoint).set(depth)


def notification_dropped(endpoint: str, count: int = 1) -> None:
    """Events given up on (queue full, or retries exhausted)."""
    metrics.NOTIFICATIONS_DROPPED.labels(endpoint).inc(count)


def endpoints_configured(endpoints: list[str]) -> None:
    """Make every endpoint's series exist (at 0) before its first event."""
    for endpoint in endpoints:
        for kind in EVENT_TYPES:
            metrics.NOTIFICATION_EVENTS.labels(kind, endpoint)
        metrics.NOTIFICATIONS_DROPPED.labels(endpoint)
        metrics.NOTIFICATION_PENDING.labels(endpoint).set(0)


class NotificationCounter:
    """The notification deliverer's observer (``dockyard.notify.observer``), counted in
    registry:2's families."""

    def queued(self, endpoint: str, count: int) -> None:
        notification_event(endpoint, "Events", count)

    def delivered(self, endpoint: str, status: int) -> None:
        notification_event(endpoint, "Successes")
        notification_status(endpoint, status)

    def failed(self, endpoint: str, status: int | None) -> None:
        notification_event(endpoint, "Errors" if status is None else "Failures")
        if status is not None:
            notification_status(endpoint, status)

    def pending(self, endpoint: str, depth: int) -> None:
        notification_pending(endpoint, depth)

    def dropped(self, endpoint: str, count: int) -> None:
        notification_dropped(endpoint, count)
