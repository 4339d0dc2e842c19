"""Every metric family Dockyard exposes, declared once (prometheus-client).

Distribution's families keep registry:2's names, labels and buckets (its go-metrics
defaults), so that dashboards and alerts written for registry:2 keep working; Dockyard's
own are named in the same style under ``dockyard_``. Families are created at import: with
``PROMETHEUS_MULTIPROC_DIR`` set (``serve`` sets it, see :mod:`.multiprocess`), their
values live in per-process files that one scrape sums. Unlabelled counters exist, at 0,
from the start.

Other capabilities never import this module: they report through plain callbacks
(:mod:`.feeds`), which the wiring connects to these families.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

# go-metrics' defaults, which registry:2's families use.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)
SIZE_BUCKETS: Final = tuple(1024.0 * 2**i for i in range(22))  # 1 KiB to 2 GiB
ACTION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Database statements are much faster than requests: start at 50 µs.
QUERY_BUCKETS: Final = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
)

# ------------------------------------------------------------------ registry:2's families

HTTP_REQUESTS = Counter(
    "registry_http_requests_total",
    "Total number of HTTP requests made.",
    ["handler", "code", "method"],
)
HTTP_DURATION = Histogram(
    "registry_http_request_duration_seconds",
    "The HTTP request latencies in seconds.",
    ["handler", "method"],
    buckets=DURATION_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "registry_http_in_flight_requests",
    "The in-flight HTTP requests.",
    ["handler"],
    multiprocess_mode="livesum",
)
HTTP_REQUEST_SIZE = Histogram(
    "registry_http_request_size_bytes",
    "The HTTP request sizes in bytes.",
    ["handler"],
    buckets=SIZE_BUCKETS,
)
HTTP_RESPONSE_SIZE = Histogram(
    "registry_http_response_size_bytes",
    "The HTTP response sizes in bytes.",
    ["handler"],
    buckets=SIZE_BUCKETS,
)
STORAGE_ACTION = Histogram(
    "registry_storage_action_seconds",
    "The number of seconds that the storage action takes",
    ["driver", "action"],
    buckets=ACTION_BUCKETS,
)
# registry:2's blob-descriptor cache counter: type is Request, Hit, Miss or Error.
STORAGE_CACHE = Counter(
    "registry_storage_cache",
    "The number of cache request received",
    ["type"],
)
NOTIFICATION_EVENTS = Counter(
    "registry_notifications_events",
    "The number of total events",
    ["type", "endpoint"],
)
NOTIFICATION_PENDING = Gauge(
    "registry_notifications_pending",
    "The gauge of pending events in queue",
    ["endpoint"],
    multiprocess_mode="livemostrecent",
)
NOTIFICATION_STATUS = Counter(
    "registry_notifications_status",
    "The number of status code",
    ["code", "endpoint"],
)

# ------------------------------------------------------------------------ Dockyard's own

PROXY_STALE = Counter(
    "dockyard_proxy_stale_served_total",
    "Cached manifests served because the upstream failed (down, timeout, 429, 5xx).",
    ["upstream", "kind"],
)

DB_QUERY = Histogram(
    "dockyard_database_query_duration_seconds",
    "Time spent running one database statement, by statement (verb and table).",
    ["statement"],
    buckets=QUERY_BUCKETS,
)
UPLOADS_IN_PROGRESS = Gauge(
    "dockyard_uploads_in_progress",
    "Blob upload requests (chunks, final PUTs, monolithic uploads) receiving bytes now.",
    multiprocess_mode="livesum",
)
BYTES_RECEIVED = Counter(
    "dockyard_http_received_bytes",
    "Bytes of request bodies received on the registry port (their Content-Length).",
)
BYTES_SENT = Counter(
    "dockyard_http_sent_bytes",
    "Bytes of response bodies sent on the registry port.",
)
CACHE_LOOKUPS = Counter(
    "dockyard_cache_lookups",
    "Lookups in Dockyard's in-process caches, by cache and result (hit or miss).",
    ["cache", "result"],
)
FAILED_LOGINS = Counter(
    "dockyard_auth_failed_logins",
    "Logins refused for a wrong user name or password.",
)
RATE_LIMITED = Counter(
    "dockyard_auth_rate_limited",
    "Login attempts refused because the client failed to log in too often (429).",
)
GC_RUNS = Counter("dockyard_gc_runs", "Garbage-collection runs finished.")
GC_DELETED_MANIFESTS = Counter(
    "dockyard_gc_deleted_manifests", "Manifests deleted by garbage collection."
)
GC_DELETED_BLOBS = Counter("dockyard_gc_deleted_blobs", "Blobs deleted by garbage collection.")
GC_FREED_BYTES = Counter("dockyard_gc_freed_bytes", "Bytes of storage freed by garbage collection.")
RETENTION_RUNS = Counter("dockyard_retention_runs", "Retention-policy runs finished.")
RETENTION_DELETED_TAGS = Counter(
    "dockyard_retention_deleted_tags", "Tags deleted by retention policies."
)
NOTIFICATIONS_DROPPED = Counter(
    "dockyard_notifications_dropped",
    "Events dropped without delivery (queue full or retries exhausted), by endpoint.",
    ["endpoint"],
)

CACHE_RESULTS: Final = ("hit", "miss")

# Labelled series that should exist, at 0, before their first event.
for _type in ("Request", "Hit", "Miss", "Error"):
    STORAGE_CACHE.labels(_type)
for _result in CACHE_RESULTS:
    CACHE_LOOKUPS.labels("tag_lists", _result)
