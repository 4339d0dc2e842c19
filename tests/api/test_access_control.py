"""The API asks access control for every request: the route table's needs, challenges,
the optional access of a mount, filtered catalogs, read-only mode, forwarded headers."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import bcrypt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.api.forwarded import ProxyPolicy, parse_networks
from dockyard.api.needs import need_for
from dockyard.api.table import ACCESS, DOCKYARD_ROUTES, ROUTES
from dockyard.auth.access import Access
from dockyard.auth.controller import (
    AccessController,
    AuthRequest,
    Identity,
    ListingFilter,
    denied,
)
from dockyard.auth.htpasswd import HtpasswdController, HtpasswdFile
from dockyard.registry.service import Registry
from dockyard.registry.settings import RegistrySettings
from tests.api.helpers import Client, digest_of, error_code, path_of, push_blob, push_image

# ---- a controller that records what it is asked --------------------------------------


class Recorder(AccessController):
    """Lets everything through except ``forbidden``; hides repositories starting with
    ``hidden/`` from listings; records each request's required access."""

    def __init__(self) -> None:
        self.seen: list[list[Access]] = []
        self.forbidden: set[Access] = set()

    async def authenticate(self, request: AuthRequest, required: Sequence[Access]) -> Identity:
        self.seen.append(list(required))
        return Identity("tester")

    def authorize(
        self, identity: Identity, request: AuthRequest, required: Sequence[Access]
    ) -> None:
        if any(access in self.forbidden for access in required):
            raise denied(required)

    def allows(self, identity: Identity, access: Access) -> bool:
        return access not in self.forbidden

    def listing_filter(self, identity: Identity) -> ListingFilter | None:
        return lambda name: not name.startswith("hidden/")


async def serve(
    registry: Registry, access: AccessController, proxies: ProxyPolicy | None = None
) -> Client:
    app = build_app(registry, access=access, proxies=proxies)
    app.on_cleanup.clear()
    return TestClient(TestServer(app))


@pytest.fixture
async def recorder_client(registry: Registry) -> AsyncIterator[tuple[Client, Recorder]]:
    recorder = Recorder()
    async with await serve(registry, recorder) as test_client:
        yield test_client, recorder


def repo(name: str, action: str) -> Access:
    return Access("repository", name, action)


def test_every_route_and_method_has_an_access_need() -> None:
    for route in ROUTES + DOCKYARD_ROUTES:
        for method in route.handlers:
            assert need_for(ACCESS[route.name], method) is not None, (route.name, method)
    assert set(ACCESS) == {route.name for route in ROUTES + DOCKYARD_ROUTES}


async def test_each_call_asks_for_what_registry2_asks(
    recorder_client: tuple[Client, Recorder],
) -> None:
    client, recorder = recorder_client
    name = "team/app"
    digest, _, layers = await push_image(client, name, "v1", layers=1)
    recorder.seen.clear()
    calls: list[tuple[str, str, list[Access]]] = [
        ("GET", "/v2/", []),
        ("GET", "/v2/_catalog", [Access("registry", "catalog", "*")]),
        ("GET", f"/v2/{name}/tags/list", [repo(name, "pull")]),
        ("GET", f"/v2/{name}/manifests/v1", [repo(name, "pull")]),
        ("HEAD", f"/v2/{name}/manifests/v1", [repo(name, "pull")]),
        ("GET", f"/v2/{name}/blobs/{digest_of(layers[0])}", [repo(name, "pull")]),
        ("GET", f"/v2/{name}/referrers/{digest}", [repo(name, "pull")]),
        ("POST", f"/v2/{name}/blobs/uploads/", [repo(name, "push")]),
        ("DELETE", f"/v2/{name}/manifests/{digest}", [repo(name, "delete")]),
    ]
    for method, path, expected in calls:
        response = await client.request(method, path)
        assert response.status < 400, (method, path, await response.text())
        assert recorder.seen[-1] == expected, (method, path)
    response = await client.post(f"/v2/{name}/blobs/uploads/")
    upload = path_of(response.headers["Location"])
    for method in ("GET", "PATCH", "DELETE"):
        await client.request(method, upload)
        assert recorder.seen[-1] == [repo(name, "push")], method


async def test_a_refused_access_is_the_controllers_error(
    recorder_client: tuple[Client, Recorder],
) -> None:
    client, recorder = recorder_client
    recorder.forbidden.add(repo("secret/app", "pull"))
    response = await client.get("/v2/secret/app/tags/list")
    assert response.status == 403
    body = await response.json()
    assert body["errors"][0]["code"] == "DENIED"
    assert body["errors"][0]["detail"] == [
        {"Type": "repository", "Class": "", "Name": "secret/app", "Action": "pull"}
    ]


async def test_mount_needs_pull_on_its_source(recorder_client: tuple[Client, Recorder]) -> None:
    client, recorder = recorder_client
    data = b"layer to mount"
    digest = await push_blob(client, "src/app", data)
    recorder.forbidden.add(repo("src/app", "pull"))
    response = await client.post(f"/v2/dst/app/blobs/uploads/?mount={digest}&from=src/app")
    assert response.status == 202  # not mounted: the client uploads instead
    recorder.forbidden.clear()
    response = await client.post(f"/v2/dst/app/blobs/uploads/?mount={digest}&from=src/app")
    assert response.status == 201
    # a mount without "from" needs a caller who may pull everything
    response = await client.post(f"/v2/other/app/blobs/uploads/?mount={digest}")
    assert response.status == 202


async def test_catalog_shows_only_what_the_filter_accepts(
    recorder_client: tuple[Client, Recorder],
) -> None:
    client, _ = recorder_client
    for name in ("a/one", "hidden/b", "hidden/c", "z/two", "hidden/d", "m/three"):
        await push_blob(client, name, name.encode())
    response = await client.get("/v2/_catalog")
    assert (await response.json())["repositories"] == ["a/one", "m/three", "z/two"]
    response = await client.get("/v2/_catalog?n=2")
    assert (await response.json())["repositories"] == ["a/one", "m/three"]
    assert response.headers["Link"] == '</v2/_catalog?n=2&last=m%2Fthree>; rel="next"'
    response = await client.get("/v2/_catalog?n=2&last=m/three")
    assert (await response.json())["repositories"] == ["z/two"]
    assert "Link" not in response.headers


# ---- read-only mode ----------------------------------------------------------------------


@pytest.mark.parametrize("settings", [RegistrySettings(read_only=True)])
async def test_read_only_refuses_every_write_and_serves_reads(client: Client) -> None:
    writes = [
        ("POST", "/v2/ro/app/blobs/uploads/"),
        ("POST", f"/v2/ro/app/blobs/uploads/?digest={digest_of(b'x')}"),
        ("PATCH", "/v2/ro/app/blobs/uploads/some-id"),
        ("PUT", f"/v2/ro/app/blobs/uploads/some-id?digest={digest_of(b'x')}"),
        ("DELETE", "/v2/ro/app/blobs/uploads/some-id"),
        ("PUT", "/v2/ro/app/manifests/v1"),
        ("DELETE", "/v2/ro/app/manifests/v1"),
        ("DELETE", f"/v2/ro/app/blobs/{digest_of(b'x')}"),
    ]
    for method, path in writes:
        response = await client.request(method, path, data=b"x")
        assert response.status == 405, (method, path)
        body = await response.json()
        assert body["errors"][0]["code"] == "UNSUPPORTED"
        assert "read-only" in body["errors"][0]["message"]
    assert (await client.get("/v2/")).status == 200
    assert (await client.get("/v2/_catalog")).status == 200
    assert (await client.get("/v2/ro/app/tags/list")).status == 404


# ---- htpasswd through the API --------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
async def htpasswd_client(registry: Registry, tmp_path: Path) -> AsyncIterator[Client]:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hashed}\n")
    controller = HtpasswdController("Dockyard", HtpasswdFile(path))
    async with await serve(registry, controller) as test_client:
        yield test_client


async def test_htpasswd_challenge_and_login(htpasswd_client: Client) -> None:
    client = htpasswd_client
    response = await client.get("/v2/")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Dockyard"'
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    body = await response.json()
    assert body == {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
    response = await client.get("/v2/team/app/manifests/v1", headers=basic("alice", "nope"))
    assert response.status == 401
    body = await response.json()
    assert body["errors"][0]["detail"] == [
        {"Type": "repository", "Class": "", "Name": "team/app", "Action": "pull"}
    ]
    response = await client.head("/v2/team/app/manifests/v1")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Dockyard"'

    auth = basic("alice", "s3cret")
    assert (await client.get("/v2/", headers=auth)).status == 200
    data = b"pushed with credentials"
    response = await client.post(
        f"/v2/team/app/blobs/uploads/?digest={digest_of(data)}", data=data, headers=auth
    )
    assert response.status == 201
    response = await client.get(f"/v2/team/app/blobs/{digest_of(data)}", headers=auth)
    assert await response.read() == data
    response = await client.get("/v2/_catalog", headers=auth)
    assert json.loads(await response.read())["repositories"] == ["team/app"]


async def test_unknown_routes_and_bad_names_do_not_need_credentials(
    htpasswd_client: Client,
) -> None:
    response = await htpasswd_client.get("/v2/nothing/here")
    assert response.status == 404
    response = await htpasswd_client.get("/v2/Bad..Name/tags/list")
    assert response.status == 400
    assert await error_code(response) == "NAME_INVALID"


# ---- forwarded headers ---------------------------------------------------------------------


FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "registry.example.com",
    "X-Forwarded-For": "203.0.113.5",
}


async def test_forwarded_headers_only_from_trusted_proxies(registry: Registry) -> None:
    trusted = ProxyPolicy(parse_networks(["127.0.0.1/32", "::1"]))
    async with await serve(registry, Recorder(), trusted) as client:
        response = await client.post("/v2/fw/app/blobs/uploads/", headers=FORWARDED)
        location = response.headers["Location"]
        assert location.startswith("https://registry.example.com/v2/fw/app/blobs/uploads/")
        # a host that could bend the URL is ignored
        bad = {**FORWARDED, "X-Forwarded-Host": "evil.example/path@x"}
        response = await client.post("/v2/fw/app/blobs/uploads/", headers=bad)
        assert not response.headers["Location"].startswith("https://evil")
    async with await serve(registry, Recorder()) as client:
        response = await client.post("/v2/fw/app/blobs/uploads/", headers=FORWARDED)
        assert response.headers["Location"].startswith("http://127.0.0.1:")


def test_client_address_is_the_last_untrusted_hop() -> None:
    policy = ProxyPolicy(parse_networks(["10.0.0.0/8", "127.0.0.1"]))
    assert policy.client_address("127.0.0.1", ["198.51.100.1, 10.1.2.3"]) == "198.51.100.1"
    # a client cannot push its own guess in front of the chain
    assert policy.client_address("127.0.0.1", ["1.1.1.1, 198.51.100.1"]) == "198.51.100.1"
    assert policy.client_address("198.51.100.9", ["1.1.1.1"]) == "198.51.100.9"
    assert policy.client_address("127.0.0.1", []) == "127.0.0.1"
    assert policy.client_address("::ffff:127.0.0.1", ["198.51.100.1"]) == "198.51.100.1"
