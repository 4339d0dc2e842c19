"""The failed-login limiter: a sliding window per client address."""

from __future__ import annotations

import multiprocessing

from dockyard.auth.ratelimit import FailedLoginLimiter, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_the_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    limiter = FailedLoginLimiter(3, 60, clock=clock)
    for step in range(3):
        assert limiter.retry_after("198.51.100.7") == 0
        limiter.failed("198.51.100.7")
        clock.now += 10 if step < 2 else 0
    # failures at 100, 110, 120: blocked until 160
    assert limiter.retry_after("198.51.100.7") == 40
    clock.now = 159.5
    assert limiter.retry_after("198.51.100.7") == 1
    clock.now = 160.0
    assert limiter.retry_after("198.51.100.7") == 0
    limiter.failed("198.51.100.7")  # 110, 120, 160: blocked until 170
    assert limiter.retry_after("198.51.100.7") == 10


def test_addresses_are_counted_apart() -> None:
    limiter = FailedLoginLimiter(1, 60, clock=Clock())
    limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") == 60
    assert limiter.retry_after("198.51.100.8") == 0


def test_ipv6_is_counted_per_64() -> None:
    limiter = FailedLoginLimiter(2, 60, clock=Clock())
    limiter.failed("2001:db8:1:2::1")
    limiter.failed("2001:db8:1:2:ffff::9")
    assert limiter.retry_after("2001:db8:1:2::77") == 60
    assert limiter.retry_after("2001:db8:1:3::1") == 0
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("not an address") == "not an address"


def test_zero_limit_disables() -> None:
    limiter = FailedLoginLimiter(0, 60, clock=Clock())
    for _ in range(100):
        limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") == 0


def test_memory_is_bounded_whatever_the_number_of_clients() -> None:
    limiter = FailedLoginLimiter(2, 60, clock=Clock(), buckets=64)
    for i in range(10_000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._times) == 64 * 2


def test_worker_processes_count_together() -> None:
    limiter = FailedLoginLimiter(4, 60)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=limiter.failed, args=("198.51.100.7",)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    assert 55 <= limiter.retry_after("198.51.100.7") <= 60
    assert limiter.retry_after("198.51.100.8") == 0
