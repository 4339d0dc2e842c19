"""Telling a client that went away from a server fault.

A client that closes its connection in the middle of a request (a cancelled push, a
pull stopped with Ctrl-C, a node that died) makes reading the body or writing the
response fail. That is not the registry's error: it is logged as one line at info level
and counted under nginx's status 499 (client closed request), so that it neither fills
the log with tracebacks nor shows as a 500 on the dashboards and alerts.
"""

from __future__ import annotations

from aiohttp import web

#: nginx's status for a request whose client closed the connection before the answer
CLIENT_CLOSED_REQUEST = 499


class ClientGoneError(ConnectionResetError):
    """Writing to the client's socket failed: raised where the registry writes to it
    itself (sendfile), so it is not mistaken for a failure of the storage."""


def client_went_away(request: web.BaseRequest, exc: BaseException) -> bool:
    """Whether ``exc``, raised while serving ``request``, is the client's leaving."""
    if isinstance(exc, ClientGoneError):
        return True
    transport = request.transport
    return transport is None or transport.is_closing()
