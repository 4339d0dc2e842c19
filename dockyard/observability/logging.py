"""Log set-up from ``log.level``, ``log.formatter`` and ``log.fields``: text or JSON lines."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


# Credentials that must never reach a log line, whatever logs them (our code logs none; this
# is the net under a library's error message that quotes a header or a URL).
_CREDENTIALS = re.compile(
    r"(?i)(?P<keep>\b(?:proxy-)?authorization\b[\"']?\s*[:=,]\s*[\"']?)"
    r"(?:(?:basic|bearer|digest|negotiate)\s+)?[^\s\"',;]+"
    r"|(?P<keep2>\b(?:basic|bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<keep3>\b(?:password|passwd|pass|secret|refresh_token|access_token|token)=)[^&\s\"']+"
    r"|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
)


def _hide(match: re.Match[str]) -> str:
    kept = match.group("keep") or match.group("keep2") or match.group("keep3") or ""
    return kept + "<redacted>"


def redact(text: str) -> str:
    """``text`` with Authorization values, Basic/Bearer credentials, password or token
    parameters and JWTs replaced by ``<redacted>``."""
    return _CREDENTIALS.sub(_hide, text)


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self._fields = fields

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            **self._fields,
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["http.request.id"] = request_id
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry["msg"] = "request"
            # the user agent is whatever the client sent: it goes through the net too
            entry.update({k: redact(v) if isinstance(v, str) else v for k, v in access.items()})
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._suffix = "".join(f" {k}={v}" for k, v in sorted(fields.items()))

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        suffix = f" http.request.id={request_id}{self._suffix}" if request_id else self._suffix
        return redact(super().format(record)) + suffix


def configure_logging(
    level: str,
    formatter: str,
    fields: dict[str, str],
    filters: Sequence[logging.Filter] = (),
) -> None:
    """One handler on stderr; ``filters`` add to each record what the formatters print
    (the request id)."""
    handler = logging.StreamHandler(sys.stderr)
    for record_filter in filters:
        handler.addFilter(record_filter)
    handler.setFormatter(
        JsonFormatter(fields) if formatter in ("json", "logstash") else TextFormatter(fields)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level.lower(), logging.INFO))
    # aiohttp's own access logger is replaced by dockyard's; its server logger stays.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Alembic's lines (plugins, each connection it inspects); what a migration changed is
    # reported by dockyard.database instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
