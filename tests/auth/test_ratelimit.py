"""The failed-login limiter: a sliding window per client address, in shared memory (one
host) or in PostgreSQL (replicas)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal

import pytest

from dockyard.auth.ratelimit import (
    FailedLoginLimiter,
    SharedMemoryFailures,
    client_key,
    secret_key,
)
from dockyard.metadata.engine import create_engine
from dockyard.metadata.failed_logins import DatabaseFailures


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_blocks_after_the_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    limiter = FailedLoginLimiter(3, 60, clock=clock)
    for step in range(3):
        assert await limiter.retry_after("198.51.100.7") == 0
        await limiter.failed("198.51.100.7")
        clock.now += 10 if step < 2 else 0
    # failures at 100, 110, 120: blocked until 160
    assert await limiter.retry_after("198.51.100.7") == 40
    clock.now = 159.5
    assert await limiter.retry_after("198.51.100.7") == 1
    clock.now = 160.0
    assert await limiter.retry_after("198.51.100.7") == 0
    await limiter.failed("198.51.100.7")  # 110, 120, 160: blocked until 170
    assert await limiter.retry_after("198.51.100.7") == 10


async def test_addresses_are_counted_apart() -> None:
    limiter = FailedLoginLimiter(1, 60, clock=Clock())
    await limiter.failed("198.51.100.7")
    assert await limiter.retry_after("198.51.100.7") == 60
    assert await limiter.retry_after("198.51.100.8") == 0


async def test_ipv6_is_counted_per_64() -> None:
    limiter = FailedLoginLimiter(2, 60, clock=Clock())
    await limiter.failed("2001:db8:1:2::1")
    await limiter.failed("2001:db8:1:2:ffff::9")
    assert await limiter.retry_after("2001:db8:1:2::77") == 60
    assert await limiter.retry_after("2001:db8:1:3::1") == 0
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("not an address") == "not an address"


async def test_zero_limit_disables() -> None:
    limiter = FailedLoginLimiter(0, 60, clock=Clock())
    for _ in range(100):
        await limiter.failed("198.51.100.7")
    assert await limiter.retry_after("198.51.100.7") == 0


async def test_memory_is_bounded_whatever_the_number_of_clients() -> None:
    limiter = FailedLoginLimiter(2, 60, clock=Clock(), buckets=64)
    for i in range(10_000):
        await limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert isinstance(limiter.failures, SharedMemoryFailures)
    assert limiter.failures.slots == 64 * 2


def _fail_once(limiter: FailedLoginLimiter) -> None:
    asyncio.run(limiter.failed("198.51.100.7"))


async def test_worker_processes_count_together() -> None:
    limiter = FailedLoginLimiter(4, 60)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_fail_once, args=(limiter,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    assert 55 <= await limiter.retry_after("198.51.100.7") <= 60
    assert await limiter.retry_after("198.51.100.8") == 0


def _die_holding_the_lock(failures: SharedMemoryFailures, ready: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    with failures._locked():
        ready.set()  # type: ignore[attr-defined]
        signal.pause()


async def test_a_worker_killed_while_counting_does_not_leave_the_lock_held() -> None:
    limiter = FailedLoginLimiter(2, 60)
    assert isinstance(limiter.failures, SharedMemoryFailures)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_die_holding_the_lock, args=(limiter.failures, ready))
    holder.start()
    assert ready.wait(10)
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    # The kernel released the dead worker's lock: counting goes on.
    await asyncio.wait_for(limiter.failed("198.51.100.7"), 10)
    assert await limiter.retry_after("198.51.100.7") == 0


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_replicas_count_together_in_postgresql(database_url: str) -> None:
    """Two limiters with their own engines (as two replicas) and the same http.secret
    count one client's failures together, in a table bounded by buckets * limit."""
    key = secret_key("shared by the replicas")
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        replicas = []
        for engine in engines:
            limiter = FailedLoginLimiter(3, 60, key=key)
            limiter.count_in(DatabaseFailures(engine))  # type: ignore[arg-type]
            replicas.append(limiter)
        first, second = replicas
        await first.failed("198.51.100.7")
        await second.failed("198.51.100.7")
        assert await first.retry_after("198.51.100.7") == 0
        await first.failed("198.51.100.7")
        for replica in replicas:
            assert 55 <= await replica.retry_after("198.51.100.7") <= 60
            assert await replica.retry_after("198.51.100.8") == 0
        for _ in range(10):
            await second.failed("198.51.100.7")
        failures = DatabaseFailures(engines[0])  # type: ignore[arg-type]
        _, times = await failures.recent(first.bucket("198.51.100.7"), 3600)
        assert len(times) == 3
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_bucket_key_follows_the_secret() -> None:
    one = FailedLoginLimiter(3, 60, key=secret_key("s"))
    other = FailedLoginLimiter(3, 60, key=secret_key("s"))
    assert one.bucket("198.51.100.7") == other.bucket("198.51.100.7")
