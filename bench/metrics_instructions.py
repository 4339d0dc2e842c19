"""What metrics cost per request, in instructions: ``python -m bench.metrics_instructions``.

CPU time per request moves by up to 20 % from one start of the same server to the next on
this machine (docs/performance.md, "Metrics"), more than the few percent metrics cost.
Instructions do not: callgrind counts those a request executes, the same from run to run
within a few hundred. Each path runs in a process of its own under ``valgrind --tool=
callgrind`` (:mod:`bench.inprocess_requests`: the application a worker builds and a raw
client in one process, the counted part only), with metrics off, on, and a stub server
that answers at once (the client's share, taken off both):

    python -m bench.metrics_instructions --paths head,v2,manifest --requests 1000

It prints, per path, the server's instructions per request off and on and their ratio
(off/on, like the other metrics tables: 1 costs nothing). Needs valgrind
(``apt-get install valgrind``); a run takes a minute or two per path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import log

PATHS = ("head", "v2", "manifest")
TITLES = {"head": "blob HEAD", "v2": "GET /v2/", "manifest": "manifest GET by tag"}


def instructions(mode: str, path: str, count: int, scratch: Path) -> int:
    """Instructions the counted requests of one child executed (all its threads)."""
    out = scratch / f"{mode}-{path}"
    out.mkdir()
    env = dict(os.environ, DOCKYARD_BENCH_CALLGRIND="1", PYTHONHASHSEED="0")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}/callgrind.%p",
        sys.executable,
        "-m",
        "bench.inprocess_requests",
        mode,
        path,
        str(count),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    total = 0
    for dump in out.glob("callgrind.*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma list of {PATHS}")
    parser.add_argument("--requests", type=int, default=1000, help="counted per run")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s) {', '.join(unknown)}; choose from {PATHS}")
    count = args.requests
    rows = []
    with tempfile.TemporaryDirectory(prefix="dockyard-instructions-") as scratch:
        log(f"the client's share: the stub server, {count} requests")
        client = instructions("stub", "v2", count, Path(scratch)) / count
        for path in paths:
            figures = {}
            for mode in ("off", "on"):
                log(f"{TITLES[path]}: metrics {mode}, {count} requests under callgrind")
                total = instructions(mode, path, count, Path(scratch)) / count
                figures[mode] = total - client
            off, on = figures["off"], figures["on"]
            rows.append((TITLES[path], off, on, on - off, off / on))
    print(f"\nInstructions per request, the client's {client:,.0f} taken off:\n")
    print("| request | metrics off | metrics on | added | off/on |")
    print("|---|---:|---:|---:|---:|")
    for title, off, on, added, ratio in rows:
        print(f"| {title} | {off:,.0f} | {on:,.0f} | {added:,.0f} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
