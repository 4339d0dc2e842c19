"""Every request gets an id: in the ``X-Request-Id`` response header, in the request's
access-log line (``http.request.id``) and in every log line logged while it is served.

The id is a fresh version-4 UUID, the form Distribution gives it in its logs and in its
notifications' ``request.id``. One that a request already carries is kept only when it
comes from a trusted proxy (``security.trustedproxies``) and looks like an id (1 to 128
letters, digits, ``-``, ``_``, ``.``, ``:``): a client cannot plant text in the logs, nor
pass itself off as another request.
"""

from __future__ import annotations

import re
from random import getrandbits

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.api.access_log import REQUEST_ID_KEY
from dockyard.api.forwarded import ProxyPolicy
from dockyard.api.request_context import current

HEADER = "X-Request-Id"
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A version-4 UUID's fixed bits: the version nibble (4) and the RFC 4122 variant (10).
_FIXED_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_FIXED_SET = (0x4 << 76) | (0x2 << 62)


def new_request_id() -> str:
    """A random version-4 UUID from the process's generator (reseeded in each forked
    worker): an id must be unique, not secret. ``str(uuid.uuid4())`` costs a system call
    (``os.urandom``) and a ``UUID`` object per request, about 3.6 µs; this about 1 µs."""
    digits = "%032x" % (getrandbits(128) & _FIXED_CLEAR | _FIXED_SET)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def request_id_of(request: web.BaseRequest, proxies: ProxyPolicy) -> str:
    given = request.headers.get(HEADER)
    if given and _VALID.fullmatch(given) and proxies.is_trusted(request.remote):
        return given
    return new_request_id()


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
