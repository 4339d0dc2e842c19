"""Token authentication through the API: the Docker token flow as a client sees it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.auth.keys import TrustedKeys, libtrust_key_id
from dockyard.auth.token import Realm, TokenController, TokenVerifier
from dockyard.registry.service import Registry
from tests.api.helpers import Client, digest_of
from tests.security.pki import Issued, issue, new_key

SERVICE, ISSUER = "registry.test", "auth.test"


@pytest.fixture(scope="module")
def signer() -> Issued:
    return issue("token signer", new_key("rsa"))


def token(signer: Issued, access: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": SERVICE, "sub": "alice", "exp": now + 60, "nbf": now,
            "iat": now, "access": access, **extra}  # fmt: skip
    kid = libtrust_key_id(signer.key.public_key())
    encoded = jwt.encode(body, signer.key, algorithm="RS256", headers={"kid": kid})
    return {"Authorization": f"Bearer {encoded}"}


def repo(name: str, *actions: str) -> dict[str, Any]:
    return {"type": "repository", "name": name, "actions": list(actions)}


@pytest.fixture
async def client(registry: Registry, signer: Issued) -> AsyncIterator[Client]:
    trusted = TrustedKeys()
    trusted.add_certificates([signer.cert])
    controller = TokenController(
        Realm(path="/auth/token"), SERVICE, TokenVerifier(ISSUER, SERVICE, trusted)
    )
    app = build_app(registry, access=controller)
    app.on_cleanup.clear()
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_base_challenge_points_at_the_realm_on_the_host_used(client: Client) -> None:
    response = await client.get("/v2/")
    assert response.status == 401
    host = f"{client.server.host}:{client.server.port}"
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="http://{host}/auth/token",service="registry.test"'
    )


async def test_push_pull_with_scoped_tokens(client: Client, signer: Issued) -> None:
    data = b"token-pushed layer"
    digest = digest_of(data)
    url = f"/v2/team/app/blobs/uploads/?digest={digest}"
    response = await client.post(url, data=data)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].endswith('scope="repository:team/app:push"')

    pull_only = token(signer, [repo("team/app", "pull")])
    response = await client.post(url, data=data, headers=pull_only)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].endswith(
        'scope="repository:team/app:push",error="insufficient_scope"'
    )
    body = await response.json()
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    assert body["errors"][0]["detail"] == [
        {"Type": "repository", "Class": "", "Name": "team/app", "Action": "push"}
    ]

    push = token(signer, [repo("team/app", "pull", "push")])
    assert (await client.post(url, data=data, headers=push)).status == 201
    response = await client.get(f"/v2/team/app/blobs/{digest}", headers=pull_only)
    assert await response.read() == data
    # the same token on another repository is refused
    response = await client.get(f"/v2/team/other/blobs/{digest}", headers=pull_only)
    assert response.status == 401
    # deleting needs "delete"
    response = await client.delete(f"/v2/team/app/blobs/{digest}", headers=push)
    assert response.status == 401


async def test_catalog_needs_the_catalog_scope(client: Client, signer: Issued) -> None:
    response = await client.get("/v2/_catalog", headers=token(signer, [repo("a", "pull")]))
    assert response.status == 401
    assert 'scope="registry:catalog:*"' in response.headers["WWW-Authenticate"]
    catalog = token(signer, [{"type": "registry", "name": "catalog", "actions": ["*"]}])
    assert (await client.get("/v2/_catalog", headers=catalog)).status == 200


async def test_invalid_tokens(client: Client, signer: Issued) -> None:
    for headers in (
        token(signer, [repo("team/app", "pull")], aud="elsewhere"),
        token(signer, [repo("team/app", "pull")], exp=int(time.time()) - 3600),
        {"Authorization": "Bearer not-a-token"},
    ):
        response = await client.get("/v2/team/app/tags/list", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].endswith(',error="invalid_token"')
        assert (await response.json())["errors"][0]["code"] == "UNAUTHORIZED"


async def test_mount_uses_the_from_scope(client: Client, signer: Issued) -> None:
    data = b"mount me"
    digest = digest_of(data)
    src = token(signer, [repo("src/app", "pull", "push")])
    await client.post(f"/v2/src/app/blobs/uploads/?digest={digest}", data=data, headers=src)
    mount = f"/v2/dst/app/blobs/uploads/?mount={digest}&from=src/app"
    only_dst = token(signer, [repo("dst/app", "pull", "push")])
    assert (await client.post(mount, headers=only_dst)).status == 202
    both = token(signer, [repo("dst/app", "pull", "push"), repo("src/app", "pull")])
    assert (await client.post(mount, headers=both)).status == 201
    # by digest alone (no "from"), a token never mounts
    x_push = token(signer, [repo("x/app", "push")])
    assert (
        await client.post(f"/v2/x/app/blobs/uploads/?mount={digest}", headers=x_push)
    ).status == 202
