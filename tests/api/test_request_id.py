"""Request ids: in the response header, in the access line, in every line logged while the
request is served, in JSON lines under Distribution's field names; a proxy's id believed
only from a trusted proxy; no credential in any of those lines."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.access_log import AccessLogger
from dockyard.api.app import build_app
from dockyard.api.forwarded import ProxyPolicy, parse_networks
from dockyard.api.request_context import RequestIdFilter
from dockyard.api.request_id import new_request_id, request_id_middleware
from dockyard.auth.htpasswd import HtpasswdController, HtpasswdFile
from dockyard.observability.logging import JsonFormatter
from dockyard.registry.service import Registry
from tests.api.helpers import Client

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")
PASSWORD = "s3cret-Passw0rd"


@pytest.fixture(params=["trusted", "untrusted"])
def trusted(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "trusted")


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Every JSON line logged during the test, as the server's handler would write it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter({"service": "registry"}))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def client(registry: Registry, tmp_path: Path, trusted: bool) -> AsyncIterator[Client]:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}\n")
    proxies = ProxyPolicy(parse_networks(["127.0.0.1"] if trusted else []))
    app = build_app(
        registry,
        access=HtpasswdController("r", HtpasswdFile(path)),
        proxies=proxies,
        outer_middlewares=[request_id_middleware(proxies)],
    )
    app.on_cleanup.clear()
    server = TestServer(app)
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("dockyard.access")
    )
    async with TestClient(server) as test_client:
        yield test_client


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_request_gets_a_fresh_id_in_header_and_lines(
    client: Client, lines: io.StringIO
) -> None:
    ids = []
    for _ in range(2):
        response = await client.get("/v2/_catalog")
        await response.read()
        ids.append(response.headers["X-Request-Id"])
    assert all(UUID.fullmatch(i) for i in ids) and ids[0] != ids[1]
    access = [e for e in _entries(lines) if e["logger"] == "dockyard.access"]
    assert [e["http.request.id"] for e in access] == ids
    entry = access[0]
    assert entry["http.request.method"] == "GET"
    assert entry["http.request.uri"] == "/v2/_catalog"
    assert entry["http.response.status"] == 401  # no credentials
    assert str(entry["http.response.duration"]).endswith(("s", "ms", "µs"))
    assert entry["service"] == "registry"


async def test_lines_logged_while_serving_carry_the_id(
    client: Client, lines: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = base64.b64encode(b"alice:not-it").decode()
    response = await client.get("/v2/", headers={"Authorization": f"Basic {wrong}"})
    await response.read()
    request_id = response.headers["X-Request-Id"]
    # the htpasswd controller logs the failed login while the request is served
    during = [e for e in _entries(lines) if e["logger"] != "dockyard.access"]
    assert during, "the failed login was not logged"
    assert all(e.get("http.request.id") == request_id for e in during)


async def test_a_proxy_id_is_kept_only_from_a_trusted_proxy(client: Client, trusted: bool) -> None:
    response = await client.get("/v2/", headers={"X-Request-Id": "edge-4711.a:b"})
    assert (response.headers["X-Request-Id"] == "edge-4711.a:b") is trusted
    for planted in ("has space", "x" * 129, "semi;colon"):
        response = await client.get("/v2/", headers={"X-Request-Id": planted})
        assert UUID.fullmatch(response.headers["X-Request-Id"]), planted


async def test_no_credential_reaches_a_line(client: Client, lines: io.StringIO) -> None:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    bearer = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    for headers, path in (
        ({"Authorization": f"Basic {basic}"}, f"/v2/_catalog?password={PASSWORD}"),
        ({"Authorization": f"Bearer {bearer}"}, "/v2/"),
        ({"Authorization": "Basic " + base64.b64encode(b"alice:wrong-pw-123").decode()}, "/v2/"),
        ({"User-Agent": f"evil Authorization: Basic {basic}"}, "/v2/"),
    ):
        await (await client.get(path, headers=headers)).read()
    text = lines.getvalue()
    assert text
    for secret in (PASSWORD, basic, bearer, "wrong-pw-123", "eyJzdWIiOiJhbGljZSJ9"):
        assert secret not in text, secret


def test_new_ids_are_version_4_uuids_and_each_forked_worker_draws_its_own() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:50]:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # a worker, as the supervisor forks it
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    drawn_by_child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(child, 0)
    assert UUID.fullmatch(drawn_by_child)
    assert drawn_by_child != new_request_id()


async def test_aiohttp_errors_and_raised_http_exceptions_carry_an_id(
    registry: Registry, lines: io.StringIO
) -> None:
    """The middlewares are bound to the routes (no aiohttp chain); a path no route takes,
    a method a route refuses and a handler's raised ``HTTPException`` still pass through
    them."""

    async def refusing(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPServiceUnavailable(text="not now")

    app = build_app(registry, outer_middlewares=[request_id_middleware()], root=refusing)
    app.on_cleanup.clear()
    assert not app.middlewares
    server = TestServer(app)
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("dockyard.access")
    )
    async with TestClient(server) as client:
        answers = []
        for method, path, status in (
            ("GET", "/no/such/route", 404),
            ("POST", "/", 405),
            ("GET", "/", 503),
            ("GET", "/v2/", 200),
        ):
            response = await client.request(method, path)
            await response.read()
            assert response.status == status, (method, path)
            answers.append(response)
    ids = [response.headers["X-Request-Id"] for response in answers]
    assert all(UUID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    assert answers[1].headers["Allow"] == "GET,HEAD"
    access = [e for e in _entries(lines) if e["logger"] == "dockyard.access"]
    assert [e["http.request.id"] for e in access] == ids
