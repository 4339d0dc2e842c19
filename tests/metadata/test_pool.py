"""``database.pool`` reaches the PostgreSQL engine of each worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.pool import QueuePool

from dockyard.app import pool_settings
from dockyard.config import ConfigError, load_config
from dockyard.metadata.engine import PoolSettings, create_engine


def test_the_configured_pool_is_the_engines(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path}}}}}\n"
        "database:\n"
        "  url: postgresql://dockyard@db.example.com/dockyard\n"
        "  pool: {size: 3, overflow: 1, timeout: 2500ms, recycle: 0}\n"
    )
    config = load_config(config_file, {}, strict=True).config
    settings = pool_settings(config)
    assert settings == PoolSettings(size=3, overflow=1, timeout=2.5, recycle=0.0)
    engine = create_engine(config.database_url(), settings)  # connects only when used
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle) == (3, 1, 2.5, -1)


def test_the_defaults() -> None:
    engine = create_engine("postgresql+asyncpg://dockyard@db.example.com/dockyard")
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle) == (10, 20, 30, 3600)


def test_a_pool_that_cannot_work_is_refused(tmp_path: Path) -> None:
    for bad, message in (("timeout: 0", "longer than zero"), ("size: 0", "greater than")):
        config_file = tmp_path / "config.yml"
        config_file.write_text(
            "version: 0.1\n"
            f"storage: {{filesystem: {{rootdirectory: {tmp_path}}}}}\n"
            f"database: {{pool: {{{bad}}}}}\n"
        )
        with pytest.raises(ConfigError, match=message):
            load_config(config_file, {})
