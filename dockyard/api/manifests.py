"""``GET``/``HEAD``/``PUT``/``DELETE /v2/<name>/manifests/<reference>``."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import Call, read_limited
from dockyard.oci import errors, mediatypes
from dockyard.oci.digest import is_digest


async def get_manifest(request: web.Request, call: Call) -> web.StreamResponse:
    accept = mediatypes.parse_accept(request.headers.getall("Accept", []))
    reference = call.params["reference"]
    record = await call.registry.manifests.get(call.name, reference, accept, request.method)
    etag = f'"{record.digest}"'
    headers = {
        "Content-Type": record.media_type,
        "Docker-Content-Digest": record.digest,
        "ETag": etag,
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(record.size)
        return web.Response(status=200, headers=headers)
    return web.Response(status=200, body=record.payload, headers=headers)


async def put_manifest(request: web.Request, call: Call) -> web.StreamResponse:
    limit = call.registry.settings.manifest_max_bytes
    payload = await read_limited(request, limit, errors.MANIFEST_INVALID)
    pushed = await call.registry.manifests.push(
        call.name, call.params["reference"], payload, request.headers.get("Content-Type")
    )
    headers = {
        "Location": call.urls.build(request, f"/v2/{call.name}/manifests/{pushed.digest}"),
        "Docker-Content-Digest": str(pushed.digest),
    }
    if pushed.subject is not None:
        headers["OCI-Subject"] = str(pushed.subject)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request, call: Call) -> web.StreamResponse:
    """By digest: the manifest and its tags. By tag: only the tag."""
    reference = call.params["reference"]
    if is_digest(reference):
        await call.registry.manifests.delete(call.name, reference)
    else:
        await call.registry.tags.delete(call.name, reference)
    return web.Response(status=202)
