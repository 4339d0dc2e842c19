"""The supervisor with real forked workers and short delays: what it restarts, what it logs,
when it gives up. (Signals and a real server: tests/live/test_supervisor.py.)"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
from pathlib import Path

import pytest

from dockyard.supervisor import RestartPolicy, Supervisor, describe_exit

FAST = RestartPolicy(first_delay=0.01, max_delay=0.05, min_deaths=4, stop_timeout=5)


def test_describe_exit() -> None:
    killed = os.posix_spawnp("sleep", ["sleep", "30"], os.environ)
    os.kill(killed, signal.SIGKILL)
    assert describe_exit(os.waitpid(killed, 0)[1]) == "was killed by SIGKILL"
    failed = os.posix_spawnp("sh", ["sh", "-c", "exit 3"], os.environ)
    assert describe_exit(os.waitpid(failed, 0)[1]) == "exited with status 3"


def test_workers_that_exit_by_themselves_are_restarted_under_their_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Any exit counts, status 0 too; each index comes back as itself, until the
    supervisor gives up (max(4, 2 x 2) deaths) and returns 1."""
    starts = tmp_path / "starts"

    def run_worker(index: int) -> None:
        with starts.open("a") as record:
            record.write(f"{index} {os.getpid()}\n")
        if index == 1:
            raise SystemExit(2)

    caplog.set_level(logging.INFO, "dockyard.supervisor")
    assert Supervisor(2, run_worker, FAST).run() == 1

    log = caplog.text
    assert re.search(r"worker 0 \(pid \d+\) exited with status 0 after .*; restarting it", log)
    assert re.search(r"worker 1 \(pid \d+\) exited with status 2 after .*; restarting it", log)
    assert "giving up: 4 worker deaths within 60s" in log
    # 2 first starts and 4 deaths take at least 2 restarts; the last death restarts nothing
    assert 2 <= len(re.findall(r"worker \d restarted", log)) <= 3
    # every process ran the index the supervisor started it for
    started = [line.split() for line in starts.read_text().splitlines()]
    assert len(started) >= 4 and {index for index, _ in started} == {"0", "1"}
    for index, pid in started:
        assert (
            f"worker {index} (pid {pid})" in log or f"worker {index} restarted (pid {pid})" in log
        )


def test_a_worker_that_cannot_be_forked_counts_as_a_death(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fake: the kernel refusing fork (EAGAIN) is not something a test can cause safely."""

    def refuse() -> int:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", refuse)
    caplog.set_level(logging.INFO, "dockyard.supervisor")
    assert Supervisor(1, lambda _index: None, FAST).run() == 1
    assert "worker 0 could not be started (Resource temporarily unavailable)" in caplog.text
    assert "giving up: 4 worker deaths" in caplog.text


def test_the_signal_mask_is_given_back() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    Supervisor(1, lambda _index: None, FAST).run()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
