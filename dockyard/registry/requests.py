"""Who asked for the use case running now: the HTTP request's details, for the features
that describe what happened (notifications).

The API sets them once per request, in the dispatcher, after access control knows the
caller (:func:`set_current_request`); a wrapper of the use cases reads them
(:func:`current_request`). They are built only when read: a request that nothing
describes pays for one context variable.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestDetails:
    """Distribution's request record, the caller's name, and the base of the registry's
    URLs as this request sees them (``https://host[/prefix]``, or the prefix alone with
    relative URLs)."""

    id: str
    addr: str
    host: str
    method: str
    useragent: str
    actor: str | None
    base_url: str


class LazyRequest:
    """Request details built on first use, then kept (one request id per request)."""

    __slots__ = ("_build", "_details")

    def __init__(self, build: Callable[[], RequestDetails]) -> None:
        self._build = build
        self._details: RequestDetails | None = None

    def get(self) -> RequestDetails:
        if self._details is None:
            self._details = self._build()
        return self._details


_current: ContextVar[LazyRequest | None] = ContextVar("dockyard_request", default=None)


def set_current_request(build: Callable[[], RequestDetails]) -> None:
    """Make ``build()`` the details of the request this task serves."""
    _current.set(LazyRequest(build))


def current_request() -> RequestDetails | None:
    """The details of the request being served, None outside a request."""
    lazy = _current.get()
    return None if lazy is None else lazy.get()
