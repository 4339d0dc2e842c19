"""Live registries with credentials for the client and sync tests: Distribution 2.8.2 with
htpasswd, and Dockyard with its own token service (Bearer challenges)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bcrypt

from tests.e2e.server import RegistryServer, write_config

USER, PASSWORD = "syncer", "sync-secret-7"
SERVICE = "dockyard.sync.test"


def write_htpasswd(path: Path) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()
    path.write_text(f"{USER}:$2y${hashed[4:]}\n")
    return path


class CredentialedServer(RegistryServer):
    """Ready once ``GET /v2/`` answers at all: 401 means auth is on."""

    ready_statuses = (200, 401)


def configured(kind: str, workdir: Path, extra: str) -> CredentialedServer:
    server = CredentialedServer(kind, workdir)
    server.store.mkdir(parents=True, exist_ok=True)
    write_config(server.config, store=server.store, port=server.port, extra=extra)
    return server


def htpasswd_registry2(workdir: Path) -> CredentialedServer:
    users = write_htpasswd(workdir / "htpasswd")
    return configured(
        "registry2", workdir, f"auth:\n  htpasswd:\n    realm: sync-test\n    path: {users}\n"
    )


def token_dockyard(workdir: Path, signing_key: Path) -> CredentialedServer:
    """Dockyard issuing its own tokens: USER may do anything, anonymous users nothing."""
    users = write_htpasswd(workdir / "htpasswd")
    return configured(
        "dockyard",
        workdir,
        (
            "auth:\n  token:\n    realm: /auth/token\n"
            f"    service: {SERVICE}\n    issuer: dockyard-sync-test\n"
            f"access:\n  signingkey: {signing_key}\n  htpasswd: {users}\n"
            f"  admins:\n    users: [{USER}]\n"
        ),
    )


def running(server: RegistryServer) -> Iterator[RegistryServer]:
    """Start ``server`` for a fixture's lifetime, and stop it after."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
