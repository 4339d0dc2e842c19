"""``/v2/``, tag lists, the catalog and referrers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dockyard.api.context import Call
from dockyard.oci import mediatypes
from dockyard.oci.digest import Digest
from dockyard.oci.names import TAG_SEPARATOR
from dockyard.oci.pagination import link_header, parse_page
from dockyard.registry.listing import Listing


def json_response(
    body: Any, headers: dict[str, str] | None = None, content_type: str = "application/json"
) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        headers={"Content-Type": content_type, **(headers or {})},
    )


async def api_base(request: web.Request, call: Call) -> web.StreamResponse:
    return json_response({})


def _link(
    request: web.Request, call: Call, path: str, listing: Listing, limit: int | None
) -> dict[str, str]:
    if listing.next_last is None or limit is None:
        return {}
    return {"Link": link_header(call.urls.prefix + path, limit, listing.next_last)}


async def list_tags(request: web.Request, call: Call) -> web.StreamResponse:
    page = parse_page(request.query.get("n"), request.query.get("last"))
    listing = await call.registry.tags.list(call.name, page)
    if listing.next_last is None:
        headers = _JSON
    else:
        path = f"/v2/{call.name}/tags/list"
        headers = {**_JSON, **_link(request, call, path, listing, page.limit)}
    return web.Response(body=_tags_body(call.name, listing), headers=headers)


_JSON = {"Content-Type": "application/json"}
# Where the body of a whole tag list is kept, on the cached list itself (TagList.memo):
# it lives exactly as long as the list stays current.
_BODY = "tags/list body"


def _tags_body(name: str, listing: Listing) -> bytes:
    whole = listing.whole
    if whole is None:
        return _tags_json(name, TAG_SEPARATOR.join(listing.entries), bool(listing.entries))
    body = whole.memo.get(_BODY)
    if not isinstance(body, bytes):
        body = whole.memo[_BODY] = _tags_json(name, whole.joined(TAG_SEPARATOR), bool(whole.size))
    return body


def _tags_json(name: str, joined: str, any_tags: bool) -> bytes:
    """``{"name": ..., "tags": [...]}`` from the tags joined by ``", "``, without
    json.dumps: names and tags are validated against grammars (``oci.names``) that hold no
    character JSON escapes, and joining is ten times faster on a 10,000-tag list."""
    listed = f'"{joined}"' if any_tags else ""
    return f'{{"name": "{name}", "tags": [{listed}]}}'.encode()


async def catalog(request: web.Request, call: Call) -> web.StreamResponse:
    page = parse_page(
        request.query.get("n"),
        request.query.get("last"),
        call.registry.settings.catalog_max_entries,
    )
    listing = await call.registry.listings.catalog(page, call.visible)
    return json_response(
        {"repositories": listing.entries},
        _link(request, call, "/v2/_catalog", listing, page.limit),
    )


async def referrers(request: web.Request, call: Call) -> web.StreamResponse:
    subject = Digest.parse(call.params["digest"])
    artifact_type = request.query.get("artifactType") or None
    index = await call.registry.listings.referrers(call.name, subject, artifact_type)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return json_response(index, headers, content_type=mediatypes.OCI_INDEX)
