"""registry:2's HTTP families as a real aiohttp server counts them, in this process
(batched, then flushed as the scrape does)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY, Gauge, Histogram

from dockyard.monitoring import route_classifier
from dockyard.observability import batch, http_metrics

MANIFEST = b"m" * 3000


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def manifest(_request: web.Request) -> web.Response:
    return web.Response(body=MANIFEST)


async def upload(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


async def missing(_request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[http_metrics.metrics_middleware(route_classifier(""))])
    app.router.add_get("/v2/{name:.+}/manifests/{ref}", manifest)
    app.router.add_post("/v2/{name:.+}/blobs/uploads/", upload)
    app.router.add_get("/v2/{name:.+}/tags/list", missing)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_requests_durations_and_sizes_by_handler(
    client: TestClient[web.Request, web.Application],
) -> None:
    got = {"handler": "manifest", "code": "200", "method": "GET"}
    before = value("registry_http_requests_total", **got)
    timed = value("registry_http_request_duration_seconds_count", handler="manifest", method="GET")
    sent = value("registry_http_response_size_bytes_sum", handler="manifest")
    received = value("registry_http_request_size_bytes_sum", handler="blob_upload")
    refused = value("registry_http_requests_total", handler="tags", code="404", method="GET")
    for ref in ("latest", "v1", "latest"):
        assert (await client.get(f"/v2/team/app/manifests/{ref}")).status == 200
    assert (await client.head("/v2/team/app/manifests/latest")).status == 200
    assert (await client.post("/v2/app/blobs/uploads/", data=b"x" * 5000)).status == 202
    assert (await client.get("/v2/app/tags/list")).status == 404
    batch.flush()
    assert value("registry_http_requests_total", **got) == before + 3
    after = value("registry_http_request_duration_seconds_count", handler="manifest", method="GET")
    assert after == timed + 3
    # HEAD sends no body: three GETs' worth of bytes
    assert value("registry_http_response_size_bytes_sum", handler="manifest") == sent + 9000
    assert value("registry_http_request_size_bytes_sum", handler="blob_upload") == received + 5000
    assert value("registry_http_requests_total", handler="tags", code="404", method="GET") == (
        refused + 1
    )
    assert value("registry_http_in_flight_requests", handler="manifest") == 0


async def test_the_remembered_paths_are_bounded(
    client: TestClient[web.Request, web.Application], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_metrics, "KNOWN_PATHS", 2)
    labels = {"handler": "manifest", "code": "200", "method": "GET"}
    before = value("registry_http_requests_total", **labels)
    for ref in ("a", "b", "c", "d", "a"):
        assert (await client.get(f"/v2/app/manifests/{ref}")).status == 200
    batch.flush()
    assert value("registry_http_requests_total", **labels) == before + 5


def test_a_batched_histogram_flushes_what_direct_observations_would_show() -> None:
    labels, buckets = ["kind"], (0.1, 1, 10)
    direct = Histogram("dockyard_test_direct_seconds", "test", labels, buckets=buckets)
    batched_family = Histogram("dockyard_test_batched_seconds", "test", labels, buckets=buckets)
    batched = batch.histogram(batched_family.labels("x"))
    for seconds in (0.05, 0.1, 0.5, 3, 30, 0):
        direct.labels("x").observe(seconds)
        batched.observe(seconds)
    assert value("dockyard_test_batched_seconds_count", kind="x") == 0  # not yet flushed
    batch.flush()
    batch.flush()  # nothing new: nothing counted twice
    for bound in ("0.1", "1.0", "10.0", "+Inf"):
        shown = value("dockyard_test_batched_seconds_bucket", kind="x", le=bound)
        assert shown == value("dockyard_test_direct_seconds_bucket", kind="x", le=bound), bound
    assert value("dockyard_test_batched_seconds_sum", kind="x") == pytest.approx(33.65)


def test_a_live_gauge_counts_what_runs_inside() -> None:
    gauge = batch.gauge(Gauge("dockyard_test_inside", "test"))
    with gauge:
        with gauge:
            batch.flush()
            assert value("dockyard_test_inside") == 2
        batch.flush()
        assert value("dockyard_test_inside") == 1
    batch.flush()
    assert value("dockyard_test_inside") == 0


def test_values_added_up_at_once_land_in_the_buckets_one_by_one_would() -> None:
    buckets = (0.1, 1, 10)
    direct = Histogram("dockyard_test_one_by_one_seconds", "test", buckets=buckets)
    added = batch.BatchedHistogram(
        Histogram("dockyard_test_added_up_seconds", "test", buckets=buckets)
    )
    values = (0.05, 0.1, 0.5, 1, 3, 30, 0, 10, 10.5)  # the bounds themselves included
    for seconds in values:
        direct.observe(seconds)
    http_metrics.add_up(added, values[:4])
    http_metrics.add_up(added, values[4:])  # two flushes' worth
    added.flush()
    for bound in ("0.1", "1.0", "10.0", "+Inf"):
        shown = value("dockyard_test_added_up_seconds_bucket", le=bound)
        assert shown == value("dockyard_test_one_by_one_seconds_bucket", le=bound), bound
    assert value("dockyard_test_added_up_seconds_sum") == pytest.approx(sum(values))


@pytest.mark.parametrize("fields", [True, False])
def test_a_plain_responses_body_is_measured_with_or_without_its_fields(
    fields: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert http_metrics.FIELDS_READABLE  # this aiohttp: the fast path is the one taken
    monkeypatch.setattr(http_metrics, "FIELDS_READABLE", fields)
    assert http_metrics.body_bytes(web.Response(body=MANIFEST)) == len(MANIFEST)
    assert http_metrics.body_bytes(web.Response(text="é")) == 2
    assert http_metrics.body_bytes(web.Response()) == 0
