"""Blob uploads: ``POST``, ``PATCH``, ``PUT``, ``GET``, ``DELETE`` on ``/blobs/uploads/``."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.blobs import blob_location_headers
from dockyard.api.context import Call, RequestBody
from dockyard.auth.access import PULL, REPOSITORY, Access
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.names import is_valid_name
from dockyard.oci.ranges import ByteRange, parse_content_range, upload_range_header


def _upload_headers(request: web.Request, call: Call, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": call.urls.build(request, f"/v2/{call.name}/blobs/uploads/{upload_id}"),
        "Range": upload_range_header(size),
        "Docker-Upload-UUID": upload_id,
    }


def _content_range(request: web.Request) -> ByteRange | None:
    value = request.headers.get("Content-Range")
    if value is None:
        return None
    parsed = parse_content_range(value)
    if parsed is None:
        raise errors.RegistryError(
            errors.BLOB_UPLOAD_RANGE_INVALID,
            "Content-Range must be <start>-<end> with end >= start",
            detail={"Content-Range": value[:100]},
        )
    return parsed


def _digest_param(request: web.Request) -> Digest | None:
    value = request.query.get("digest")
    return None if value is None else Digest.parse(value)


async def start_upload(request: web.Request, call: Call) -> web.StreamResponse:
    uploads = call.registry.uploads
    mount = request.query.get("mount")
    if mount is not None:
        mounted = Digest.parse(mount)
        source = request.query.get("from")
        # Without ``from`` any stored blob mounts (the client proved it knows the digest),
        # unless access control limits what the caller may pull. An invalid ``from``, or
        # one the caller may not pull, cannot give the blob: the client uploads instead.
        if source is None:
            mountable = call.pulls_everything
        else:
            mountable = is_valid_name(source) and call.allows(Access(REPOSITORY, source, PULL))
        if mountable and await uploads.mount(call.name, mounted, source) is not None:
            headers = blob_location_headers(request, call, mounted)
            return web.Response(status=201, headers=headers)
    digest = _digest_param(request)
    if digest is not None:
        async with RequestBody(request) as body:
            await uploads.monolithic(call.name, digest, body, request.content_length)
        return web.Response(status=201, headers=blob_location_headers(request, call, digest))
    upload_id = await uploads.start(call.name)
    return web.Response(status=202, headers=_upload_headers(request, call, upload_id, 0))


async def upload_status(request: web.Request, call: Call) -> web.StreamResponse:
    upload_id = call.params["uuid"]
    size = await call.registry.uploads.status(call.name, upload_id)
    return web.Response(status=204, headers=_upload_headers(request, call, upload_id, size))


async def patch_upload(request: web.Request, call: Call) -> web.StreamResponse:
    upload_id = call.params["uuid"]
    async with RequestBody(request) as body:
        size = await call.registry.uploads.append(
            call.name, upload_id, body, _content_range(request), request.content_length
        )
    return web.Response(status=202, headers=_upload_headers(request, call, upload_id, size))


async def complete_upload(request: web.Request, call: Call) -> web.StreamResponse:
    digest = _digest_param(request)
    if digest is None:
        raise errors.RegistryError(
            errors.DIGEST_INVALID, "the digest query parameter is required to complete an upload"
        )
    async with RequestBody(request) as body:
        await call.registry.uploads.complete(
            call.name,
            call.params["uuid"],
            digest,
            body,
            _content_range(request),
            request.content_length,
        )
    return web.Response(status=201, headers=blob_location_headers(request, call, digest))


async def cancel_upload(request: web.Request, call: Call) -> web.StreamResponse:
    await call.registry.uploads.cancel(call.name, call.params["uuid"])
    return web.Response(status=204)
