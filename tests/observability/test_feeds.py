"""The plain calls other capabilities report through, as the exposition shows them."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dockyard.observability import feeds


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return found or 0.0


def test_gc_and_retention_runs() -> None:
    runs, blobs = value("dockyard_gc_runs_total"), value("dockyard_gc_deleted_blobs_total")
    freed = value("dockyard_gc_freed_bytes_total")
    feeds.gc_finished(deleted_manifests=2, deleted_blobs=5, freed_bytes=4096)
    assert value("dockyard_gc_runs_total") == runs + 1
    assert value("dockyard_gc_deleted_blobs_total") == blobs + 5
    assert value("dockyard_gc_freed_bytes_total") == freed + 4096
    tags = value("dockyard_retention_deleted_tags_total")
    feeds.retention_finished(deleted_tags=3)
    assert value("dockyard_retention_deleted_tags_total") == tags + 3


def test_notification_families_with_registry2_labels() -> None:
    feeds.endpoints_configured(["ci"])
    assert value("registry_notifications_pending", endpoint="ci") == 0
    feeds.notification_event("ci", "Events", 4)
    feeds.notification_event("ci", "Successes")
    feeds.notification_status("ci", 200)
    feeds.notification_status("ci", 503)
    feeds.notification_pending("ci", 3)
    feeds.notification_dropped("ci")
    assert value("registry_notifications_events_total", type="Events", endpoint="ci") >= 4
    assert value("registry_notifications_status_total", code="200 OK", endpoint="ci") >= 1
    status = {"code": "503 Service Unavailable", "endpoint": "ci"}
    assert value("registry_notifications_status_total", **status) >= 1
    assert value("registry_notifications_pending", endpoint="ci") == 3
    assert value("dockyard_notifications_dropped_total", endpoint="ci") >= 1
