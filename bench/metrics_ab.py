"""The cost of metrics, measured in turns: ``python -m bench.metrics_ab``.

Metrics cost a few percent at most; on a shared machine the load moves by more than that
in the minutes between ``bench.run --metrics``'s Dockyard and Dockyard+metrics runs. Here
both servers run at once, each on its own store (the one not being measured is idle), and
regbench runs one scenario group against one and then the other, round after round, the
order swapped each round. Each round's on/off ratio compares two runs seconds apart:

    python -m bench.metrics_ab --rounds 5 --lock /work/bench.lock --out /tmp/ab

Before the rounds, each server's tags and repositories for the listings are created by an
untimed regbench run, outside the lock and with the servers at the lowest priority.
Output: for every figure the median of its values and of the rounds' on/off ratios
(oriented like the table's: above 1, metrics cost nothing), their range, and the server
CPU per unit of work summed over all rounds (so a listing of a few milliseconds is not
read off one 10 ms tick); ``ab.md`` and ``ab.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import report
from bench.run import DEFAULT_REGBENCH, LISTINGS, Regbench, groups_for, log, repeats_for
from bench.servers import DOCKYARD, DOCKYARD_METRICS, Server, dockyard_server

TARGETS = (DOCKYARD, DOCKYARD_METRICS)


def regbench_extra(group: list[str], args: argparse.Namespace) -> list[str]:
    extra = ["--scenarios", ",".join(group), "--prefix", "ab"]
    if "wrk" in group:
        extra += ["--wrk-duration", str(args.wrk_duration)]
    if set(group) <= set(LISTINGS):
        extra += ["--no-sync"]
    return extra


@contextlib.contextmanager
def held(lock: str | None) -> Iterator[None]:
    """The benchmark lock (flock, as ``flock(1)`` takes it) while the rounds run."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        log(f"waiting for {lock}; load average {os.getloadavg()[0]:.2f}")
        fcntl.flock(handle, fcntl.LOCK_EX)
        log(f"holding {lock} from {time.strftime('%H:%M:%S')}; load {os.getloadavg()}")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def figures_of(data: dict[str, Any], group: list[str]) -> dict[str, dict[str, Any]]:
    """Each figure of one regbench run: its value, and the CPU and work of its repetitions."""
    found: dict[str, dict[str, Any]] = {}
    for index, figure in enumerate(report.FIGURES):
        sc = data.get("scenarios", {}).get(figure.key)
        if figure.scenario not in group or sc is None:
            continue
        entry: dict[str, Any] = {
            "label": figure.label(sc),
            "value": figure.value(sc),
            "cpu_s": 0.0,
            "work": 0.0,
        }
        for rep in sc.get("reps", []) if figure.cost else []:
            assert figure.cost is not None
            work = figure.cost.work(sc, rep)
            if rep.get("server_cpu_s") is not None and work:
                entry["cpu_s"] += rep["server_cpu_s"]
                entry["work"] += work
        found[f"{index}"] = entry
    return found


def summarize(rounds: list[dict[str, dict[str, dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Per figure: median values, the rounds' on/off ratios, and CPU per unit pooled."""
    rows = []
    for index, figure in enumerate(report.FIGURES):
        key = f"{index}"
        per_round = [r for r in rounds if all(key in r[t] for t in TARGETS)]
        if not per_round:
            continue
        values = {t: [r[t][key]["value"] for r in per_round] for t in TARGETS}
        ratios = [
            report.ratio(r[DOCKYARD_METRICS][key]["value"], r[DOCKYARD][key]["value"],
                         figure.higher_is_better)
            for r in per_round
        ]  # fmt: skip
        known = [x for x in ratios if x is not None]
        row: dict[str, Any] = {
            "figure": per_round[0][DOCKYARD][key]["label"],
            "key": figure.key,
            "unit": figure.unit,
            "off": _median(values[DOCKYARD]),
            "on": _median(values[DOCKYARD_METRICS]),
            "ratios": ratios,
            "ratio": statistics.median(known) if known else None,
        }
        if figure.cost:
            row["cost_unit"] = figure.cost.unit
            for target, name in ((DOCKYARD, "cpu_off"), (DOCKYARD_METRICS, "cpu_on")):
                cpu = sum(r[target][key]["cpu_s"] for r in per_round)
                work = sum(r[target][key]["work"] for r in per_round)
                row[name] = cpu / work * figure.cost.scale if work else None
        rows.append(row)
    return rows


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(statistics.median(known)) if known else None


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | unit | metrics off | metrics on | on/off (median) | rounds' on/off | "
        "CPU off / on (pooled) |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        spread = " ".join(report.fmt_ratio(x) for x in row["ratios"])
        cpu = ""
        if row.get("cost_unit"):
            cpu = f"{report.fmt(row['cpu_off'])} / {report.fmt(row['cpu_on'])} {row['cost_unit']}"
        lines.append(
            f"| {row['figure']} | {row['unit']} | {report.fmt(row['off'])} | "
            f"{report.fmt(row['on'])} | {report.fmt_ratio(row['ratio'])} | {spread} | {cpu} |"
        )
    return "\n".join(lines)


def tree_of(pid: int) -> list[int]:
    """``pid`` and its descendants (a server and its forked workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@contextlib.contextmanager
def niced(servers: dict[str, Server]) -> Iterator[None]:
    """The servers at the lowest priority while their stores are filled (outside the lock,
    beside other people's benchmarks), back at their own priority for the rounds."""
    before = {}
    for pid in (p for server in servers.values() for p in tree_of(server.pid)):
        with contextlib.suppress(OSError):
            before[pid] = os.getpriority(os.PRIO_PROCESS, pid)
            os.setpriority(os.PRIO_PROCESS, pid, 19)
    try:
        yield
    finally:
        for pid, priority in before.items():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, priority)


def run_rounds(
    servers: dict[str, Server], args: argparse.Namespace, regbench: Regbench, out: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    groups = groups_for(args.scenarios)
    timeout = 600.0
    args.repeats = 1
    with niced(servers):  # untimed: creates the tags and repositories the listings walk
        for target, server in servers.items():
            for group in (g for g in groups if set(g) <= set(LISTINGS)):
                log(f"setup: {target} {','.join(group)}")
                regbench.run(server, f"setup-{'-'.join(group)}", out / target,
                             regbench_extra(group, args), timeout)  # fmt: skip
    rounds: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []
    with held(args.lock):
        for number in range(args.rounds):
            order = TARGETS if number % 2 == 0 else TARGETS[::-1]
            found: dict[str, Any] = {t: {} for t in TARGETS}
            before = os.getloadavg()[0]
            for group in groups:
                args.repeats = repeats_for(group, 1)  # a listing: more walks, no sync
                for target in order:
                    name = f"round{number + 1}-{'-'.join(group)}"
                    data, error = regbench.run(
                        servers[target], name, out / target, regbench_extra(group, args), timeout
                    )
                    if data is None:
                        raise SystemExit(f"{target} {name}: {error}")
                    found[target].update(figures_of(data, group))
            rounds.append(found)
            loads.append({"round": number + 1, "load_before": before,
                          "load_after": os.getloadavg()[0], "first": order[0]})  # fmt: skip
            log(f"round {number + 1} done, load {before:.2f} -> {os.getloadavg()[0]:.2f}")
        if args.then:  # another benchmark in the same hold of the lock
            log(f"then, still holding the lock: {args.then}")
            subprocess.run(shlex.split(args.then), check=False)
    return rounds, loads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="wrk,push,pull,tags,catalog")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wrk-duration", type=int, default=5, help="seconds per wrk/ab run")
    parser.add_argument("--quick", action="store_true", help="regbench --quick sizes")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--lock", help="hold this lock file while the rounds run")
    parser.add_argument("--then", help="a command to run after the rounds, under the same lock")
    parser.add_argument("--out", type=Path, default=Path("bench-results") / "metrics-ab")
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--regbench", type=Path, default=Path(os.environ.get(
        "REGBENCH", DEFAULT_REGBENCH)))  # fmt: skip
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.repeats = 1
    out: Path = args.out
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-ab-", dir=args.tmpdir))
    servers: dict[str, Server] = {}
    try:
        for target in TARGETS:
            base = tmp / target
            (base / "store").mkdir(parents=True)
            (out / target).mkdir(parents=True, exist_ok=True)
            log_path = out / f"{target}-server.log"
            server = dockyard_server(base / "store", base, log_path, args.workers,
                                     metrics=target == DOCKYARD_METRICS)  # fmt: skip
            servers[target] = server
            server.start()
        workdir = tmp / "regbench-work"
        workdir.mkdir()
        rounds, loads = run_rounds(servers, args, Regbench(args.regbench, args, workdir), out)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = summarize(rounds)
    table = render(rows)
    load_line = ", ".join(f"{x['load_before']:.1f}->{x['load_after']:.1f}" for x in loads)
    text = (
        f"# Metrics on/off in turns, {time.strftime('%Y-%m-%d %H:%M:%S')}, "
        f"{args.rounds} rounds\n\nload average per round: {load_line}\n\n{table}\n"
    )
    (out / "ab.md").write_text(text)
    (out / "ab.json").write_text(json.dumps({"rows": rows, "rounds": rounds, "loads": loads},
                                            indent=1))  # fmt: skip
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
