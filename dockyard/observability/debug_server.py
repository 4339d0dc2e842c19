"""The debug server (``http.debug.addr``): health, probes and, when enabled, the metrics.

* ``GET /debug/health``: registry:2's answer: ``200 {}``, or ``503`` with each failing
  check's error (``{"storagedriver_filesystem": "..."}``).
* ``GET /debug/health/live``: 200 while the process serves (a liveness probe: it never
  looks at the checks, so a failing backend does not get the process restarted).
* ``GET /debug/health/ready``: the same answer as ``/debug/health`` (a readiness probe:
  take the replica out of the load balancer while a check fails).
* ``GET <prometheus.path>``: the metrics of every worker, when ``prometheus.enabled``.
"""

from __future__ import annotations

import json

from aiohttp import web

from dockyard.observability.batch import flush
from dockyard.observability.debug_paths import HEALTH_PATH, LIVE_PATH, READY_PATH
from dockyard.observability.health import HealthChecks
from dockyard.observability.multiprocess import exposition

_JSON = "application/json; charset=utf-8"


def health_response(checks: HealthChecks | None) -> web.Response:
    failures = checks.failures() if checks is not None else {}
    return web.Response(
        status=503 if failures else 200,
        body=(json.dumps(failures) + "\n").encode(),
        headers={"Content-Type": _JSON},
    )


def build_debug_app(checks: HealthChecks | None, metrics_path: str | None) -> web.Application:
    app = web.Application()

    async def health(_request: web.Request) -> web.Response:
        return health_response(checks)

    async def live(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"status": "alive"}\n', headers={"Content-Type": _JSON})

    app.router.add_get(HEALTH_PATH, health, allow_head=False)
    app.router.add_get(READY_PATH, health, allow_head=False)
    app.router.add_get(LIVE_PATH, live)
    if metrics_path is not None:

        async def scrape(_request: web.Request) -> web.Response:
            flush()  # this worker's latest counts; the others flush every second
            body, content_type = exposition()
            response = web.Response(body=body)
            response.headers["Content-Type"] = content_type
            return response

        app.router.add_get(metrics_path, scrape)
    return app
