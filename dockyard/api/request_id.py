"""Every request gets an id: in the ``X-Request-Id`` response header, in the request's
access-log line (``http.request.id``) and in every log line logged while it is served.

The id is a fresh UUID. One that a request already carries is kept only when it comes
from a trusted proxy (``security.trustedproxies``) and looks like an id (1 to 128
letters, digits, ``-``, ``_``, ``.``, ``:``): a client cannot plant text in the logs, nor
pass itself off as another request.
"""

from __future__ import annotations

import random
import re
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.api.access_log import REQUEST_ID_KEY
from dockyard.api.forwarded import ProxyPolicy
from dockyard.api.request_context import current

HEADER = "X-Request-Id"
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(request: web.BaseRequest, proxies: ProxyPolicy) -> str:
    given = request.headers.get(HEADER)
    if given and _VALID.fullmatch(given) and proxies.is_trusted(request.remote):
        return given
    # The process's own generator (reseeded in each forked worker): an id must be unique,
    # not secret, and uuid4's os.urandom is a system call per request.
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def request_id_middleware(proxies: ProxyPolicy | None = None) -> Middleware:
    """Names each request (outermost, before the forwarded middleware rewrites it)."""
    policy = proxies or ProxyPolicy()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_of(request, policy)
        request[REQUEST_ID_KEY] = request_id
        token = current.set(request_id)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[HEADER] = request_id
            raise
        finally:
            current.reset(token)
        response.headers[HEADER] = request_id
        return response

    return middleware
