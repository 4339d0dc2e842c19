"""The ``dockyard`` command as a user runs it: a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard import __version__
from tests.e2e.server import RegistryServer, write_config

# The warning a podman/skopeo/buildah user's REGISTRY_AUTH_FILE gets.
AUTH_FILE_WARNING = "REGISTRY_AUTH_FILE: not a configuration override, ignored"


def dockyard(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def clean_environment(**overrides: str) -> dict[str, str]:
    """Our environment without REGISTRY_* (they would be config overrides), plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(overrides)
    return env


def test_version_and_help() -> None:
    result = dockyard("--version")
    assert result.returncode == 0 and __version__ in result.stdout
    result = dockyard("--help")
    assert result.returncode == 0
    for command in ("serve", "import", "export", "config"):
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


def test_a_registry2_pull_through_cache_config_checks_and_its_store_imports(
    tmp_path: Path,
) -> None:
    """registry:2's proxy keys are Dockyard's (docs/mirror.md); its store imports."""
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'store'}}}}}\n"
        "proxy: {remoteurl: https://registry-1.docker.io}\n"
    )
    checked = dockyard("config", "check", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "remoteurl: https://registry-1.docker.io" in checked.stdout
    (tmp_path / "store/docker/registry/v2/repositories/app/_manifests").mkdir(parents=True)
    result = dockyard("import", "--dry-run", str(config))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", [("serve",), ("config", "check")])
def test_usage_shows_config_as_optional(command: tuple[str, ...]) -> None:
    result = dockyard(*command, "--help")
    assert result.returncode == 0, result.stderr
    usage = result.stdout.splitlines()[0]
    assert usage.endswith("[OPTIONS] [CONFIG]"), usage
    assert "--strict" in result.stdout


def test_config_check_without_a_file_checks_the_embedded_defaults(tmp_path: Path) -> None:
    env = clean_environment(REGISTRY_HTTP_ADDR="127.0.0.1:5002")
    result = dockyard("config", "check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rootdirectory: ./data" in result.stdout
    assert "addr: 127.0.0.1:5002" in result.stdout
    assert "enabled: true" in result.stdout  # the defaults' storage.delete.enabled
    assert str(tmp_path / "data" / "dockyard.db") in result.stderr
    assert "configuration is valid" in result.stderr
    assert not (tmp_path / "data").exists()  # checking creates nothing


def test_config_check_with_registry_auth_file_set(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_text("{}")
    env = clean_environment(REGISTRY_AUTH_FILE=str(tmp_path / "auth.json"))
    result = dockyard("config", "check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"warning: {AUTH_FILE_WARNING}" in result.stderr
    assert "podman, skopeo and buildah" in result.stderr
    assert "auth: {}" in result.stdout


def test_serve_starts_with_registry_auth_file_set(tmp_path: Path) -> None:
    """``make run`` in a podman user's shell: REGISTRY_AUTH_FILE is set (the harness strips
    REGISTRY_* from the server's environment, so it is given explicitly)."""
    (tmp_path / "auth.json").write_text("{}")
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    server = RegistryServer("dockyard", tmp_path, env=env)
    write_config(server.config, store=server.store, port=server.port)
    server.start()
    try:
        response = server.request("GET", "/v2/")
        assert response.status == 200  # served, and without authentication
    finally:
        server.stop()
    assert AUTH_FILE_WARNING in server.log_path.read_text()


def test_config_check_strict_fails_on_a_typo_and_lists_every_warning(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabeld: true\nhttp:\n  adr: :5001\n"
    )
    result = dockyard("config", "check", str(config), env=clean_environment())
    assert result.returncode == 0, result.stderr
    assert "did you mean storage.delete.enabled?" in result.stderr
    result = dockyard("config", "check", "--strict", str(config), env=clean_environment())
    assert result.returncode == 1
    assert "2 warnings:" in result.stderr
    assert "storage.delete.enabeld: unknown key, ignored; did you mean" in result.stderr
    assert "http.adr: unknown key, ignored; did you mean http.addr?" in result.stderr
    assert result.stdout == ""  # no effective configuration for an invalid one


def test_config_check_strict_accepts_a_clean_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage:\n  inmemory:\n")
    result = dockyard("config", "check", "--strict", str(config), env=clean_environment())
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stderr


def test_serve_strict_refuses_to_start_on_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage:\n  inmemory:\n  delete:\n    enabeld: true\n")
    env = clean_environment(REGISTRY_AUTH_FILE=str(tmp_path / "auth.json"))
    result = dockyard("serve", "--strict", str(config), env=env)
    assert result.returncode != 0
    assert "strict mode" in result.stderr
    assert "storage.delete.enabeld: unknown key" in result.stderr
    assert AUTH_FILE_WARNING in result.stderr
