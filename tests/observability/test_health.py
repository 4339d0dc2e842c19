"""Health checks with Distribution's semantics: threshold, file, HTTP and TCP probes
against real files, sockets and an HTTP server; the registry port's 503 while one fails."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dockyard.config import load_config
from dockyard.observability import health
from dockyard.observability.debug_server import build_debug_app


async def _fail() -> None:
    raise RuntimeError("backend down")


async def _pass() -> None:
    return None


@pytest.mark.parametrize(("threshold", "fails_after"), [(0, 1), (1, 1), (3, 3)])
async def test_threshold_is_failures_in_a_row(threshold: int, fails_after: int) -> None:
    probe = {"now": _fail}

    async def flaky() -> None:
        await probe["now"]()

    check = health.Check("x", flaky, 10, threshold)
    checks = health.HealthChecks([check])
    for run in range(1, fails_after):
        await checks.probe(check)
        assert checks.failures() == {}, run
    await checks.probe(check)
    assert checks.failures() == {"x": "backend down"} and checks.failing
    probe["now"] = _pass
    await checks.probe(check)  # one success heals it
    assert checks.failures() == {} and not checks.failing
    probe["now"] = _fail
    if threshold > 1:
        await checks.probe(check)
        assert checks.failures() == {}  # the count started again


async def test_a_check_starts_healthy_and_runs_every_interval() -> None:
    runs = []

    async def probe() -> None:
        runs.append(1)
        raise RuntimeError("no")

    checks = health.HealthChecks([health.Check("x", probe, 0.05)])
    app = web.Application()
    app.cleanup_ctx.append(checks.running)
    async with TestClient(TestServer(app)):
        assert checks.failures() == {}  # Distribution's ticker: first run after one interval
        await asyncio.sleep(0.3)
    assert len(runs) >= 3 and checks.failures() == {"x": "no"}


async def test_file_probe_fails_while_the_file_exists(tmp_path: Path) -> None:
    marker = tmp_path / "down"
    probe = health.file_probe(str(marker))
    await probe()
    marker.touch()
    with pytest.raises(RuntimeError, match="file exists"):
        await probe()


async def test_tcp_probe_connects_or_names_the_address() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        await health.tcp_probe(address, 2)()
    with pytest.raises(RuntimeError, match=f"{address}: connection failed"):
        await health.tcp_probe(address, 2)()


async def test_http_probe_sends_head_with_headers_and_checks_the_status() -> None:
    seen = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.method, request.headers.get("X-Probe")))
        return web.Response(status=int(request.query.get("status", "200")))

    app = web.Application()
    app.router.add_route("*", "/", answer)
    async with TestServer(app) as server:
        url = str(server.make_url("/"))
        await health.http_probe(url, 200, 2, {"X-Probe": ["yes"]})()
        assert seen == [("HEAD", "yes")]
        with pytest.raises(RuntimeError, match="unexpected status: 204"):
            await health.http_probe(url + "?status=204", 200, 2, {})()
        await health.http_probe(url + "?status=204", 204, 2, {})()
    with pytest.raises(RuntimeError, match="error while checking"):
        await health.http_probe(url, 200, 2, {})()


async def _base(_request: web.Request) -> web.Response:
    return web.json_response({})


async def test_debug_health_and_the_registry_port_while_a_check_fails() -> None:
    check = health.Check("storagedriver_filesystem", _fail, 10)
    checks = health.HealthChecks([check])
    registry = web.Application(middlewares=[health.unavailable_middleware(checks)])
    registry.router.add_get("/v2/", _base)
    async with (
        TestClient(TestServer(build_debug_app(checks, None))) as debug,
        TestClient(TestServer(registry)) as main,
    ):
        response = await debug.get("/debug/health")
        assert (response.status, await response.json()) == (200, {})
        assert (await main.get("/v2/")).status == 200
        await checks.probe(check)
        response = await debug.get("/debug/health")
        assert response.status == 503
        assert await response.json() == {"storagedriver_filesystem": "backend down"}
        assert (await debug.get("/debug/health/ready")).status == 503
        assert (await debug.get("/debug/health/live")).status == 200
        refused = await main.get("/v2/")
        assert refused.status == 503
        assert (await refused.json())["errors"][0]["code"] == "UNAVAILABLE"
        assert (await debug.post("/debug/health")).status == 405
        assert (await debug.get("/metrics")).status == 404  # prometheus not enabled


def test_distribution_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "version: 0.1\nstorage:\n  inmemory:\nhealth:\n  storagedriver:\n    enabled: true\n"
        "  file:\n    - file: /x\n      interval: 0s\n"
        "  http:\n    - uri: http://127.0.0.1:9/\n  tcp:\n    - addr: 127.0.0.1:9\n"
        "http:\n  debug:\n    addr: 127.0.0.1:5001\n"
    )
    config = load_config(path, {}).config
    checks = config.health
    assert checks.storagedriver.interval.total_seconds() == 10
    assert checks.storagedriver.threshold == 0
    assert checks.file[0].interval.total_seconds() == 10  # 0 means the default
    assert checks.http[0].statuscode == 200 and checks.http[0].timeout.total_seconds() == 0
    assert checks.tcp[0].threshold == 0
    assert config.http.debug.enabled and not config.http.debug.metrics
    assert config.http.debug.prometheus.path == "/metrics"
