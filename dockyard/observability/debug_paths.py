"""The paths the debug server answers itself (``http.debug``)."""

from __future__ import annotations

from typing import Final

HEALTH_PATH: Final = "/debug/health"
LIVE_PATH: Final = "/debug/health/live"
READY_PATH: Final = "/debug/health/ready"
DEFAULT_METRICS_PATH: Final = "/metrics"
