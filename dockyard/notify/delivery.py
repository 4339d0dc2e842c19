"""Delivering the outbox: each endpoint's events POSTed one at a time, oldest first, by
one process at a time across workers and replicas.

Every worker runs a :class:`Deliverer`; each round is taken under the ``notifications``
lease (:mod:`dockyard.metadata.leases`), so one process delivers while the others skip
the round. A round starts when this process wrote events, and otherwise every
``outbox.interval`` (for events that other processes and replicas wrote).

An event leaves the outbox only once its endpoint answered 2xx or 3xx: delivery is at
least once (a crash between the answer and the deletion sends it again). Per endpoint,
the events of one repository are sent in the order they were written: when one fails,
the repository's later events wait for it, while other repositories go on. Failures are
paced as by Distribution's breaker: after ``threshold`` failures in a row, the endpoint
gets one attempt per ``backoff``. Dockyard bounds what Distribution does not: an event
that failed ``outbox.maxattempts`` times is dropped, and so are the oldest events of an
endpoint beyond ``outbox.maxpending``; the observer counts what is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
from multidict import CIMultiDict

from dockyard.metadata.leases import Leases
from dockyard.metadata.outbox import PendingEvent
from dockyard.metadata.store import MetadataStore
from dockyard.notify.events import EVENTS_MEDIA_TYPE, envelope
from dockyard.notify.notifier import Notifier
from dockyard.notify.settings import EndpointSettings, NotifySettings

log = logging.getLogger("dockyard.notify")
LEASE: Final = "notifications"
PAGE: Final = 100


class Breaker:
    """Distribution's breaker: after ``threshold`` failures in a row, wait ``backoff``
    after each failure before the next attempt; a success closes it."""

    def __init__(self, threshold: int, backoff: float) -> None:
        self._threshold = threshold
        self._backoff = backoff
        self.failures = 0
        self._last_failure = 0.0

    def success(self) -> None:
        self.failures = 0

    def failure(self, now: float) -> None:
        self.failures += 1
        self._last_failure = now

    def wait(self, now: float) -> float:
        """Seconds until the next attempt may be made (0: now)."""
        if self.failures < self._threshold:
            return 0.0
        return max(0.0, self._last_failure + self._backoff - now)


class Deliverer:
    def __init__(
        self, store: MetadataStore, leases: Leases, settings: NotifySettings, notifier: Notifier
    ) -> None:
        self._store = store
        self._leases = leases
        self._settings = settings
        self._notifier = notifier
        self._observer = notifier.observer
        self._breakers = {
            e.name: Breaker(e.threshold, e.backoff.total_seconds()) for e in settings.endpoints
        }
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Deliver until cancelled."""
        async with aiohttp.ClientSession(
            headers={"User-Agent": self._settings.user_agent}, trust_env=False
        ) as session:
            self._session = session
            while True:
                self._notifier.written.clear()
                try:
                    delay = await self.deliver_round()
                except Exception:
                    log.exception("notifications: delivery round failed")
                    delay = self._settings.interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._notifier.written.wait(), timeout=delay)

    async def deliver_round(self) -> float:
        """One round, if this process holds the lease; seconds until the next is due."""
        async with self._leases.hold(LEASE) as held:
            if not held:
                return self._settings.interval
            pending = await self._store.pending_counts()
            await self._drop_unconfigured(pending)
            delays = await asyncio.gather(
                *(self._deliver_to(e, pending.get(e.name, 0)) for e in self._settings.endpoints)
            )
        return min([self._settings.interval, *delays])

    async def _drop_unconfigured(self, pending: dict[str, int]) -> None:
        configured = {e.name for e in self._settings.endpoints}
        for name in sorted(set(pending) - configured):
            dropped = await self._store.drop_endpoint_events(name)
            if dropped:
                log.warning(
                    "notifications: %d events for endpoint %r dropped: it is no longer "
                    "configured (or is disabled)",
                    dropped,
                    name,
                )
                self._observer.dropped(name, dropped)

    async def _deliver_to(self, endpoint: EndpointSettings, depth: int) -> float:
        """Send what ``endpoint`` is due; seconds until it should be tried again."""
        excess = depth - self._settings.max_pending
        if excess > 0:
            dropped = await self._store.drop_oldest_events(endpoint.name, excess)
            log.warning(
                "notifications: endpoint %r has more than %d events waiting (outbox.maxpending):"
                " the oldest %d dropped",
                endpoint.name,
                self._settings.max_pending,
                dropped,
            )
            self._observer.dropped(endpoint.name, dropped)
            depth -= dropped
        self._observer.pending(endpoint.name, depth)
        breaker = self._breakers[endpoint.name]
        waiting: set[str] = set()  # repositories whose oldest event failed this round
        after = 0
        while True:
            page = await self._store.pending_events(endpoint.name, after, PAGE)
            if not page:
                break
            for event in page:
                after = event.id
                if event.repository in waiting:
                    continue
                wait = breaker.wait(time.monotonic())
                if wait > 0:
                    return wait
                if await self._send(endpoint, event):
                    breaker.success()
                    await self._store.remove_event(event.id)
                    depth -= 1
                else:
                    breaker.failure(time.monotonic())
                    if await self._give_up(endpoint, event):
                        depth -= 1
                    else:
                        waiting.add(event.repository)
                self._observer.pending(endpoint.name, depth)
        return breaker.wait(time.monotonic()) if waiting else self._settings.interval

    async def _give_up(self, endpoint: EndpointSettings, event: PendingEvent) -> bool:
        """Count a failed attempt; True when that was the event's last."""
        limit = self._settings.max_attempts
        if limit and event.attempts + 1 >= limit:
            await self._store.remove_event(event.id)
            log.warning(
                "notifications: event %d for endpoint %r dropped after %d failed attempts "
                "(outbox.maxattempts)",
                event.id,
                endpoint.name,
                limit,
            )
            self._observer.dropped(endpoint.name, 1)
            return True
        await self._store.count_failed_attempt(event.id)
        return False

    async def _send(self, endpoint: EndpointSettings, event: PendingEvent) -> bool:
        assert self._session is not None
        headers = CIMultiDict[str]()
        for name, values in endpoint.headers.items():
            for value in values:
                headers.add(name, value)
        headers["Content-Type"] = EVENTS_MEDIA_TYPE
        timeout = aiohttp.ClientTimeout(total=endpoint.timeout.total_seconds())
        try:
            async with self._session.post(
                endpoint.url,
                data=envelope(event.payload),
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._note_failure(endpoint, f"{type(exc).__name__}: {exc}")
            self._observer.failed(endpoint.name, None)
            return False
        if 200 <= status < 400:  # Distribution takes any 2xx or 3xx
            if self._breakers[endpoint.name].failures:
                log.info("notifications: endpoint %r takes events again", endpoint.name)
            self._observer.delivered(endpoint.name, status)
            return True
        self._note_failure(endpoint, f"answered {status}")
        self._observer.failed(endpoint.name, status)
        return False

    def _note_failure(self, endpoint: EndpointSettings, problem: str) -> None:
        """Log the first failure of a run of them (not every retry)."""
        if not self._breakers[endpoint.name].failures:
            log.warning(
                "notifications: endpoint %r %s; its events wait and are retried",
                endpoint.name,
                problem,
            )


@contextlib.asynccontextmanager
async def delivering(deliverer: Deliverer) -> AsyncIterator[None]:
    """Run ``deliverer`` in the background for the duration of the block."""
    task = asyncio.create_task(deliverer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
