"""The embedded database runs on Python's sqlite3: aiosqlite is not needed, whichever
spelling of the URL a configuration uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Run in a fresh interpreter where importing aiosqlite fails, whatever is installed.
SCRIPT = """
import asyncio, sys
sys.modules["aiosqlite"] = None
from dockyard.config import DatabaseConfig
from dockyard.metadata.engine import create_engine, current_revision, migrate

async def check(url):
    engine = create_engine(url)
    try:
        await migrate(engine)
        print(url, await current_revision(engine) is not None)
    finally:
        await engine.dispose()

for given in sys.argv[1:]:
    asyncio.run(check(DatabaseConfig(url=given).url))
"""


def test_sqlite_urls_open_without_aiosqlite(tmp_path: Path) -> None:
    plain, old = f"sqlite:///{tmp_path / 'plain.db'}", f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, plain, old, "sqlite://"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{plain} True",
        f"sqlite:///{tmp_path / 'old.db'} True",  # the old spelling, as plain SQLite
        "sqlite:// True",
    ]
    assert (tmp_path / "plain.db").is_file() and (tmp_path / "old.db").is_file()
