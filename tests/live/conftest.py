"""Fixtures for tests that drive a live ``dockyard serve`` process with raw HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import RegistryServer, write_config

ServerFactory = Callable[..., RegistryServer]


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Starts Dockyard with extra config YAML (and env); stops every server at the end."""
    started: list[RegistryServer] = []

    def start(extra: str = "", env: dict[str, str] | None = None) -> RegistryServer:
        server = RegistryServer("dockyard", tmp_path / f"server{len(started)}", env=env or {})
        server.workdir.mkdir(parents=True)
        write_config(server.config, store=server.store, port=server.port, extra=extra)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
