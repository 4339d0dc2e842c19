"""bench/inprocess_requests.py, what bench.metrics_instructions counts under callgrind:
the application and its client in one process (run here without valgrind)."""

from __future__ import annotations

import pytest

from bench import inprocess_requests


@pytest.mark.parametrize("mode", ["off", "on"])
def test_every_path_is_answered_in_process(mode: str) -> None:
    for path in ("head", "v2", "manifest"):
        assert inprocess_requests.main([mode, path, "20"]) == 0


def test_the_stub_answers_the_client() -> None:
    assert inprocess_requests.main(["stub", "v2", "20"]) == 0
