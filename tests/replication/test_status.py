"""``dockyard replication status`` as a user runs it, on both databases: counts per rule
and destination (configured ones with none too), the last failures, ``--json``, and the
exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

from dockyard.metadata.changes import ReplicationJob
from dockyard.metadata.engine import create_engine
from dockyard.metadata.store import MetadataStore
from dockyard.metadata.transactions import utc_now
from tests.test_cli import clean_environment, dockyard


def config_file(tmp_path: Path, database_url: str) -> Path:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'store'}\n"
        f"database:\n  url: {database_url}\n"
        "replication:\n"
        "  destinations:\n"
        "    - {name: prod, url: 'https://prod.example'}\n"
        "    - {name: dr, url: 'https://dr.example'}\n"
        "  rules:\n"
        "    - {name: releases, destinations: [prod, dr]}\n"
    )
    return config


async def test_status_counts_and_failures(database_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path, database_url)
    store = MetadataStore(create_engine(database_url))
    try:
        await store.enqueue_jobs(
            [ReplicationJob("releases", "prod", "copy", "apps/web", t) for t in ("v1", "v2")]
        )
        (first,) = await store.next_jobs(utc_now())  # v2 waits behind v1
        await store.job_done(first)
        (second,) = await store.next_jobs(utc_now())
        await store.job_failed(second, "GET https://prod.example/v2/: connection refused")
    finally:
        await store.close()
    env = clean_environment()

    shown = dockyard("replication", "status", str(config), env=env)
    assert shown.returncode == 1, shown.stderr
    rows = [line.split("\t") for line in shown.stdout.splitlines()]
    assert rows[:2] == [["releases", "dr", "0", "0", "0"], ["releases", "prod", "0", "1", "1"]]
    assert rows[2][1:4] == ["releases -> prod", "copy apps/web:v2", "1"]
    assert rows[2][4] == "GET https://prod.example/v2/: connection refused"

    body = json.loads(dockyard("replication", "status", "--json", str(config), env=env).stdout)
    assert body["queues"][1] == {
        "rule": "releases", "destination": "prod", "pending": 0, "failed": 1, "done": 1
    }  # fmt: skip
    assert [(f["reference"], f["state"]) for f in body["failures"]] == [("v2", "failed")]


def test_status_without_a_database(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}\n")
    result = dockyard("replication", "status", str(config), env=clean_environment())
    assert result.returncode == 2 and "error: no Dockyard database at" in result.stderr
