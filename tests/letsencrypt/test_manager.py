"""The start-up choice of CertificateManager with a CA that cannot be reached (a closed
port on 127.0.0.1): a cached certificate is used while it is valid, and nothing else is."""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.letsencrypt.cache import CacheContents, CacheFile
from dockyard.letsencrypt.issuer import IssueError
from dockyard.letsencrypt.manager import CertificateManager
from tests.e2e.server import free_port

from .certificates import NOW, certificate

HOSTS = ("registry.example",)


@contextlib.asynccontextmanager
async def no_responder() -> AsyncIterator[None]:
    yield


def manager(tmp_path: Path) -> CertificateManager:
    dead = f"https://127.0.0.1:{free_port()}/dir"
    return CertificateManager(CacheFile(tmp_path / "le.json"), dead, HOSTS, None)


def test_a_certificate_not_due_is_used_without_the_ca(tmp_path: Path) -> None:
    cached = certificate()
    chosen = manager(tmp_path)
    chosen.cache.write(CacheContents(certificate=cached))
    assert chosen.at_start(no_responder) == cached


def test_a_due_certificate_is_served_while_the_ca_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    due = certificate(days=3, not_before=NOW - datetime.timedelta(days=2, hours=12))
    chosen = manager(tmp_path)
    chosen.cache.write(CacheContents(certificate=due))
    with caplog.at_level(logging.WARNING, "dockyard.letsencrypt"):
        assert chosen.at_start(no_responder) == due
    assert "could not renew the certificate (cannot reach the ACME directory" in caplog.text
    # the account key was kept for the next attempt
    assert chosen.cache.read().account_key_pem is not None


def test_without_a_valid_certificate_the_start_fails(tmp_path: Path) -> None:
    chosen = manager(tmp_path)
    expired = certificate(days=1, not_before=NOW - datetime.timedelta(days=2))
    other_host = certificate(hosts=("other.example",))
    for cached in (None, expired, other_host):
        chosen.cache.write(CacheContents(certificate=cached))
        with pytest.raises(IssueError, match="cannot reach the ACME directory https://127"):
            chosen.at_start(no_responder)
