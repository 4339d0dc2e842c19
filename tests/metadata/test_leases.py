"""Leases: one holder at a time across engines (as across replicas), on both databases."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from dockyard.metadata.engine import create_engine
from dockyard.metadata.leases import Leases, lease_key


async def test_one_holder_at_a_time_across_engines(database_url: str) -> None:
    first, second = create_engine(database_url), create_engine(database_url)
    try:
        mine, theirs = Leases(first), Leases(second)
        async with mine.hold("gc") as held:
            assert held
            async with theirs.hold("gc") as other:
                assert not other
            async with theirs.hold("retention") as unrelated:
                assert unrelated
        async with theirs.hold("gc") as after_release:
            assert after_release
    finally:
        await first.dispose()
        await second.dispose()


async def test_in_memory_sqlite_is_one_process() -> None:
    engine = create_engine("sqlite://")
    leases = Leases(engine)
    async with leases.hold("purge") as held, leases.hold("purge") as again:
        assert held and not again
    await engine.dispose()


_HOLDER = """
import asyncio, sys, time
from dockyard.metadata.engine import create_engine
from dockyard.metadata.leases import Leases

async def main():
    async with Leases(create_engine(sys.argv[1])).hold("gc") as held:
        print("held" if held else "refused", flush=True)
        time.sleep(60)

asyncio.run(main())
"""


async def test_a_dead_holder_releases_the_lease(tmp_path: Path) -> None:
    """A worker killed while it holds the lease (SIGKILL) does not keep it."""
    url = f"sqlite:///{tmp_path / 'dockyard.db'}"
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, url, stdout=asyncio.subprocess.PIPE
    )
    engine = create_engine(url)
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"held"
        leases = Leases(engine)
        async with leases.hold("gc") as held:
            assert not held
        holder.kill()
        await holder.wait()
        async with leases.hold("gc") as held:
            assert held
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await engine.dispose()


async def test_names_are_checked_and_keys_stable() -> None:
    assert lease_key("gc") == lease_key("gc") != lease_key("retention")
    engine = create_engine("sqlite://")
    with pytest.raises(ValueError, match="lease name"):
        async with Leases(engine).hold("GC; drop"):
            pass
    await engine.dispose()
