"""One scrape for every worker: prometheus-client's multiprocess mode, set up by ``serve``.

``serve`` makes a private directory for the workers' value files before anything imports
prometheus-client (the library reads ``PROMETHEUS_MULTIPROC_DIR`` at import), so a scrape
of any worker sums what all of them counted. The directory is new at every start (nothing
left from a previous run is counted again) and removed at exit. A worker that dies has
its live gauges (requests in flight, uploads in progress) dropped by
:func:`worker_died`; its counters stay, so that totals never go backwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"


def prepare_directory() -> str:
    """A fresh private directory for the value files, named in the environment."""
    if "prometheus_client" in sys.modules:  # too late: its values would stay per process
        logging.getLogger("dockyard").warning(
            "metrics: prometheus_client was imported before serve set %s; each worker "
            "will show only its own counts",
            ENVIRONMENT,
        )
    directory = tempfile.mkdtemp(prefix="dockyard-metrics-")
    os.environ[ENVIRONMENT] = directory
    return directory


def worker_died(pid: int) -> None:
    """Forget the live gauges of the worker ``pid``."""
    if os.environ.get(ENVIRONMENT):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_directory(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    if os.environ.get(ENVIRONMENT) == directory:
        del os.environ[ENVIRONMENT]


def exposition() -> tuple[bytes, str]:
    """The metrics of every process (or of this one, outside ``serve``), and their type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    registry = REGISTRY
    if os.environ.get(ENVIRONMENT):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
