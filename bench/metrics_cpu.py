"""Server CPU per request with metrics off and on, in turns: ``python -m bench.metrics_cpu``.

``bench.metrics_ab`` compares rates, and a rate on a shared two-core machine moves with
the load by more than the few percent metrics cost. CPU time per request moves much less:
here both servers run at once (the one not measured is idle), ``wrk`` loads one path of
one and then the other, the order swapped each turn, and the CPU of each server's whole
process tree (parent and workers, utime + stime from ``/proc``) is read before and after:

    python -m bench.metrics_cpu --path /v2/ --turns 6 --lock /work/bench.lock

It prints each turn and the medians of each side, and their ratio off/on (below 1: metrics
cost CPU). Only paths that need nothing stored first make sense (``/v2/``, an unknown
manifest or blob).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.metrics_ab import held
from bench.mixed_load import cpu_seconds
from bench.run import log
from bench.servers import DOCKYARD, DOCKYARD_METRICS, Server, dockyard_server

_REQUESTS = re.compile(r"(\d+) requests in")


@dataclass(frozen=True)
class Turn:
    target: str
    requests: int
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU per request, in microseconds."""
        return self.cpu_s / self.requests * 1e6


def requests_of(wrk_output: str) -> int:
    """The request count of ``wrk``'s summary ("12345 requests in 4.00s")."""
    found = _REQUESTS.search(wrk_output)
    if found is None:
        raise ValueError(f"no request count in wrk's output: {wrk_output[-200:]!r}")
    return int(found.group(1))


def orders(turns: int) -> Iterator[tuple[str, str]]:
    """Off then on, then on then off, and so on."""
    for turn in range(turns):
        yield (DOCKYARD, DOCKYARD_METRICS) if turn % 2 == 0 else (DOCKYARD_METRICS, DOCKYARD)


def summary(turns: list[Turn]) -> dict[str, float]:
    """Median rate and CPU per request of each side, and CPU off/on."""
    found: dict[str, float] = {}
    for target, name in ((DOCKYARD, "off"), (DOCKYARD_METRICS, "on")):
        mine = [turn for turn in turns if turn.target == target]
        found[f"{name}_rate"] = statistics.median(turn.rate for turn in mine)
        found[f"{name}_cpu_us"] = statistics.median(turn.cpu_us for turn in mine)
    found["cpu_off_on"] = found["off_cpu_us"] / found["on_cpu_us"]
    return found


def measure(server: Server, target: str, path: str, args: argparse.Namespace) -> Turn:
    wrk = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    before = cpu_seconds(server.pid)
    output = subprocess.run(
        [*wrk, server.url + path], capture_output=True, text=True, check=True
    ).stdout
    used = cpu_seconds(server.pid) - before
    return Turn(target, requests_of(output), args.duration, used)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/v2/")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--lock", default=None, help="hold this lock file while measuring")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (scripts/install-bench-deps.sh)")
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-cpu-")))
        servers: dict[str, Server] = {}
        for target in (DOCKYARD, DOCKYARD_METRICS):
            work = root / target
            work.mkdir()
            server = dockyard_server(
                work / "store", work, work / "server.log", args.workers,
                metrics=target == DOCKYARD_METRICS,
            )  # fmt: skip
            server.start()
            stack.callback(server.stop)
            servers[target] = server
        turns: list[Turn] = []
        with held(args.lock):
            for order in orders(args.turns):
                for target in order:
                    turn = measure(servers[target], target, args.path, args)
                    turns.append(turn)
                    log(f"{target}: {turn.rate:,.0f} req/s, {turn.cpu_us:.1f} CPU µs/request")
    found = summary(turns)
    print(
        f"{args.path}: off {found['off_rate']:,.0f} req/s {found['off_cpu_us']:.1f} µs/request;"
        f" on {found['on_rate']:,.0f} req/s {found['on_cpu_us']:.1f} µs/request;"
        f" CPU off/on {found['cpu_off_on']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
