"""The ``dockyard`` command as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dockyard import __version__


def dockyard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_version_and_help() -> None:
    result = dockyard("--version")
    assert result.returncode == 0 and __version__ in result.stdout
    result = dockyard("--help")
    assert result.returncode == 0
    for command in ("serve", "import", "config"):
        assert command in result.stdout


def test_config_check_prints_effective_config_and_warnings(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "storage:\n"
        "  cache: {blobdescriptor: inmemory}\n"
        f"  filesystem: {{rootdirectory: {tmp_path / 'store'}}}\n"
        "http: {addr: ':5001', secret: hunter2}\n"
    )
    result = dockyard("config", "check", str(config))
    assert result.returncode == 0, result.stderr
    assert "rootdirectory: " + str(tmp_path / "store") in result.stdout
    assert ":5001" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    assert "storage.cache" in result.stderr
    assert str(tmp_path / "store" / "dockyard.db") in result.stderr


def test_config_check_refuses_bad_values(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage: {inmemory: {}}\ncatalog: {maxentries: many}\n")
    result = dockyard("config", "check", str(config))
    assert result.returncode == 1
    assert "catalog.maxentries" in result.stderr


def test_serve_refuses_auth_it_cannot_enforce(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nstorage: {inmemory: {}}\nauth: {htpasswd: {realm: r, path: /etc/htpasswd}}\n"
    )
    result = dockyard("serve", str(config))
    assert result.returncode != 0
    assert "auth" in result.stderr


def test_import_reads_a_config_that_serve_would_refuse(tmp_path: Path) -> None:
    """A registry:2 pull-through cache config cannot be served yet, but its store can be
    imported: the import never serves, so the proxy section is only a warning there."""
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'store'}}}}}\n"
        "proxy: {remoteurl: https://registry-1.docker.io}\n"
    )
    assert dockyard("config", "check", str(config)).returncode == 1
    result = dockyard("import", "--dry-run", str(config))
    assert result.returncode == 0, result.stderr
    assert "proxy" in result.stderr
