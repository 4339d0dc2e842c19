"""One log line per request: method, path, status, bytes, duration, user, user agent — as
text or JSON.

The fields travel in the record's ``access`` attribute; the JSON formatter writes them as
keys of the line, the text formatter prints the message. The query string is logged with
the values of the registry API's own parameters (``digest``, ``mount``, ``n``, ...) and
every other value as ``***``: a query can carry credentials. No header is logged but
``User-Agent`` (credentials travel in headers). The user
is the name the request authenticated as (:func:`remember_user`, called once access control
knows the caller), never what a client merely claimed: a failed login logs no user, so a
password typed into the user field stays out of the log.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

# Distribution's field names, so that log pipelines built for registry:2 find them.
USER_FIELD = "auth.user.name"
USER_AGENT_FIELD = "http.request.useragent"
REQUEST_ID_FIELD = "http.request.id"
_USER_KEY = web.RequestKey("dockyard.user", str)  # the request's authenticated user
_CLIENT_KEY = web.RequestKey("dockyard.client", str)  # the client behind a trusted proxy
REQUEST_ID_KEY = web.RequestKey("dockyard.request_id", str)  # set by api/request_id.py
# Longer user agents are cut: real clients send about 150 characters at most.
MAX_USER_AGENT = 512
# Query parameters whose values are logged: the distribution API's and the token
# endpoint's that name no one. Others (``account``, anything unknown) show as ``***``.
SHOWN_PARAMETERS = frozenset(
    {"digest", "mount", "from", "n", "last", "ns", "artifactType", "service", "scope"}
)


def remember_user(request: BaseRequest, name: str | None) -> None:
    """Record the user ``request`` authenticated as, for its access log line."""
    if name:
        request[_USER_KEY] = name


def carry_to_logged(forwarded: BaseRequest, logged: BaseRequest) -> None:
    """aiohttp logs the request it made, not the clone that the forwarded middleware hands
    on (with the client address a trusted proxy forwarded): copy back what the line needs."""
    if forwarded.remote:
        logged[_CLIENT_KEY] = forwarded.remote
    user = forwarded.get(_USER_KEY)
    if user:
        logged[_USER_KEY] = user


def _text_field(value: str) -> str:
    """``value`` as one unambiguous token of a text line: bare when plain, else quoted with
    JSON escapes (spaces, quotes, control characters, and ``-``, which means no user)."""
    if value not in ("", "-") and value.isprintable() and not any(c in value for c in ' "\\'):
        return value
    return json.dumps(value)


def logged_uri(request: BaseRequest) -> str:
    """The request's path and query, with the values of parameters outside
    :data:`SHOWN_PARAMETERS` masked, and the shown ones percent-encoded again (no quote or
    line break of a client's reaches the line)."""
    if not request.query_string:
        return request.path
    pairs = (
        f"{quote(name, safe='')}={quote(value, safe=':/@,') if name in SHOWN_PARAMETERS else '***'}"
        for name, value in request.query.items()
    )
    return f"{request.path}?{'&'.join(pairs)}"


def go_duration(seconds: float) -> str:
    """``seconds`` the way Go prints a time.Duration (``1.5s``, ``12.345ms``, ``850µs``),
    as registry:2 logs ``http.response.duration``."""
    if seconds >= 1:
        return f"{seconds:.6g}s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.6g}ms"
    return f"{seconds * 1_000_000:.6g}\u00b5s"


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
        user = request.get(_USER_KEY)
        agent = request.headers.get("User-Agent", "")[:MAX_USER_AGENT]
        remote = request.get(_CLIENT_KEY) or request.remote or "-"
        uri = logged_uri(request)
        fields: dict[str, object] = {
            "http.request.remoteaddr": remote,
            "http.request.method": request.method,
            "http.request.uri": uri,
            "http.request.host": request.host,
            "http.response.status": response.status,
            "http.response.written": length,
            "http.response.duration": go_duration(time),
            USER_AGENT_FIELD: agent,
        }
        request_id = request.get(REQUEST_ID_KEY)
        if request_id:
            fields[REQUEST_ID_FIELD] = request_id
        if user:
            fields[USER_FIELD] = user
        self.logger.info(
            '%s %s "%s %s" %d %d %.1fms %s',
            remote,
            _text_field(user) if user else "-",
            request.method,
            uri,
            response.status,
            length,
            time * 1000,
            json.dumps(agent),
            extra={"access": fields, "request_id": request_id},
        )
