"""The id of the request being served, for log lines: a context variable, and the logging
filter that copies it onto every record (no aiohttp here: every command sets up logging)."""

from __future__ import annotations

import contextvars
import logging

current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dockyard_request_id", default=None
)


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being served, if any, on every record
    (``record.request_id``), for the formatters to print."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current.get()
        return True
