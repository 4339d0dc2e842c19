"""What a remote registry's failures look like to callers.

``RemoteError`` carries the HTTP status and the first error of the registry's JSON body
(``{"errors": [{"code", "message"}]}``). ``RemoteUnavailable`` is the subset a cache may
answer from stale content: the registry could not be reached, timed out, shed load (429) or
failed (5xx).
"""

from __future__ import annotations

import json


class RemoteError(Exception):
    """A remote registry refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class RemoteUnavailable(RemoteError):
    """The registry is unreachable, timed out, rate-limited us (429) or failed (5xx)."""


def is_unavailable_status(status: int) -> bool:
    return status == 429 or status >= 500


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """The (code, message) of the first error in a registry's JSON error body."""
    try:
        document = json.loads(body)
        first = document["errors"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None, None
    if not isinstance(first, dict):
        return None, None
    code, message = first.get("code"), first.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


def error_from_response(what: str, status: int, body: bytes) -> RemoteError:
    """The error a response of ``status`` with ``body`` means for the request ``what``."""
    code, message = parse_error_body(body)
    text = f"{what}: HTTP {status}"
    if code or message:
        text += f" {code or ''}{': ' if code and message else ''}{message or ''}"
    else:
        snippet = body[:200].decode("utf-8", "replace").strip()
        if snippet:
            text += f" {snippet}"
    kind = RemoteUnavailable if is_unavailable_status(status) else RemoteError
    return kind(text, status=status, code=code)
