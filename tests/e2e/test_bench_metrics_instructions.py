"""bench/inprocess_requests.py, what bench.metrics_instructions counts under callgrind:
the application and its client in one process (run here without valgrind, each in a
process of its own, as the tool runs it: metrics on changes process-wide state)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.inprocess_requests", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("mode", ["off", "on"])
@pytest.mark.parametrize("path", ["head", "v2", "manifest"])
def test_every_path_is_answered_in_process(mode: str, path: str) -> None:
    run(mode, path, "20")


def test_the_stub_answers_the_client() -> None:
    run("stub", "v2", "20")
