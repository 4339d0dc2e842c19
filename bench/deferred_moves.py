"""Honest chunked uploads with ``storage.s3.deferredcopy``: one regbench repetition at a
time, and after each, a wait until Dockyard's mover has copied every pending blob, so
that no repetition pays for the previous one's copy. What the wait took (the copy after
the ``201``) and what SeaweedFS spent meanwhile are kept beside the client's figures.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PENDING = "SELECT count(*) FROM blobs WHERE pending_path IS NOT NULL AND moved_at IS NULL"


def pending_moves(database: Path) -> int:
    """How many blobs of Dockyard's SQLite database still wait for their copy."""
    if not database.exists():
        return 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        try:
            return int(connection.execute(_PENDING).fetchone()[0])
        except sqlite3.OperationalError:  # a schema without deferred copies
            return 0


def wait_for_moves(
    database: Path, store_cpu: Callable[[], float | None], timeout: float = 300.0
) -> dict[str, float]:
    """Wait until no blob waits for its copy; how long that took and SeaweedFS's CPU."""
    started, cpu = time.monotonic(), store_cpu()
    deadline = started + timeout
    while pending_moves(database) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = store_cpu()
    figures = {"move_wait_s": round(time.monotonic() - started, 2)}
    if cpu is not None and after is not None:
        figures["move_store_cpu_s"] = round(after - cpu, 2)
    return figures


def pooled(runs: list[dict[str, Any]], waits: list[dict[str, float]]) -> dict[str, Any]:
    """One regbench result from several one-repetition runs: their reps side by side, the
    medians again, and each rep's wait for the copies after it."""
    merged: dict[str, Any] = dict(runs[-1])
    scenarios: dict[str, Any] = {}
    for key in runs[-1].get("scenarios", {}):
        entries = [run["scenarios"][key] for run in runs if key in run.get("scenarios", {})]
        if not all(isinstance(e, dict) and "reps" in e for e in entries):
            scenarios[key] = entries[-1]
            continue
        reps = [dict(rep) for entry in entries for rep in entry["reps"]]
        for rep, wait in zip(reps, waits, strict=False):
            rep.update(wait)
        entry = dict(entries[-1], reps=reps)
        rates = [rep["mbps"] for rep in reps]
        entry.update(median=statistics.median(rates), min=min(rates), max=max(rates))
        for field in ("server_cpu_s", "client_cpu_s", "wall_s", "move_wait_s", "move_store_cpu_s"):
            values = [rep[field] for rep in reps if field in rep]
            if values:
                entry[f"{field}_median"] = statistics.median(values)
        scenarios[key] = entry
    merged["scenarios"] = scenarios
    merged.setdefault("meta", {})["loadavg_end"] = runs[-1].get("meta", {}).get("loadavg_end")
    if runs[0].get("meta", {}).get("host"):
        merged["meta"]["host"] = runs[0]["meta"]["host"]
    return merged
