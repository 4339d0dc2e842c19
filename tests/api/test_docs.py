"""The API docs cannot drift: every route and every wire error code is documented."""

from __future__ import annotations

from pathlib import Path

from dockyard.api.routes import Route
from dockyard.api.table import DOCKYARD_ROUTES, ROUTES
from dockyard.oci.errors import ERROR_CODES

API_DOC = (Path(__file__).parents[2] / "docs" / "api.md").read_text()


def test_every_error_code_is_documented_with_its_status() -> None:
    for code, error in ERROR_CODES.items():
        assert f"| `{code}` | {error.status} |" in API_DOC, code


def test_every_route_and_method_is_documented() -> None:
    markers = {
        "base": "`/v2/`",
        "catalog": "`/v2/_catalog",
        "tags": "/tags/list",
        "manifest": "/manifests/<reference>`",
        "upload_start": "/blobs/uploads/`",
        "upload": "/blobs/uploads/<uuid>",
        "blob": "/blobs/<digest>`",
        "referrers": "/referrers/<digest>",
    }
    assert set(markers) == {route.name for route in ROUTES}
    _documented(ROUTES, markers)


def test_every_route_of_dockyards_own_api_is_documented() -> None:
    markers = {"usage": "`/dockyard/v1/usage`", "repository_usage": "`/dockyard/v1/usage/<name>`"}
    assert set(markers) == {route.name for route in DOCKYARD_ROUTES}
    _documented(DOCKYARD_ROUTES, markers)


def _documented(routes: list[Route], markers: dict[str, str]) -> None:
    for route in routes:
        lines = [
            line
            for line in API_DOC.splitlines()
            if line.startswith("| `") and markers[route.name] in line
        ]
        documented = {m.strip() for line in lines for m in line.split("|")[2].split(",")}
        assert set(route.handlers) <= documented, (route.name, documented)
