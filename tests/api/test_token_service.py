"""Dockyard's token service through the API: the endpoint, rules, filtered listings."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.auth.htpasswd import HtpasswdFile
from dockyard.auth.issuer import RulesTokenController, TokenIssuer
from dockyard.auth.keys import TrustedKeys
from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.auth.rules import AccessRules, Rule
from dockyard.auth.token import Realm, TokenVerifier
from dockyard.registry.service import Registry
from tests.api.helpers import Client, digest_of
from tests.security.pki import new_key

SERVICE, ISSUER = "registry.test", "dockyard-token-service"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}


def basic(user: str) -> dict[str, str]:
    raw = f"{user}:{PASSWORDS[user]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
async def client(registry: Registry, tmp_path: Path) -> AsyncIterator[Client]:
    lines = [
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode()}\n"
        for user, pw in PASSWORDS.items()
    ]
    (tmp_path / "htpasswd").write_text("".join(lines))
    rules = AccessRules(
        [
            Rule.build(["public/**"], ["pull"], anonymous=True),
            Rule.build(["team/**"], ["pull", "push"], groups=["developers"]),
            Rule.build(["users/${user}/**"], ["*"], users=["*"]),
        ],
        groups={"developers": ["alice"]},
        admin_users=["root"],
    )
    key = new_key("ec")
    trusted = TrustedKeys()
    trusted.add_key(key.public_key())
    issuer = TokenIssuer(
        key, ISSUER, SERVICE, HtpasswdFile(tmp_path / "htpasswd"), rules, expiration=120,
        limiter=FailedLoginLimiter(3, 60),
    )  # fmt: skip
    controller = RulesTokenController(
        Realm(path="/auth/token"), SERVICE, TokenVerifier(ISSUER, SERVICE, trusted), rules
    )
    app = build_app(registry, access=controller, token_service=("/auth/token", issuer))
    app.on_cleanup.clear()
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def get_token(client: Client, *scopes: str, user: str | None = None) -> dict[str, str]:
    query = [("service", SERVICE), *(("scope", scope) for scope in scopes)]
    response = await client.get("/auth/token", params=query, headers=basic(user) if user else {})
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 120
    return {"Authorization": f"Bearer {body['token']}"}


def claims(headers: dict[str, str]) -> dict[str, Any]:
    token = headers["Authorization"].removeprefix("Bearer ")
    return jwt.decode(token, options={"verify_signature": False})


async def test_the_token_flow(client: Client) -> None:
    response = await client.get("/v2/")
    assert response.status == 401
    host = f"{client.server.host}:{client.server.port}"
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="http://{host}/auth/token",service="registry.test"'
    )
    anonymous = await get_token(client)
    assert claims(anonymous)["sub"] == ""
    assert claims(anonymous)["access"] == []
    assert (await client.get("/v2/", headers=anonymous)).status == 200

    token = await get_token(client, "repository:team/app:pull,push", user="alice")
    body = claims(token)
    assert body["iss"] == ISSUER and body["aud"] == SERVICE and body["sub"] == "alice"
    assert body["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull", "push"]}
    ]
    header = jwt.get_unverified_header(token["Authorization"].removeprefix("Bearer "))
    assert header["alg"] == "ES256" and ":" in header["kid"]
    data = b"pushed with a token"
    url = f"/v2/team/app/blobs/uploads/?digest={digest_of(data)}"
    assert (await client.post(url, data=data, headers=token)).status == 201


async def test_rules_decide_what_a_token_holds(client: Client) -> None:
    # bob is no developer: his token holds nothing for team/app, and he is told DENIED
    token = await get_token(client, "repository:team/app:pull,push", user="bob")
    assert claims(token)["access"] == []
    response = await client.get("/v2/team/app/tags/list", headers=token)
    assert response.status == 403
    assert (await response.json())["errors"][0]["code"] == "DENIED"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    # alice asked only for pull: pushing needs a new token; the 403 says so, with the scope
    pull = await get_token(client, "repository:team/app:pull", user="alice")
    response = await client.post("/v2/team/app/blobs/uploads/", headers=pull)
    assert response.status == 403
    assert response.headers["WWW-Authenticate"].endswith(
        'scope="repository:team/app:push",error="insufficient_scope"'
    )
    assert "ask for the scope" in (await response.json())["errors"][0]["message"]
    # anonymous callers get public pull only, and 401 (logging in may help) otherwise
    anonymous = await get_token(client, "repository:public/tools:pull,push")
    assert claims(anonymous)["access"] == [
        {"type": "repository", "name": "public/tools", "actions": ["pull"]}
    ]
    response = await client.post("/v2/public/tools/blobs/uploads/", headers=anonymous)
    assert response.status == 401
    # everyone has a namespace of their own
    own = await get_token(client, "repository:users/bob/app:*", user="bob")
    assert claims(own)["access"][0]["actions"] == ["pull", "push", "delete"]


async def test_catalog_shows_what_the_caller_may_pull(client: Client) -> None:
    root = await get_token(
        client,
        "repository:team/app:push",
        "repository:public/tools:push",
        "repository:users/bob/app:push",
        "repository:secret/thing:push",
        user="root",
    )
    for name in ("team/app", "public/tools", "users/bob/app", "secret/thing"):
        data = name.encode()
        url = f"/v2/{name}/blobs/uploads/?digest={digest_of(data)}"
        assert (await client.post(url, data=data, headers=root)).status == 201

    async def catalog(user: str | None) -> list[str]:
        token = await get_token(client, "registry:catalog:*", user=user)
        response = await client.get("/v2/_catalog", headers=token)
        assert response.status == 200, await response.text()
        return list((await response.json())["repositories"])

    assert await catalog("root") == ["public/tools", "secret/thing", "team/app", "users/bob/app"]
    assert await catalog("alice") == ["public/tools", "team/app"]
    assert await catalog("bob") == ["public/tools", "users/bob/app"]
    assert await catalog(None) == ["public/tools"]


async def test_wrong_password_and_the_failed_login_limit(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bad = {"Authorization": "Basic " + base64.b64encode(b"alice:guess-one").decode()}
    for _ in range(3):
        response = await client.get("/auth/token", params={"service": SERVICE}, headers=bad)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="registry.test token service"'
        assert (await response.json())["errors"][0]["code"] == "UNAUTHORIZED"
    response = await client.get("/auth/token", params={"service": SERVICE}, headers=basic("alice"))
    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0
    assert (await response.json())["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "guess-one" not in caplog.text and "alice-pw" not in caplog.text
    assert "'alice'" in caplog.text


async def test_oauth2_password_grant(client: Client) -> None:
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "alice-pw",
        "service": SERVICE,
        "scope": "repository:team/app:pull repository:users/alice/x:push",
        "client_id": "containerd-client",
    }
    response = await client.post("/auth/token", data=form)
    assert response.status == 200
    body = await response.json()
    assert [
        a["name"] for a in claims({"Authorization": f"Bearer {body['access_token']}"})["access"]
    ] == [
        "team/app",
        "users/alice/x",
    ]
    response = await client.post("/auth/token", data={**form, "password": "nope"})
    assert response.status == 401
    response = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": "x"}
    )
    assert response.status == 405
    assert (await client.put("/auth/token")).status == 405


async def test_other_services_and_bad_credentials(client: Client) -> None:
    response = await client.get("/auth/token", params={"service": "elsewhere"})
    assert response.status == 403
    response = await client.get("/auth/token", headers={"Authorization": "Bearer x"})
    assert response.status == 401
