"""The access log line of a request: who it authenticated as, from where, its user agent;
reached directly and through a trusted proxy (whose middleware hands the handlers a clone
of the request, while aiohttp logs the original)."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.access_log import AccessLogger
from dockyard.api.app import build_app
from dockyard.api.forwarded import ProxyPolicy, parse_networks
from dockyard.auth.htpasswd import HtpasswdController, HtpasswdFile
from dockyard.registry.service import Registry
from tests.api.helpers import Client

USERS = {"alice": "alice-pw", "we ird": "odd-pw", "-": "dash-pw"}
FORWARDED_CLIENT = "192.0.2.7"


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()


@pytest.fixture(params=["direct", "proxied"])
def remote(request: pytest.FixtureRequest) -> str:
    """The address the line must name: the peer, or the client a trusted proxy forwarded."""
    return "127.0.0.1" if request.param == "direct" else FORWARDED_CLIENT


@pytest.fixture
async def client(registry: Registry, tmp_path: Path, remote: str) -> AsyncIterator[Client]:
    path = tmp_path / "htpasswd"  # written by hand: nothing checks the names
    path.write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode()}\n"
            for user, pw in USERS.items()
        )
    )
    proxies = ProxyPolicy(parse_networks(["127.0.0.1"] if remote == FORWARDED_CLIENT else []))
    app = build_app(registry, access=HtpasswdController("r", HtpasswdFile(path)), proxies=proxies)
    app.on_cleanup.clear()
    server = TestServer(app)
    # started here: the test client would start it without these
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("dockyard.access")
    )
    async with TestClient(server) as test_client:
        yield test_client


async def logged(
    client: Client, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> logging.LogRecord:
    """The access log record of one ``GET /v2/`` (sent with an ``X-Forwarded-For``, which
    only a trusted proxy is believed)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dockyard.access"):
        sent = {**headers, "X-Forwarded-For": FORWARDED_CLIENT}
        await (await client.get("/v2/", headers=sent)).read()
    (record,) = [r for r in caplog.records if r.name == "dockyard.access"]
    return record


async def test_the_authenticated_user_and_the_user_agent(
    client: Client, caplog: pytest.LogCaptureFixture, remote: str
) -> None:
    record = await logged(client, caplog, {"Authorization": basic("alice"), "User-Agent": "t/1"})
    fields = record.access  # type: ignore[attr-defined]
    assert fields["auth.user.name"] == "alice"
    assert fields["http.request.useragent"] == "t/1"
    assert fields["http.request.remoteaddr"] == remote
    assert record.getMessage().startswith(f'{remote} alice "GET /v2/" 200 ')
    assert record.getMessage().endswith(' "t/1"')


async def test_anonymous_and_refused_requests_name_no_user(
    client: Client, caplog: pytest.LogCaptureFixture, remote: str
) -> None:
    wrong = "Basic " + base64.b64encode(b"alice:not-the-password").decode()
    for headers in ({}, {"Authorization": "Basic Og=="}, {"Authorization": wrong}):
        record = await logged(client, caplog, {**headers, "User-Agent": 'say "hi"'})
        assert "auth.user.name" not in record.access  # type: ignore[attr-defined]
        assert record.getMessage().startswith(f'{remote} - "GET /v2/" 401 ')
        assert record.getMessage().endswith(' "say \\"hi\\""')


@pytest.mark.parametrize(("user", "shown"), [("we ird", '"we ird"'), ("-", '"-"')])
async def test_odd_user_names_are_quoted_in_text_lines(
    client: Client, caplog: pytest.LogCaptureFixture, remote: str, user: str, shown: str
) -> None:
    record = await logged(client, caplog, {"Authorization": basic(user)})
    assert record.access["auth.user.name"] == user  # type: ignore[attr-defined]
    assert record.getMessage().startswith(f'{remote} {shown} "GET /v2/" 200 ')


async def test_the_query_is_logged_with_only_the_api_parameters_values(
    client: Client, caplog: pytest.LogCaptureFixture, remote: str
) -> None:
    caplog.clear()
    query = "n=2&last=a%22b&account=alice&password=hunter22"
    with caplog.at_level(logging.INFO, logger="dockyard.access"):
        await (await client.get(f"/v2/_catalog?{query}")).read()
    (record,) = [r for r in caplog.records if r.name == "dockyard.access"]
    uri = "/v2/_catalog?n=2&last=a%22b&account=***&password=***"
    assert record.access["http.request.uri"] == uri  # type: ignore[attr-defined]
    assert f'"GET {uri}" ' in record.getMessage()
    assert "hunter22" not in record.getMessage() and "alice" not in record.getMessage()
