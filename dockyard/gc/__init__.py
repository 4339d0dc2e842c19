"""Garbage collection while serving: the collector, the report of a run, the scheduled job,
and the ``HEAD`` that keeps a blob through the review delay.

The database knows every reference, so nothing walks the storage to mark: candidates come
from queries (:mod:`dockyard.metadata.gc_queries`), and each is deleted under its row lock,
bytes before rows (docs/garbage-collection.md).
"""
