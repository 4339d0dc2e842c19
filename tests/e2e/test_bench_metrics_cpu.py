"""bench/metrics_cpu.py: CPU per request of Dockyard with metrics off and on, in turns."""

from __future__ import annotations

import shutil

import pytest

from bench import metrics_cpu
from bench.servers import DOCKYARD, DOCKYARD_METRICS


def test_requests_are_read_from_wrks_summary() -> None:
    output = "Running 4s test @ http://127.0.0.1:1/v2/\n  16210 requests in 4.00s, 3.1MB read\n"
    assert metrics_cpu.requests_of(output) == 16210
    with pytest.raises(ValueError, match="no request count"):
        metrics_cpu.requests_of("unable to connect to 127.0.0.1:1")


def test_turns_swap_their_order() -> None:
    off, on = (DOCKYARD, 0), (DOCKYARD_METRICS, 0)
    assert list(metrics_cpu.orders(3)) == [[off, on], [on, off], [off, on]]


def test_several_servers_per_side_start_interleaved() -> None:
    assert metrics_cpu.sides(2) == [
        (DOCKYARD, 0),
        (DOCKYARD_METRICS, 0),
        (DOCKYARD, 1),
        (DOCKYARD_METRICS, 1),
    ]


def test_each_servers_median_is_averaged_over_the_side() -> None:
    turns = [
        metrics_cpu.Turn(DOCKYARD, 4000, 4.0, 0.60, 0),  # 150 µs per request
        metrics_cpu.Turn(DOCKYARD, 4000, 4.0, 0.80, 1),  # 200: a slower start
        metrics_cpu.Turn(DOCKYARD_METRICS, 4000, 4.0, 0.70, 0),  # 175
        metrics_cpu.Turn(DOCKYARD_METRICS, 4000, 4.0, 0.70, 1),  # 175
    ]
    assert metrics_cpu.summary(turns)["cpu_off_on"] == pytest.approx(1.0)


def test_summary_is_the_median_of_each_side() -> None:
    turns = [
        metrics_cpu.Turn(DOCKYARD, 4000, 4.0, 0.60),  # 150 µs per request
        metrics_cpu.Turn(DOCKYARD_METRICS, 4000, 4.0, 0.62),  # 155
        metrics_cpu.Turn(DOCKYARD_METRICS, 2000, 4.0, 0.40),  # 200
        metrics_cpu.Turn(DOCKYARD, 2000, 4.0, 0.30),  # 150
    ]
    found = metrics_cpu.summary(turns)
    assert found["off_rate"] == 750
    assert found["off_cpu_us"] == pytest.approx(150)
    assert found["on_cpu_us"] == pytest.approx(177.5)
    assert found["cpu_off_on"] == pytest.approx(150 / 177.5)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_one_turn_against_both_real_servers(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--turns", "1", "--duration", "1", "--threads", "1", "--connections", "4"]
    args += ["--copies", "1"]
    assert metrics_cpu.main([*args, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "bench: dockyard #0: " in out and "bench: dockyard-metrics #0: " in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("/v2/: off ") and "CPU off/on " in last
    assert float(last.rsplit(" ", 1)[1]) > 0
