"""``GET``/``HEAD``/``DELETE /v2/<name>/blobs/<digest>``."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.context import Call
from dockyard.oci import errors
from dockyard.oci.digest import Digest
from dockyard.oci.ranges import ByteRange, RangeNotSatisfiable, parse_range


def _blob_headers(digest: Digest, size: int) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "Content-Type": "application/octet-stream",
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }


async def get_blob(request: web.Request, call: Call) -> web.StreamResponse:
    digest = Digest.parse(call.params["digest"])
    location = await call.registry.blobs.locate(call.name, digest, request.method)
    headers = _blob_headers(digest, location.size)
    if location.redirect_url is not None:
        raise web.HTTPTemporaryRedirect(location.redirect_url, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(location.size)
        return web.Response(status=200, headers=headers)
    if location.local_path is not None:
        # aiohttp's FileResponse serves Range / If-Range with sendfile.
        return web.FileResponse(location.local_path, headers=headers)
    return await _stream_blob(request, call, digest, location.size, headers)


async def _stream_blob(
    request: web.Request, call: Call, digest: Digest, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    selected = ByteRange(0, size - 1)
    status = 200
    range_header = request.headers.get("Range")
    if range_header and size > 0:
        try:
            parsed = parse_range(range_header, size)
        except RangeNotSatisfiable:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if parsed is not None:
            selected, status = parsed, 206
            headers["Content-Range"] = f"bytes {parsed.start}-{parsed.end}/{size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = max(selected.length, 0)
    await response.prepare(request)
    if size > 0:
        async for chunk in call.registry.blobs.stream(digest, selected.start, selected.length):
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request, call: Call) -> web.StreamResponse:
    call.registry.check_delete_enabled()
    digest = Digest.parse(call.params["digest"])
    await call.registry.blobs.delete(call.name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})


def blob_location_headers(request: web.Request, call: Call, digest: Digest) -> dict[str, str]:
    return {
        "Location": call.urls.build(request, f"/v2/{call.name}/blobs/{digest}"),
        "Docker-Content-Digest": str(digest),
    }


def unsupported_method() -> errors.RegistryError:
    return errors.RegistryError(errors.UNSUPPORTED, "method not allowed on this route")
