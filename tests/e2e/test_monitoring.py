"""Monitoring against real parts: a Dockyard with two workers, the debug server on, pushed
to and pulled from by skopeo, scraped by a real Prometheus; the shipped dashboard and
alert rules evaluated through Prometheus' HTTP API; health checks that take the registry
out of rotation; request ids in headers and logs."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.observability import metrics
from dockyard.observability.batch import FLUSH_INTERVAL
from tests.e2e.clients import Skopeo
from tests.e2e.images import build_image
from tests.e2e.server import RegistryServer, Response, free_port, wait_for, write_config
from tests.prometheus import JOB, RULES, PrometheusServer, promtool

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"
SCRAPE_CONFIG = REPO / "deploy" / "monitoring" / "prometheus.yml"
# What Grafana substitutes in the dashboard's expressions.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": ".+"}
# Rule expressions are `<measure> <comparison> <threshold>` (see alerts.yml).
_COMPARISON = re.compile(r"\s(?:>|<|==|!=|>=|<=)\s+[0-9.e+-]+\s*$")


class Monitored:
    def __init__(self, server: RegistryServer, debug_port: int, marker: Path) -> None:
        self.server = server
        self.debug_port = debug_port
        self.marker = marker

    @property
    def debug_target(self) -> str:
        return f"127.0.0.1:{self.debug_port}"

    def debug(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        url = f"http://{self.debug_target}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def metrics(self) -> str:
        status, body, _ = self.debug("/metrics")
        assert status == 200
        return body.decode()

    def sample(self, name: str, **labels: str) -> float:
        """The value of one series in a scrape (0 when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            series, _, value = line.rpartition(" ")
            if series.split("{")[0] != name:
                continue
            found = series.partition("{")[2].rstrip("}")
            if ",".join(sorted(found.split(","))) == wanted or (not labels and not found):
                return float(value)
        return 0.0


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    workdir = tmp_path_factory.mktemp("monitored")
    server = RegistryServer("dockyard", workdir / "server")
    server.workdir.mkdir(parents=True)
    marker = workdir / "out-of-rotation"
    debug_port = free_port()
    extra = (
        f"  debug:\n    addr: 127.0.0.1:{debug_port}\n    prometheus:\n      enabled: true\n"
        "serve:\n  workers: 2\n"
        "health:\n"
        "  storagedriver:\n    enabled: true\n    interval: 500ms\n"
        "  database:\n    enabled: true\n    interval: 500ms\n"
        f"  file:\n    - file: {marker}\n      interval: 200ms\n"
    )
    write_config(server.config, store=server.store, port=server.port, extra=extra)
    server.start()
    server.worker_pids(expect=2)
    try:
        yield Monitored(server, debug_port, marker)
    finally:
        server.stop()


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            found.append(expr)
    return found


def _rule_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(rule["alert"], rule["expr"]) for g in rules["groups"] for rule in g["rules"]]


def _expressions_without_data(prometheus: PrometheusServer) -> list[str]:
    """The dashboard's expressions and the alert rules' measures that give no series;
    every rule must evaluate without error (firing or not)."""
    empty = [expr for expr in _dashboard_expressions() if not prometheus.query(expr)]
    for name, expr in _rule_expressions():
        prometheus.query(expr)
        measure = _COMPARISON.sub("", expr.strip())
        assert measure != expr.strip(), f"{name}: not `<measure> <comparison> <threshold>`"
        if not prometheus.query(measure):
            empty.append(f"{name}: {measure}")
    return empty


def _traffic(monitored: Monitored, skopeo: Skopeo, tmp_path: Path) -> None:
    """Pushes and pulls with a real client, tag listings (the cache) and a failed call."""
    server = monitored.server
    for index in range(3):
        image = build_image(tmp_path / f"layout{index}", "v1", data_size=512 * 1024)
        ref = f"docker://{server.ref(f'monitoring/app{index}', 'v1')}"
        skopeo.copy(image.ref, ref)
        skopeo.copy(ref, f"oci:{tmp_path / f'pulled{index}'}:v1")
        for _ in range(2):
            assert skopeo.list_tags(ref.removesuffix(":v1")) == ["v1"]
    assert server.request("GET", "/v2/monitoring/nothing/manifests/v1").status == 404


def test_dashboard_and_alerts_evaluate_against_prometheus(
    monitored: Monitored, prometheus: PrometheusServer, skopeo: Skopeo, tmp_path: Path
) -> None:
    prometheus.scrape(monitored.debug_target)
    up = prometheus.wait_for_samples(f'up{{job="{JOB}"}} == 1')
    assert up, f"Prometheus never scraped the debug server:\n{prometheus.api('targets')}"
    _traffic(monitored, skopeo, tmp_path)
    pushed = 'registry_http_requests_total{handler="blob_upload_chunk",method="PUT"}'
    assert prometheus.wait_for_samples(pushed), "the pushes never reached Prometheus"
    # rate() and increase() need a few samples after the traffic: look again until every
    # expression has data (a guard against hanging, not a timing check)
    deadline = time.monotonic() + 20
    while (empty := _expressions_without_data(prometheus)) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert empty == [], "expressions without data:\n" + "\n".join(empty)
    groups = prometheus.api("rules")["groups"]
    health = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert health and set(health.values()) == {"ok"}, health


def test_one_scrape_counts_every_worker(monitored: Monitored) -> None:
    # a worker adds its counts to the shared files every FLUSH_INTERVAL: the requests of
    # the tests before this one must be in the baseline
    time.sleep(FLUSH_INTERVAL + 0.5)
    before = monitored.sample("registry_http_requests_total", code="200", handler="base",
                              method="GET")  # fmt: skip
    for _ in range(40):  # new connections, spread over both workers by the kernel
        assert monitored.server.request("GET", "/v2/").status == 200

    def counted() -> float:
        return monitored.sample("registry_http_requests_total", code="200", handler="base",
                                method="GET") - before  # fmt: skip

    # the worker that answers the scrape counts its own at once, the other within a second
    wait_for(lambda: counted() >= 40 or None, "both workers' counts", timeout=5)
    time.sleep(1.5)
    assert counted() == 40
    directory = re.search(r"worker files in (\S+)\)", monitored.server.log_text())
    assert directory is not None
    counters = {p.name for p in Path(directory.group(1)).glob("counter_*.db")}
    workers = monitored.server.worker_pids(expect=2)
    assert {f"counter_{pid}.db" for pid in workers} <= counters


def test_a_dead_workers_live_gauges_are_dropped(monitored: Monitored) -> None:
    text = monitored.server.log_text()
    directory = Path(re.findall(r"worker files in (\S+)\)", text)[-1])
    for _ in range(10):
        monitored.server.request("GET", "/v2/")
    workers = monitored.server.worker_pids(expect=2)
    victim = next(pid for pid in workers if (directory / f"gauge_livesum_{pid}.db").exists())
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: None if (directory / f"gauge_livesum_{victim}.db").exists() else True,
        "the dead worker's gauge file to go",
    )
    monitored.server.worker_pids(expect=2)  # restarted
    assert (directory / f"counter_{victim}.db").exists()  # its counts stay in the totals
    assert monitored.server.request("GET", "/v2/").status == 200


def test_promtool_accepts_the_exposition_and_the_shipped_files(monitored: Monitored) -> None:
    monitored.server.request("GET", "/v2/_catalog")
    checked = promtool("check", "metrics", stdin=monitored.metrics().encode())
    assert checked.returncode == 0, checked.stderr.decode()
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout.decode() + rules.stderr.decode()
    config = promtool("check", "config", "--syntax-only", str(SCRAPE_CONFIG))
    assert config.returncode == 0, config.stdout.decode() + config.stderr.decode()


def test_agreed_families_exist_from_the_start(monitored: Monitored) -> None:
    text = monitored.metrics()
    for name in (
        "dockyard_gc_runs_total",
        "dockyard_gc_deleted_manifests_total",
        "dockyard_gc_deleted_blobs_total",
        "dockyard_gc_freed_bytes_total",
        "dockyard_retention_runs_total",
        "dockyard_retention_deleted_tags_total",
        "dockyard_auth_failed_logins_total",
        "dockyard_auth_rate_limited_total",
    ):
        assert re.search(rf"^{name} 0\.0$", text, re.M), name
    # labelled by endpoint: their series appear once the notify wiring names the
    # endpoints (feeds.endpoints_configured); the families are declared here
    declared = {
        next(iter(family.describe())).name
        for family in (
            metrics.NOTIFICATION_EVENTS,
            metrics.NOTIFICATION_PENDING,
            metrics.NOTIFICATION_STATUS,
            metrics.NOTIFICATIONS_DROPPED,
        )
    }
    assert declared == {
        "registry_notifications_events",
        "registry_notifications_pending",
        "registry_notifications_status",
        "dockyard_notifications_dropped",
    }


def _health(monitored: Monitored, path: str = "/debug/health") -> tuple[int, Any]:
    status, body, _ = monitored.debug(path)
    return status, json.loads(body)


def test_a_failing_check_takes_the_registry_out_of_rotation(monitored: Monitored) -> None:
    assert _health(monitored) == (200, {})
    monitored.marker.touch()
    try:
        wait_for(lambda: _health(monitored)[0] == 503 or None, "/debug/health to fail")
        assert _health(monitored) == (503, {str(monitored.marker): "file exists"})
        assert _health(monitored, "/debug/health/ready")[0] == 503
        assert _health(monitored, "/debug/health/live")[0] == 200
        # every worker runs the checks: whichever answers refuses
        for _ in range(10):
            response = monitored.server.request("GET", "/v2/")
            if response.status == 503:
                body = response.json()
                assert isinstance(body, dict)
                assert body["errors"][0]["code"] == "UNAVAILABLE"
        wait_for(
            lambda: (
                all(monitored.server.request("GET", "/").status == 503 for _ in range(6)) or None
            ),
            "both workers to refuse",
        )
    finally:
        monitored.marker.unlink()
    wait_for(lambda: _health(monitored)[0] == 200 or None, "/debug/health to pass again")
    wait_for(
        lambda: (
            all(monitored.server.request("GET", "/v2/").status == 200 for _ in range(6)) or None
        ),
        "both workers to serve again",
    )


def test_every_request_has_an_id_in_its_header_and_log_line(monitored: Monitored) -> None:
    response = monitored.server.request(
        "GET", "/v2/_catalog", headers={"X-Request-Id": "planted-by-the-client"}
    )
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id)  # a client's own id is not believed
    wait_for(lambda: request_id in monitored.server.log_text() or None, "the access line")
    line = next(x for x in monitored.server.log_text().splitlines() if request_id in x)
    assert "GET /v2/_catalog" in line and f"http.request.id={request_id}" in line
    assert "planted-by-the-client" not in monitored.server.log_text()


# One request of each route class of the registry port: (method, path, status, handler).
# The last three are answered by aiohttp's exceptions (404, 405), raised inside the request
# id, the metrics and the health check, which aiohttp does not run as middlewares.
ROUTE_CLASSES = [
    ("GET", "/v2/", 200, "base"),
    ("GET", "/v2/_catalog", 200, "catalog"),
    ("GET", "/v2/monitoring/none/tags/list", 404, "tags"),
    ("GET", "/v2/monitoring/none/manifests/v1", 404, "manifest"),
    ("HEAD", f"/v2/monitoring/none/blobs/sha256:{'0' * 64}", 404, "blob"),
    ("POST", "/v2/monitoring/none/blobs/uploads/", 202, "blob_upload"),
    ("GET", "/", 200, "other"),
    ("GET", "/no/such/route", 404, "other"),
    ("POST", "/", 405, "other"),
]


def test_every_route_class_is_named_counted_and_refused_while_a_check_fails(
    monitored: Monitored,
) -> None:
    time.sleep(FLUSH_INTERVAL + 0.5)  # the earlier tests' counts are in the baseline

    def count(method: str, status: int, handler: str) -> float:
        return monitored.sample("registry_http_requests_total", code=str(status),
                                handler=handler, method=method)  # fmt: skip

    before = {(m, s, h): count(m, s, h) for m, _, s, h in ROUTE_CLASSES}
    ids = set()
    for method, path, status, _ in ROUTE_CLASSES:
        response = monitored.server.request(method, path)
        assert response.status == status, (method, path)
        assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-request-id"]), (method, path)
        ids.add(response.headers["x-request-id"])
        if status == 405:
            assert response.headers["allow"] == "GET,HEAD"
    assert len(ids) == len(ROUTE_CLASSES)
    wait_for(
        lambda: all(count(*key) - before[key] >= 1 for key in before) or None,
        "every route class counted",
        timeout=5,
    )
    monitored.marker.touch()
    try:
        wait_for(lambda: _health(monitored)[0] == 503 or None, "/debug/health to fail")
        for method, path, _, _ in ROUTE_CLASSES:

            def refused(method: str = method, path: str = path) -> list[Response] | None:
                """Four refusals in a row (each worker polls its checks on its own: a
                request right after may still reach one that has not failed yet)."""
                answers = [monitored.server.request(method, path) for _ in range(4)]
                return answers if all(a.status == 503 for a in answers) else None

            for response in wait_for(refused, f"the workers to refuse {method} {path}"):
                assert "x-request-id" in response.headers
                if method != "HEAD":
                    error = response.json()["errors"][0]  # type: ignore[index]
                    assert error["code"] == "UNAVAILABLE"
    finally:
        monitored.marker.unlink()
    wait_for(lambda: _health(monitored)[0] == 200 or None, "/debug/health to pass again")
