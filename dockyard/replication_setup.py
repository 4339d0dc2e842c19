"""Wiring of replication: the ``replication`` section read into
:mod:`dockyard.replication`'s settings, the use cases wrapped to queue jobs on push, and
the replicator each worker runs. With no rule that has an enabled destination, nothing
is wrapped and nothing runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from dockyard.config import Config
from dockyard.metadata.leases import Leases
from dockyard.registry.service import Registry
from dockyard.replication.delivery import Replicator, replicating_in_background
from dockyard.replication.recorder import JobRecorder
from dockyard.replication.settings import Destination, ReplicationSettings, Rule
from dockyard.replication.source import LocalSource
from dockyard.replication.wrappers import JobRecording, replicating


def replication_settings(config: Config) -> ReplicationSettings:
    section = config.replication
    return ReplicationSettings(
        destinations=tuple(
            Destination(
                name=d.name,
                url=d.url,
                username=d.username,
                password=d.password,
                token=d.token,
                tls_verify=d.tlsverify,
                ca_file=d.cafile,
            )
            for d in section.destinations
        ),
        rules=tuple(
            Rule(
                name=r.name,
                destinations=tuple(section.active_targets(r)),
                filters=r.filters(),
                on_push=r.onpush,
                interval=r.interval,
                deletes=r.deletes,
            )
            for r in section.rules
        ),
        retries=section.retries,
        backoff_initial=section.backoff.initial,
        backoff_max=section.backoff.max,
        interval=section.interval.total_seconds(),
        keep_done=section.keepdone,
    )


@dataclass(frozen=True)
class Replication:
    replicator: Replicator

    async def run(self, _app: web.Application) -> AsyncIterator[None]:
        """The application's cleanup context: replicate while the worker serves."""
        async with replicating_in_background(self.replicator):
            yield


def with_replication(config: Config, registry: Registry) -> Replication | None:
    """Wrap ``registry``'s use cases to queue jobs on push, and return what runs them
    (None, and nothing wrapped, when replication is off). The replicator reads the use
    cases as they were before: its reads are not pulls that notifications report."""
    if not config.replication.enabled:
        return None
    settings = replication_settings(config)
    source = LocalSource(registry.use_cases)
    queued = asyncio.Event()
    registry.use_cases = replicating(
        registry.use_cases, JobRecording(JobRecorder(settings), queued)
    )
    leases = Leases(registry.metadata.engine)
    return Replication(Replicator(registry.metadata, leases, settings, source, queued))
