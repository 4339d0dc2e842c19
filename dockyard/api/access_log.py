"""One log line per request: method, path, status, bytes, duration — as text or JSON.

The fields travel in the record's ``access`` attribute; the JSON formatter writes them as
keys of the line, the text formatter prints the message. Only the path is logged: never the
query string, nor any header (credentials travel in headers).
"""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        # Bytes of the body: sendfile bypasses the writer, so its count is Content-Length.
        length = response.content_length
        if request.method == "HEAD":
            length = 0
        elif length is None:
            length = response.body_length
        fields = {
            "remote": request.remote or "-",
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": length,
            "duration_ms": round(time * 1000, 3),
        }
        self.logger.info(
            '%s "%s %s" %d %d %.1fms',
            fields["remote"],
            request.method,
            request.path,
            response.status,
            length,
            time * 1000,
            extra={"access": fields},
        )
