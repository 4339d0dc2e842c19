"""``dockyard replication status CONFIG``: the job queue of the configuration's
database, counted per rule and destination, and the last failures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click

from dockyard.config import Config
from dockyard.metadata.replication_queue import DONE, FAILED, PENDING, QueuedJob
from dockyard.store_commands import opened
from dockyard.store_views import print_table

FAILURES_SHOWN = 10


@dataclass(frozen=True)
class QueueCounts:
    rule: str
    destination: str
    pending: int
    failed: int
    done: int


@dataclass(frozen=True)
class QueueStatus:
    counts: list[QueueCounts]
    failures: list[QueuedJob]


async def queue_status(config: Config, failures: int = FAILURES_SHOWN) -> QueueStatus:
    """Counts for every configured (rule, destination) and for any the queue still holds."""
    async with opened(config) as metadata:
        found = await metadata.job_counts()
        recent = await metadata.recent_failures(failures)
    pairs = {(r.name, d) for r in config.replication.rules for d in r.targets()}
    pairs |= {(rule, destination) for rule, destination, _ in found}
    counts = [
        QueueCounts(
            rule,
            destination,
            found.get((rule, destination, PENDING), 0),
            found.get((rule, destination, FAILED), 0),
            found.get((rule, destination, DONE), 0),
        )
        for rule, destination in sorted(pairs)
    ]
    return QueueStatus(counts, recent)


def _job_json(job: QueuedJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "rule": job.rule,
        "destination": job.destination,
        "action": job.action,
        "repository": job.repository,
        "reference": job.reference,
        "state": job.state,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "created_at": job.created_at.isoformat(),
        "due_at": job.due_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def status_json(status: QueueStatus) -> str:
    body = {
        "queues": [vars(c) for c in status.counts],
        "failures": [_job_json(job) for job in status.failures],
    }
    return json.dumps(body, indent=2)


def show_status(status: QueueStatus) -> None:
    rows = [
        (c.rule, c.destination, str(c.pending), str(c.failed), str(c.done)) for c in status.counts
    ]
    print_table("replication", ("rule", "destination", "pending", "failed", "done"), rows)
    if not rows:
        click.echo("replication: no rules configured and no jobs queued")
    failures = [
        (
            job.finished_at.strftime("%Y-%m-%d %H:%M:%S") if job.finished_at else "retrying",
            f"{job.rule} -> {job.destination}",
            f"{job.action} {job.target}",
            str(job.attempts),
            job.last_error or "",
        )
        for job in status.failures
    ]
    print_table("last failures", ("failed", "rule", "job", "attempts", "error"), failures)
