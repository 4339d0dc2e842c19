"""A registry with notifications on, in this process, over each database; and the
webhook receiver it notifies."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.api.request_id import request_id_middleware
from dockyard.app import open_registry
from dockyard.config import load_config
from dockyard.notify_setup import with_notifications
from dockyard.registry.service import Registry
from tests.api.helpers import Client
from tests.notify.receiver import WAIT, Receiver


@dataclass
class CountingObserver:
    """Counts what the notifications report, as metrics would."""

    queued_events: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    dropped_events: Counter[str] = field(default_factory=Counter)
    depths: dict[str, int] = field(default_factory=dict)

    def queued(self, endpoint: str, count: int) -> None:
        self.queued_events[endpoint] += count

    def delivered(self, endpoint: str, status: int) -> None:
        self.answers[(endpoint, status)] += 1

    def failed(self, endpoint: str, status: int | None) -> None:
        self.answers[(endpoint, status)] += 1

    def pending(self, endpoint: str, depth: int) -> None:
        self.depths[endpoint] = depth

    def dropped(self, endpoint: str, count: int) -> None:
        self.dropped_events[endpoint] += count


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


def config_text(database_url: str, notifications: str, outbox: str = "") -> str:
    return (
        "version: 0.1\n"
        "storage:\n  inmemory:\n  delete:\n    enabled: true\n"
        f"database:\n  url: {database_url}\n"
        "http:\n  addr: 127.0.0.1:5000\n"
        f"notifications:\n{notifications}"
        f"outbox:\n  interval: 100ms\n{outbox}"
    )


def endpoint(receiver: Receiver, name: str = "hook", extra: str = "") -> str:
    return (
        f"    - name: {name}\n"
        f"      url: {receiver.url}\n"
        "      headers:\n        Authorization: [Bearer t0ken]\n"
        "      threshold: 2\n      backoff: 200ms\n" + extra
    )


@dataclass
class Served:
    client: Client
    registry: Registry
    observer: CountingObserver


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, text: str) -> AsyncIterator[Served]:
    """The registry of config ``text``, with notifications wired as ``serve`` wires them."""
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    loaded = load_config(path, {})
    assert loaded.warnings == []
    registry = await open_registry(loaded.config)
    observer = CountingObserver()
    notifications = with_notifications(loaded.config, registry, observer)
    app = build_app(registry, outer_middlewares=[request_id_middleware()])
    if notifications is not None:
        app.cleanup_ctx.append(notifications.deliver)
    async with TestClient(TestServer(app)) as client:
        yield Served(client, registry, observer)


async def drained(served: Served) -> None:
    """Wait until the outbox is empty (a guard against hanging, not a timing check)."""
    async with asyncio.timeout(WAIT):
        while await served.registry.metadata.count("notification_outbox"):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
