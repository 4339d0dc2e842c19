"""Server CPU per request with metrics off and on, in turns: ``python -m bench.metrics_cpu``.

``bench.metrics_ab`` compares rates, and a rate on a shared two-core machine moves with
the load by more than the few percent metrics cost. CPU time per request moves much less:
here ``--copies`` servers per side (3 by default) run at once (those not measured are
idle), ``wrk`` loads one path of each in turn, the order reversed each turn, and the CPU of
each server's whole process tree (parent and workers, utime + stime from ``/proc``) is read
before and after:

    python -m bench.metrics_cpu --path /v2/ --turns 6 --lock /work/bench.lock

It prints each turn and, per side, the mean of its servers' medians, and their ratio
off/on (below 1: metrics cost CPU). Only paths that need nothing stored first make sense
(``/v2/``, an unknown manifest or blob).
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
    copy: int = 0  # which of the side's servers (``--copies``)

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


Side = tuple[str, int]  # (target, copy)


def sides(copies: int) -> list[Side]:
    """Every server, interleaved (off 0, on 0, off 1, on 1, ...): the start order, which
    moves a server's CPU per request by itself, favours neither side."""
    return [(target, copy) for copy in range(copies) for target in (DOCKYARD, DOCKYARD_METRICS)]


def orders(turns: int, copies: int = 1) -> Iterator[list[Side]]:
    """Every server in turn, the order reversed every other turn."""
    every = sides(copies)
    for turn in range(turns):
        yield every if turn % 2 == 0 else every[::-1]


def summary(turns: list[Turn]) -> dict[str, float]:
    """Rate and CPU per request of each side, and CPU off/on: the median of each server's
    turns, averaged over the side's servers (two starts of the same code differ steadily
    by up to 20 %, so several servers per side are what a few percent can be read from)."""
    found: dict[str, float] = {}
    for target, name in ((DOCKYARD, "off"), (DOCKYARD_METRICS, "on")):
        copies = sorted({turn.copy for turn in turns if turn.target == target})
        rates, cpus = [], []
        for copy in copies:
            mine = [turn for turn in turns if turn.target == target and turn.copy == copy]
            rates.append(statistics.median(turn.rate for turn in mine))
            cpus.append(statistics.median(turn.cpu_us for turn in mine))
        found[f"{name}_rate"] = statistics.mean(rates)
        found[f"{name}_cpu_us"] = statistics.mean(cpus)
    found["cpu_off_on"] = found["off_cpu_us"] / found["on_cpu_us"]
    return found


def measure(server: Server, side: Side, path: str, args: argparse.Namespace) -> Turn:
    wrk = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    before = cpu_seconds(server.pid)
    output = subprocess.run(
        [*wrk, server.url + path], capture_output=True, text=True, check=True
    ).stdout
    used = cpu_seconds(server.pid) - before
    return Turn(side[0], requests_of(output), args.duration, used, side[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/v2/")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--copies", type=int, default=3, help="servers per side")
    parser.add_argument("--lock", default=None, help="hold this lock file while measuring")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (scripts/install-bench-deps.sh)")
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-cpu-")))
        servers: dict[Side, Server] = {}
        for side in sides(args.copies):
            target = side[0]
            work = root / f"{target}-{side[1]}"
            work.mkdir()
            server = dockyard_server(
                work / "store", work, work / "server.log", args.workers,
                metrics=target == DOCKYARD_METRICS,
            )  # fmt: skip
            server.start()
            stack.callback(server.stop)
            servers[side] = server
        turns: list[Turn] = []
        with held(args.lock):
            for order in orders(args.turns, args.copies):
                for side in order:
                    turn = measure(servers[side], side, args.path, args)
                    turns.append(turn)
                    log(
                        f"{side[0]} #{side[1]}: {turn.rate:,.0f} req/s,"
                        f" {turn.cpu_us:.1f} CPU µs/request"
                    )
    found = summary(turns)
    print(
        f"{args.path}: off {found['off_rate']:,.0f} req/s {found['off_cpu_us']:.1f} µs/request;"
        f" on {found['on_rate']:,.0f} req/s {found['on_cpu_us']:.1f} µs/request;"
        f" CPU off/on {found['cpu_off_on']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
