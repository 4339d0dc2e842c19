"""Database URLs shown to the operator: one masking, in ``config check`` and in messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.config import masked_url
from dockyard.database import shown_url
from tests.test_cli import clean_environment, dockyard


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+asyncpg://dock:pw0rd@db:5432/d", "postgresql+asyncpg://dock:***@db:5432/d"),
        ("postgresql://dock:p%40ss%3Aw@db/d", "postgresql://dock:***@db/d"),
        ("postgresql://dock:@db/d", "postgresql://dock:***@db/d"),
        ("postgresql://dock@db/d", "postgresql://dock@db/d"),
        ("postgresql://db/d?sslmode=require", "postgresql://db/d?sslmode=require"),
        ("sqlite:////var/lib/registry/dockyard.db", "sqlite:////var/lib/registry/dockyard.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_masked_url(url: str, masked: str) -> None:
    assert masked_url(url) == masked


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+asyncpg://dock:p%40ss@db:5432/d", "postgresql://dock:***@db:5432/d"),
        ("postgresql+asyncpg://dock@db/d", "postgresql://dock@db/d"),
        ("sqlite+pysqlite:////srv/dockyard.db", "sqlite:////srv/dockyard.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_shown_url_leaves_out_the_driver_and_masks_the_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_config_check_shows_no_database_password(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  inmemory:\n"
        "database:\n  url: postgresql://dock:s3cr%40t@127.0.0.1/dockyard\n"
    )
    result = dockyard("config", "check", str(config), env=clean_environment())
    assert result.returncode == 0, result.stderr
    assert "s3cr" not in result.stdout + result.stderr
    assert "# metadata database: postgresql+asyncpg://dock:***@127.0.0.1/dockyard" in (
        result.stderr
    )
