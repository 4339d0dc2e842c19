"""Registries for the replication tests: Distribution 2.8.2 destinations and Dockyards
with a ``replication`` section, on SQLite or PostgreSQL, plus the e2e suite's isolated
clients (skopeo, ctr)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401  (fixtures, registered by import)
    _isolated_environ,
    client_env,
    containerd,
    ctr,
    image,
    image_index,
    pytest_runtest_makereport,
    repo,
    skopeo,
)
from tests.e2e.server import REPO_ROOT, RegistryServer, free_port, write_config
from tests.postgres import PostgresServer
from tests.remote.servers import running

# Fast retries for tests: an attempt every 200 ms to 1 s, a look at the queue every 100 ms.
FAST = "  retries: {retries}\n  backoff:\n    initial: 200ms\n    max: 1s\n  interval: 100ms\n"


def replication_section(destinations: dict[str, str], rules: str, retries: int = 30) -> str:
    """A ``replication`` section: destinations by name and URL, the rules as YAML."""
    lines = ["replication:\n  destinations:\n"]
    lines += [f"    - name: {name}\n      url: {url}\n" for name, url in destinations.items()]
    return "".join(lines) + "  rules:\n" + rules + FAST.format(retries=retries)


def dockyard_with(workdir: Path, extra: str, database_url: str | None = None) -> RegistryServer:
    """A Dockyard (not started) with ``extra`` configuration; on ``database_url`` when
    given (PostgreSQL, migrated on start), else SQLite in its store."""
    server = RegistryServer("dockyard", workdir)
    server.store.mkdir(parents=True, exist_ok=True)
    if database_url:
        extra = f"database:\n  url: {database_url}\n  migrate: onstart\n" + extra
    write_config(server.config, store=server.store, port=server.port, extra=extra)
    return server


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The destination every test replicates into: a Distribution 2.8.2."""
    yield from running(RegistryServer("registry2", tmp_path_factory.mktemp("repl-prod")))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite (the file in the Dockyard's store), or a PostgreSQL database of
    the test's own."""
    if request.param == "sqlite":
        yield None
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = asyncio.run(server.acquire())
    try:
        yield url
    finally:
        asyncio.run(server.release(url))


@contextlib.contextmanager
def serving(server: RegistryServer) -> Iterator[RegistryServer]:
    """``server`` started for the block, stopped after it."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def dead_url() -> str:
    """A URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


def replication_status(server: RegistryServer) -> tuple[int, dict[str, object]]:
    """``dockyard replication status --json`` of ``server``'s configuration."""
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "replication", "status", "--json", str(server.config)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def has_manifest(server: RegistryServer, name: str, reference: str) -> bool:
    accept = ",".join(
        [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    return (
        server.request(
            "HEAD", f"/v2/{name}/manifests/{reference}", headers={"Accept": accept}
        ).status
        == 200
    )
