"""The one aiohttp handler under ``<prefix>/v2/``: match, validate the name, check access,
call, render errors."""

from __future__ import annotations

import functools
import logging

from aiohttp import web

from dockyard.api.access_log import REQUEST_ID_KEY, remember_user
from dockyard.api.client_gone import CLIENT_CLOSED_REQUEST, client_went_away
from dockyard.api.context import Call, UrlBuilder
from dockyard.api.direct_body import finish, takes_over
from dockyard.api.needs import Need, need_for
from dockyard.api.request_id import new_request_id
from dockyard.api.routes import Route, match
from dockyard.api.table import ACCESS
from dockyard.auth.controller import AccessController, AuthRequest, OpenAccess
from dockyard.oci import errors
from dockyard.oci.names import validate_name
from dockyard.registry.requests import RequestDetails, set_current_request
from dockyard.registry.service import Registry
from dockyard.registry.uploads import IncompleteBodyError
from dockyard.storage.driver import InvalidPathError, StorageFullError

log = logging.getLogger("dockyard.api")
API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def error_response(error: errors.RegistryError) -> web.Response:
    headers = {**API_VERSION_HEADER, **error.headers, "Content-Type": "application/json"}
    # aiohttp sends no body to HEAD requests but keeps the Content-Length of this one.
    return web.Response(status=error.status, body=error.json_bytes(), headers=headers)


def request_details(request: web.Request, actor: str | None, urls: UrlBuilder) -> RequestDetails:
    """Distribution's request record: ``id`` is the request's own id (the one in its log
    lines and ``X-Request-Id``), ``addr`` the client's address with its port, or the address
    a trusted proxy forwarded."""
    addr = request.remote or ""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2 and peer[0] == addr:
        addr = f"[{addr}]:{peer[1]}" if ":" in addr else f"{addr}:{peer[1]}"
    return RequestDetails(
        id=request.get(REQUEST_ID_KEY) or new_request_id(),
        addr=addr,
        host=request.host,
        method=request.method,
        useragent=request.headers.get("User-Agent", ""),
        actor=actor,
        base_url=urls.build(request, ""),
    )


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        urls: UrlBuilder,
        routes: list[Route],
        access: AccessController | None = None,
        needs: dict[str, dict[str, Need]] | None = None,
    ) -> None:
        self._registry = registry
        self._urls = urls
        self._routes = routes
        self._access = access or OpenAccess()
        self._needs = needs if needs is not None else ACCESS

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._respond(request)
        if takes_over(request):
            await finish(request)
            response.force_close()  # the parser missed the body: no further requests
        return response

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._dispatch(request)
        except errors.RegistryError as exc:
            return error_response(exc)
        except (ConnectionError, IncompleteBodyError) as exc:
            if client_went_away(request, exc):
                log.info("%s %s: the client went away (%s)", request.method, request.path, exc)
                return web.Response(status=CLIENT_CLOSED_REQUEST)
            if isinstance(exc, ConnectionError):
                log.exception("unhandled error in %s %s", request.method, request.path)
                return error_response(errors.RegistryError(errors.UNKNOWN))
            return error_response(
                errors.RegistryError(errors.SIZE_INVALID, f"request body ended early: {exc}")
            )
        except InvalidPathError:
            return error_response(errors.RegistryError(errors.NAME_INVALID))
        except StorageFullError as exc:
            log.error("%s %s: %s", request.method, request.path, exc)
            return error_response(errors.RegistryError(errors.STORAGE_FULL))
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            return error_response(errors.RegistryError(errors.UNKNOWN))
        response.headers.update(API_VERSION_HEADER)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len(self._urls.prefix) :]
        found = match(self._routes, path)
        if found is None:
            raise errors.RegistryError(
                errors.NAME_UNKNOWN, "no such API endpoint", detail={"path": path[:300]}
            )
        handler = found.route.handlers.get(request.method)
        if handler is None:
            raise errors.RegistryError(
                errors.UNSUPPORTED,
                f"{request.method} is not allowed on this endpoint",
                headers={"Allow": ", ".join(sorted(found.route.handlers))},
            )
        proxy = self._registry.proxy
        if "name" in found.params:
            if proxy is not None:  # containerd's ?ns=docker.io picks an upstream's prefix
                found.params["name"] = proxy.namespaced(
                    found.params["name"], request.query.get("ns")
                )
            validate_name(found.params["name"])
        need = need_for(self._needs.get(found.route.name, {}), request.method)
        if need is None:  # a route without an access entry is a bug: fail closed
            raise errors.RegistryError(errors.UNKNOWN, "no access rule for this endpoint")
        required = need.required(found.params)
        caller = AuthRequest(
            authorization=request.headers.get("Authorization"),
            client=request.remote or "",
            base_url=f"{request.scheme}://{request.host}",
        )
        identity = await self._access.authenticate(caller, required)
        remember_user(request, identity.name)  # logged even when authorize refuses
        set_current_request(functools.partial(request_details, request, identity.name, self._urls))
        self._access.authorize(identity, caller, required)
        if need.delete:
            self._registry.check_delete_enabled()
        elif need.write:
            self._registry.check_writable()
        if proxy is not None and (need.write or need.delete) and "name" in found.params:
            proxy.check_writable(found.params["name"])
        call = Call(
            self._registry,
            self._urls,
            found.params,
            allows=functools.partial(self._access.allows, identity),
            visible=self._access.listing_filter(identity),
            pulls_everything=self._access.pulls_everything(identity),
        )
        return await handler(request, call)
