"""What the notification machinery reports, for metrics to count (the ``metrics``
feature implements it; the default counts nothing).

Distribution's families map onto it: ``registry_notifications_events_total{type,endpoint}``
(``Events`` from :meth:`queued`, ``Successes`` from :meth:`delivered`, ``Failures`` and
``Errors`` from :meth:`failed` with and without a status), ``registry_notifications_status_total
{code,endpoint}`` (the statuses of :meth:`delivered` and :meth:`failed`),
``registry_notifications_pending{endpoint}`` (:meth:`pending`), and Dockyard's
``dockyard_notifications_dropped_total{endpoint}`` (:meth:`dropped`).
"""

from __future__ import annotations

from typing import Protocol


class NotificationObserver(Protocol):
    def queued(self, endpoint: str, count: int) -> None:
        """``count`` events were written to the outbox for ``endpoint``."""

    def delivered(self, endpoint: str, status: int) -> None:
        """The endpoint took an event (a 2xx or 3xx answer)."""

    def failed(self, endpoint: str, status: int | None) -> None:
        """A delivery failed: the endpoint's answer, or None when none came (refused,
        timed out)."""

    def pending(self, endpoint: str, depth: int) -> None:
        """How many events wait for ``endpoint`` now."""

    def dropped(self, endpoint: str, count: int) -> None:
        """``count`` events for ``endpoint`` were given up: the queue was full, their
        attempts ran out, or the endpoint is no longer configured."""


class NoObserver:
    """Counts nothing."""

    def queued(self, endpoint: str, count: int) -> None:
        pass

    def delivered(self, endpoint: str, status: int) -> None:
        pass

    def failed(self, endpoint: str, status: int | None) -> None:
        pass

    def pending(self, endpoint: str, depth: int) -> None:
        pass

    def dropped(self, endpoint: str, count: int) -> None:
        pass
