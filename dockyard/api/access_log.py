"""One log line per request: method, path, status, bytes, duration — as text or JSON.

Only the path is logged, never the query string's secrets or any header.
"""

from __future__ import annotations

import json
import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    json_format = False

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        remote = request.remote or "-"
        length = response.body_length
        if self.json_format:
            self.logger.info(
                json.dumps(
                    {
                        "msg": "request",
                        "remote": remote,
                        "method": request.method,
                        "path": request.path,
                        "status": response.status,
                        "bytes": length,
                        "duration_ms": round(time * 1000, 3),
                        "user_agent": request.headers.get("User-Agent", ""),
                    }
                )
            )
        else:
            self.logger.info(
                '%s "%s %s" %d %d %.1fms',
                remote,
                request.method,
                request.path,
                response.status,
                length,
                time * 1000,
            )


class JsonAccessLogger(AccessLogger):
    json_format = True
