"""The metrics wiring: the ``handler`` label agrees with the route table."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.api.routes import match
from dockyard.api.table import ROUTES
from dockyard.monitoring import route_classifier

# Distribution's handler labels where its route names differ from Dockyard's.
DISTRIBUTION_NAMES = {"upload_start": "blob_upload", "upload": "blob_upload_chunk"}
DIGEST = "sha256:" + "ab" * 32
PATHS = [
    "/v2",
    "/v2/",
    "/v2/_catalog",
    "/v2/app/tags/list",
    "/v2/team/app/tags/list",
    "/v2/app/manifests/latest",
    f"/v2/a/b/c/manifests/{DIGEST}",
    "/v2/blobs/manifests/v1",  # a repository named blobs
    "/v2/manifests/blobs/x",  # and one named manifests
    "/v2/app/blobs/uploads/",
    "/v2/app/blobs/uploads",
    "/v2/app/blobs/uploads/0f2c3d6e-uuid",
    f"/v2/team/app/blobs/{DIGEST}",
    "/v2/uploads/blobs/uploads/",
    f"/v2/app/referrers/{DIGEST}",
    "/v2/tags/list/tags/list",
]


@pytest.mark.parametrize("prefix", ["", "/registry"])
@pytest.mark.parametrize("path", PATHS)
def test_handler_label_is_the_route_name(prefix: str, path: str) -> None:
    found = match(ROUTES, path)
    assert found is not None, path
    expected = DISTRIBUTION_NAMES.get(found.route.name, found.route.name)
    assert route_classifier(prefix)(prefix + path) == expected


@pytest.mark.parametrize("path", ["/", "/auth/token", "/v2x", "/metrics", "/v2/a"])
def test_other_paths(path: str) -> None:
    assert match(ROUTES, path) is None or path == "/v2/a"
    assert route_classifier("")(path) == "other"


def test_every_metric_family_is_documented() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    from dockyard.observability import metrics

    docs = (Path(__file__).parents[1] / "docs" / "monitoring.md").read_text()
    families = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    assert len(families) > 20
    for family in families:
        name = next(iter(family.describe())).name
        shown = f"{name}_total" if family._type == "counter" else name
        assert f"`{shown}`" in docs, shown
