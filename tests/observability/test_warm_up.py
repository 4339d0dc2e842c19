"""``serve``'s warm-up in the parent, with metrics on: it builds what the workers build
(their pages then stay shared), and whatever it measured is dropped, so that no forked
worker writes the parent's statements and storage calls as its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from dockyard.app import prepare, prepare_database, warm_up
from dockyard.config import load_config
from dockyard.observability import batch, http_metrics
from dockyard.observability.batch import BatchedCounter, BatchedHistogram, LiveGauge


def _pending_work(batched: batch.Flushable) -> float:
    if isinstance(batched, BatchedHistogram):
        return sum(batched.counts)
    if isinstance(batched, BatchedCounter):
        return batched.pending
    if isinstance(batched, http_metrics._Series):  # requests not yet added up, and its own
        owned = [batched.duration, batched.shared.request_size, batched.shared.response_size]
        return len(batched.ended) + sum(_pending_work(b) for b in owned)
    assert isinstance(batched, LiveGauge)
    return batched.value - batched._written


def test_warm_up_with_metrics_leaves_nothing_for_the_workers_to_write(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    path = tmp_path / "config.yml"
    path.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'store'}\n"
        f"database:\n  url: sqlite:///{tmp_path / 'dockyard.db'}\n"
        "http:\n  addr: 127.0.0.1:5000\n"
        "  debug:\n    addr: 127.0.0.1:5001\n    prometheus:\n      enabled: true\n",
        encoding="utf-8",
    )
    config = load_config(path, {}).config
    asyncio.run(prepare_database(config))
    before = len(batch._pending)
    warm_up(config, prepare(config))
    assert len(batch._pending) > before  # the measured registry and app were built
    assert [b for b in batch._pending if _pending_work(b)] == []


def test_dropped_counts_are_never_written() -> None:
    family = Histogram("dockyard_test_dropped_seconds", "test", buckets=(0.1, 1))
    counter_family = Counter("dockyard_test_dropped", "test")
    histogram, counter = batch.histogram(family), batch.counter(counter_family)
    gauge = batch.gauge(Gauge("dockyard_test_dropped_live", "test"))
    histogram.observe(0.5)
    counter.inc(3)
    gauge.inc()
    batch.drop_pending()
    batch.flush()
    assert REGISTRY.get_sample_value("dockyard_test_dropped_seconds_count") == 0
    assert REGISTRY.get_sample_value("dockyard_test_dropped_total") == 0
    assert REGISTRY.get_sample_value("dockyard_test_dropped_live") == 0
    histogram.observe(0.5)  # what comes after the drop is written
    batch.flush()
    assert REGISTRY.get_sample_value("dockyard_test_dropped_seconds_count") == 1
