"""The route table of the registry API (OCI Distribution 1.1 + Docker Registry V2)."""

from __future__ import annotations

from dockyard.api import blobs, listing, manifests, uploads
from dockyard.api.routes import Route, route

_NAME = r"/v2/(?P<name>[^?#]+?)"

ROUTES: list[Route] = [
    route("base", r"/v2/?", "API version check", get=listing.api_base),
    route("catalog", r"/v2/_catalog", "list repositories", get=listing.catalog),
    route("tags", _NAME + r"/tags/list", "list tags", get=listing.list_tags),
    route(
        "manifest",
        _NAME + r"/manifests/(?P<reference>[^/]+)",
        "pull, push, delete a manifest",
        get=manifests.get_manifest,
        put=manifests.put_manifest,
        delete=manifests.delete_manifest,
    ),
    route(
        "upload_start",
        _NAME + r"/blobs/uploads/?",
        "start, mount or monolithically upload a blob",
        post=uploads.start_upload,
    ),
    route(
        "upload",
        _NAME + r"/blobs/uploads/(?P<uuid>[^/]+)",
        "upload status, chunk, complete, cancel",
        get=uploads.upload_status,
        patch=uploads.patch_upload,
        put=uploads.complete_upload,
        delete=uploads.cancel_upload,
    ),
    route(
        "blob",
        _NAME + r"/blobs/(?P<digest>[^/]+)",
        "fetch, check, delete a blob",
        get=blobs.get_blob,
        delete=blobs.delete_blob,
    ),
    route(
        "referrers",
        _NAME + r"/referrers/(?P<digest>[^/]+)",
        "list referrers of a manifest",
        get=listing.referrers,
    ),
]
