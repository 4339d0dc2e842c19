"""The token endpoint of Dockyard's token service (``access``), at the path of the realm.

* ``GET <path>?service=...&scope=...&scope=...`` with optional ``Authorization: Basic``:
  Docker's token protocol (docker, skopeo, podman, buildah, oras use it);
* ``POST <path>`` with a form ``grant_type=password&username=...&password=...&service=...
  &scope=...``: the OAuth2 variant containerd tries first. ``refresh_token`` grants are not
  offered (no long-lived credential is ever handed out), so clients keep logging in with
  their password.

The answer is ``{"token", "access_token", "expires_in", "issued_at"}``, never cached.
"""

from __future__ import annotations

from aiohttp import web

from dockyard.api.access_log import remember_user
from dockyard.api.dispatch import error_response
from dockyard.auth.access import parse_scopes
from dockyard.auth.controller import parse_basic
from dockyard.auth.issuer import TokenIssuer, TokenRequest
from dockyard.oci import errors

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# More scopes than any client asks for at once; the rest of a longer list is ignored.
MAX_SCOPES = 64


class TokenEndpoint:
    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "POST":
                token_request = await self._from_form(request)
            elif request.method in ("GET", "HEAD"):
                token_request = self._from_query(request)
            else:
                raise errors.RegistryError(
                    errors.UNSUPPORTED,
                    f"{request.method} is not allowed on the token endpoint",
                    headers={"Allow": "GET, HEAD, POST"},
                )
            issued = await self.issuer.issue(token_request)
        except errors.RegistryError as exc:
            response = error_response(exc)
            response.headers.update(NO_STORE)
            return response
        remember_user(request, issued.user)
        return web.json_response(issued.body(), headers=NO_STORE)

    def _from_query(self, request: web.Request) -> TokenRequest:
        header = request.headers.get("Authorization")
        credentials = parse_basic(header)
        if header and credentials is None:
            raise errors.RegistryError(
                errors.UNAUTHORIZED,
                "the token endpoint takes HTTP Basic credentials",
                headers={"WWW-Authenticate": self.issuer.challenge},
            )
        return TokenRequest(
            client=request.remote or "",
            credentials=credentials,
            service=request.query.get("service"),
            scopes=parse_scopes(request.query.getall("scope", []))[:MAX_SCOPES],
        )

    async def _from_form(self, request: web.Request) -> TokenRequest:
        form = await request.post()
        grant = form.get("grant_type")
        if grant != "password":
            raise errors.RegistryError(
                errors.UNSUPPORTED,
                "only grant_type=password is supported (no refresh tokens are issued)",
                detail={"grant_type": str(grant)[:50]},
            )
        username, password = form.get("username"), form.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise errors.RegistryError(
                errors.UNAUTHORIZED,
                "username and password are required",
                headers={"WWW-Authenticate": self.issuer.challenge},
            )
        service = form.get("service")
        scopes = [value for value in form.getall("scope", []) if isinstance(value, str)]
        return TokenRequest(
            client=request.remote or "",
            credentials=(username, password),
            service=service if isinstance(service, str) else None,
            scopes=parse_scopes(scopes)[:MAX_SCOPES],
        )
