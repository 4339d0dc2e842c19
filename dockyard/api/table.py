"""The route table of the registry API (OCI Distribution 1.1 + Docker Registry V2)."""

from __future__ import annotations

from dockyard.api import blobs, listing, manifests, uploads, usage
from dockyard.api.needs import Need
from dockyard.api.routes import Route, route
from dockyard.auth.access import DELETE, PULL, PUSH

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

# Dockyard's own API, beside the registry's: ``<prefix>/dockyard/v1/...``.
_OWN = r"/dockyard/v1"
DOCKYARD_ROUTES: list[Route] = [
    route("usage", _OWN + r"/usage", "storage usage of the registry", get=usage.registry_usage),
    route(
        "repository_usage",
        _OWN + r"/usage/(?P<name>[^?#]+?)",
        "storage usage of one repository",
        get=usage.repository_usage,
    ),
]

# What each route needs from access control, by method (HEAD needs what GET needs). As in
# registry:2, reading is "pull", writing "push", deleting "delete"; every upload call,
# status and cancel included, is "push". The "from" repository of a cross-repository mount
# is optional: the upload handler mounts only when the caller may pull it (else the client
# uploads), so a mount never needs more than a push.
ACCESS: dict[str, dict[str, Need]] = {
    "base": {"GET": Need()},
    "catalog": {"GET": Need(catalog=True)},
    "tags": {"GET": Need((PULL,))},
    "manifest": {
        "GET": Need((PULL,)),
        "PUT": Need((PUSH,), write=True),
        "DELETE": Need((DELETE,), write=True, delete=True),
    },
    "upload_start": {"POST": Need((PUSH,), write=True)},
    "upload": {
        "GET": Need((PUSH,)),
        "PATCH": Need((PUSH,), write=True),
        "PUT": Need((PUSH,), write=True),
        "DELETE": Need((PUSH,), write=True),
    },
    "blob": {"GET": Need((PULL,)), "DELETE": Need((DELETE,), write=True, delete=True)},
    "referrers": {"GET": Need((PULL,))},
    # The registry-wide figures are guarded as the catalog is; a repository's as its pulls.
    "usage": {"GET": Need(catalog=True)},
    "repository_usage": {"GET": Need((PULL,))},
}
