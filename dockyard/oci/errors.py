"""The registry's wire errors, registered once with their code, message and HTTP status.

Every failure a client can see is a :class:`RegistryError` carrying one :class:`ErrorCode`;
the API layer renders it as ``{"errors": [{"code", "message", "detail"}]}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorCode:
    """A registered wire error: the spec's code string, a default message and a status."""

    code: str
    message: str
    status: int
    description: str


ERROR_CODES: dict[str, ErrorCode] = {}


def _register(code: str, message: str, status: int, description: str) -> ErrorCode:
    error = ErrorCode(code, message, status, description)
    ERROR_CODES[code] = error
    return error


# The OCI Distribution Spec's codes (spec.md, "Error Codes").
BLOB_UNKNOWN = _register(
    "BLOB_UNKNOWN",
    "blob unknown to registry",
    404,
    "The blob is not in this repository.",
)
BLOB_UPLOAD_INVALID = _register(
    "BLOB_UPLOAD_INVALID",
    "blob upload invalid",
    400,
    "The upload failed or its data is invalid; the client may restart it.",
)
BLOB_UPLOAD_UNKNOWN = _register(
    "BLOB_UPLOAD_UNKNOWN",
    "blob upload unknown to registry",
    404,
    "The upload session does not exist (never started, completed or cancelled).",
)
DIGEST_INVALID = _register(
    "DIGEST_INVALID",
    "provided digest did not match uploaded content",
    400,
    "A digest is malformed, uses an unsupported algorithm, or does not match the content.",
)
MANIFEST_BLOB_UNKNOWN = _register(
    "MANIFEST_BLOB_UNKNOWN",
    "manifest references a manifest or blob unknown to registry",
    400,
    "A manifest references a blob or child manifest that this repository does not have.",
)
MANIFEST_INVALID = _register(
    "MANIFEST_INVALID",
    "manifest invalid",
    400,
    "The manifest is malformed, too large, of an unsupported type or fails validation.",
)
MANIFEST_UNKNOWN = _register(
    "MANIFEST_UNKNOWN",
    "manifest unknown to registry",
    404,
    "No manifest with this tag or digest in this repository.",
)
NAME_INVALID = _register(
    "NAME_INVALID",
    "invalid repository name",
    400,
    "The repository name does not match the spec's grammar or is too long.",
)
NAME_UNKNOWN = _register(
    "NAME_UNKNOWN",
    "repository name not known to registry",
    404,
    "The repository does not exist.",
)
SIZE_INVALID = _register(
    "SIZE_INVALID",
    "provided length did not match content length",
    400,
    "The body's length does not match Content-Length or the declared size.",
)
UNAUTHORIZED = _register(
    "UNAUTHORIZED",
    "authentication required",
    401,
    "The request needs credentials.",
)
DENIED = _register(
    "DENIED",
    "requested access to the resource is denied",
    403,
    "The credentials do not allow this action.",
)
UNSUPPORTED = _register(
    "UNSUPPORTED",
    "the operation is unsupported",
    405,
    "The operation is disabled by configuration (e.g. deletes) or not implemented.",
)
TOOMANYREQUESTS = _register(
    "TOOMANYREQUESTS",
    "too many requests",
    429,
    "The client sent too many requests; retry after the given time.",
)
# Docker Registry HTTP API V2 extras.
TAG_INVALID = _register(
    "TAG_INVALID",
    "manifest tag did not match URI",
    400,
    "The tag is malformed.",
)
BLOB_UPLOAD_RANGE_INVALID = _register(
    "RANGE_INVALID",
    "invalid content range",
    416,
    "The Content-Range of a chunk does not continue the upload where it stands.",
)
PAGINATION_NUMBER_INVALID = _register(
    "PAGINATION_NUMBER_INVALID",
    "invalid number of results requested",
    400,
    "The n parameter of a listing is not a non-negative integer.",
)
UNAVAILABLE = _register(
    "UNAVAILABLE",
    "service unavailable",
    503,
    "The registry is in read-only mode or a backend is unavailable.",
)
STORAGE_FULL = _register(
    "STORAGE_FULL",
    "the registry's storage is full",
    507,
    "The storage has no space left (a full disk or a quota); nothing was stored. "
    "Dockyard's own code: registry:2 answers 500 UNKNOWN here.",
)
UNKNOWN = _register(
    "UNKNOWN",
    "unknown error",
    500,
    "An unexpected error; the server log has the details.",
)


class RegistryError(Exception):
    """A failure with a wire error code; ``detail`` is JSON-serialisable context."""

    def __init__(
        self,
        error: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or error.message)
        self.error = error
        self.message = message or error.message
        self.detail = detail
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.error.status

    def body(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.error.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}

    def json_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()
