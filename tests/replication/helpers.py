"""Helpers of the replication tests: Dockyards with a ``replication`` section, waiting
for an image to arrive, the status command, byte-for-byte comparison of two registries."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.e2e.clients import Skopeo
from tests.e2e.images import sha256_digest
from tests.e2e.server import REPO_ROOT, RegistryServer, free_port, write_config

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


def replication_status(server: RegistryServer) -> tuple[int, dict[str, Any]]:
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


def assert_same_image(skopeo: Skopeo, src: RegistryServer, dest: RegistryServer,
                      repo: str, tag: str) -> None:  # fmt: skip
    """The manifest bytes are identical at both ends, and so is every blob."""
    raw = skopeo.inspect_raw(src.docker_ref(repo, tag))
    assert skopeo.inspect_raw(dest.docker_ref(repo, tag)) == raw
    config = skopeo.inspect_raw(dest.docker_ref(repo, tag), config=True)
    assert config == skopeo.inspect_raw(src.docker_ref(repo, tag), config=True)
    for layer in skopeo.inspect(dest.docker_ref(repo, tag))["Layers"]:
        there = dest.get_blob(repo, layer)
        assert there.status == 200 and sha256_digest(there.body) == layer
        assert there.body == src.get_blob(repo, layer).body
