"""Wiring of notifications: the ``notifications`` and ``outbox`` sections read into
:mod:`dockyard.notify`'s settings, the use cases wrapped, and the deliverer that each
worker runs. With no enabled endpoint nothing is wrapped and nothing is written."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from dockyard import __version__
from dockyard.config import Config
from dockyard.metadata.changes import recording
from dockyard.metadata.leases import Leases
from dockyard.notify.delivery import Deliverer, delivering
from dockyard.notify.events import Source
from dockyard.notify.notifier import Notifier
from dockyard.notify.observer import NotificationObserver
from dockyard.notify.recorder import EventRecorder
from dockyard.notify.settings import EndpointSettings, NotifySettings
from dockyard.notify.wrappers import notifying
from dockyard.registry.service import Registry


def notify_settings(config: Config) -> NotifySettings | None:
    """What notifications need, or None when no endpoint is enabled."""
    section = config.notifications
    endpoints = tuple(
        EndpointSettings(
            name=e.name,
            url=e.url,
            headers={name: tuple(values) for name, values in e.headers.items()},
            timeout=e.timeout,
            threshold=e.threshold,
            backoff=e.backoff,
            ignored_media_types=e.ignored_media_types(),
            ignored_actions=frozenset(e.ignore.actions),
        )
        for e in section.enabled_endpoints()
    )
    if not endpoints:
        return None
    outbox = config.outbox
    return NotifySettings(
        endpoints=endpoints,
        include_references=section.events.includereferences,
        max_attempts=outbox.maxattempts,
        max_pending=outbox.maxpending,
        interval=outbox.interval.total_seconds(),
        user_agent=f"dockyard/{__version__}",
    )


def source_of(config: Config) -> Source:
    """registry:2's ``source``: this host's name with the port served, and an id for
    this process."""
    _host, port = config.http.bind()
    return Source(f"{socket.gethostname()}:{port}", str(uuid.uuid4()))


@dataclass(frozen=True)
class Notifications:
    """Notifications wired into one worker: what the use-case wrappers share, and the
    deliverer this worker runs."""

    notifier: Notifier
    deliverer: Deliverer

    async def deliver(self, _app: web.Application) -> AsyncIterator[None]:
        """The application's cleanup context: deliver while the worker serves."""
        async with delivering(self.deliverer):
            yield

    def job_recording(self, actor: str) -> contextlib.AbstractContextManager[object]:
        """Record the deletions of a job (``GC_ACTOR``, ``RETENTION_ACTOR``) made inside
        the block: run the job in it, and its transactions call ``record_change``."""
        return recording(self.notifier.recorder.for_job(actor))


def job_recording(
    notifications: Notifications | None, actor: str
) -> contextlib.AbstractContextManager[object]:
    """:meth:`Notifications.job_recording`, or nothing when notifications are off."""
    return contextlib.nullcontext() if notifications is None else notifications.job_recording(actor)


def with_notifications(
    config: Config, registry: Registry, observer: NotificationObserver | None = None
) -> Notifications | None:
    """Wrap ``registry``'s use cases to record events, and return what delivers them
    (None, and nothing wrapped, when no endpoint is enabled)."""
    settings = notify_settings(config)
    if settings is None:
        return None
    recorder = EventRecorder(settings, source_of(config))
    notifier = Notifier(recorder, registry.metadata.append_events, observer)
    registry.use_cases = notifying(registry.use_cases, notifier)
    deliverer = Deliverer(registry.metadata, Leases(registry.metadata.engine), settings, notifier)
    return Notifications(notifier, deliverer)
