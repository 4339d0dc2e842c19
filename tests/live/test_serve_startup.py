"""Starting ``dockyard serve`` for real: inmemory storage serves from one process, and a port
in use or an unusable storage directory stops it with one line naming the key (no
traceback, status 1) before anything is changed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import REPO_ROOT, RegistryServer, free_port, write_config

ROOT_KEY = "storage.filesystem.rootdirectory"


def serve(config: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``dockyard serve CONFIG`` to its end; stdout and stderr together."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "dockyard", "serve", str(config)],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert "Traceback" not in result.stdout, result.stdout
    assert result.stdout.splitlines() == [line]
    assert result.returncode == 1


def test_inmemory_storage_serves_from_one_process(tmp_path: Path) -> None:
    server = RegistryServer("dockyard", tmp_path)
    server.config.write_text(
        f"version: 0.1\nstorage:\n  inmemory:\nhttp:\n  addr: 127.0.0.1:{server.port}\n"
    )
    server.start()
    try:
        data = os.urandom(100_000)
        assert server.get_blob("memory/app", server.push_blob("memory/app", data)).body == data
        catalog = server.request("GET", "/v2/_catalog").json()
        assert catalog == {"repositories": ["memory/app"]}
        assert server.worker_pids() == []
        assert "inmemory storage: served by 1 worker, this process" in server.log_text()
    finally:
        server.stop()


def test_a_port_in_use_is_one_line_before_any_migration(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yml", store=tmp_path / "store", port=port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = serve(config)
    assert_one_line(
        result, f"Error: http.addr: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert not (tmp_path / "store" / "dockyard.db").exists()


def test_a_debug_port_in_use_is_one_line(tmp_path: Path) -> None:
    debug = free_port()
    extra = f"  debug:\n    addr: 127.0.0.1:{debug}\n    prometheus:\n      enabled: true\n"
    config = write_config(
        tmp_path / "config.yml", store=tmp_path / "store", port=free_port(), extra=extra
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", debug))
        taken.listen()
        result = serve(config)
    assert_one_line(
        result,
        f"Error: http.debug.addr: cannot listen on 127.0.0.1:{debug}: address already in use",
    )
    assert not (tmp_path / "store" / "dockyard.db").exists()


def test_a_rootdirectory_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.write_text("not a directory\n")
    config = write_config(tmp_path / "config.yml", store=store, port=free_port())
    assert_one_line(serve(config), f"Error: {ROOT_KEY}: {store} is a file, not a directory")


@pytest.fixture
def unprivileged() -> Iterator[tuple[tuple[str, ...], Path]]:
    """A command prefix that runs without the right to write into a directory we own,
    and such a directory (readable by everyone). As root: ``setpriv`` to nobody."""
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux) to drop privileges")
        prefix = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    directory = Path(tempfile.mkdtemp(prefix="dockyard-unwritable-"))
    try:
        yield prefix, directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def readonly_setup(directory: Path, store: Path) -> Path:
    """The config, readable by everyone, in ``directory``, which then loses its write bits."""
    config = write_config(directory / "config.yml", store=store, port=free_port())
    config.chmod(0o644)
    directory.chmod(0o555)
    return config


def test_a_rootdirectory_that_cannot_be_created_is_one_line(
    unprivileged: tuple[tuple[str, ...], Path],
) -> None:
    prefix, directory = unprivileged
    store = directory / "store"
    config = readonly_setup(directory, store)
    assert_one_line(
        serve(config, prefix), f"Error: {ROOT_KEY}: cannot create {store}: permission denied"
    )


def test_a_rootdirectory_that_cannot_be_written_is_one_line(
    unprivileged: tuple[tuple[str, ...], Path],
) -> None:
    prefix, directory = unprivileged
    config = readonly_setup(directory, directory)
    assert_one_line(
        serve(config, prefix), f"Error: {ROOT_KEY}: cannot write to {directory}: permission denied"
    )
