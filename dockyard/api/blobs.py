"""``GET``/``HEAD``/``DELETE /v2/<name>/blobs/<digest>``."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.blob_response import BytesMissingError, send_local_file, send_stream
from dockyard.api.context import Call
from dockyard.oci.digest import Digest
from dockyard.storage.driver import PathNotFoundError


def _blob_headers(digest: Digest) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "Content-Type": "application/octet-stream",
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }


def _redirect(digest: Digest, url: str) -> web.Response:
    """The 307 to the store's presigned URL, as registry:2 answers it: no body, and none of
    the headers that describe the blob's bytes (ETag, ranges, a year of ``Cache-Control``:
    a cache must not keep a redirect to a URL that expires in minutes)."""
    headers = {
        "Location": url,
        "Docker-Content-Digest": str(digest),
        "Content-Type": "application/octet-stream",
    }
    return web.Response(status=307, headers=headers)


async def get_blob(request: web.Request, call: Call) -> web.StreamResponse:
    digest = Digest.parse(call.params["digest"])
    location = await call.registry.blobs.locate(call.name, digest, request.method)
    if location.redirect_url is not None:
        return _redirect(digest, location.redirect_url)
    headers = _blob_headers(digest)
    if request.method == "HEAD":
        headers["Content-Length"] = str(location.size)
        return web.Response(status=200, headers=headers)
    if location.stream is not None:  # a pull-through download in progress
        return await send_stream(request, location.size, headers, location.stream)
    try:
        if location.local_path is not None:
            return await send_local_file(request, location.local_path, location.size, headers)
        return await send_stream(
            request,
            location.size,
            headers,
            lambda offset, length: call.registry.blobs.stream(digest, offset, length),
        )
    except (BytesMissingError, PathNotFoundError):
        # Raised before the response started: the bytes are gone although the row is not.
        raise await call.registry.blobs.bytes_missing(call.name, digest) from None


async def delete_blob(request: web.Request, call: Call) -> web.StreamResponse:
    digest = Digest.parse(call.params["digest"])
    await call.registry.blobs.delete(call.name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})


def blob_location_headers(request: web.Request, call: Call, digest: Digest) -> dict[str, str]:
    return {
        "Location": call.urls.build(request, f"/v2/{call.name}/blobs/{digest}"),
        "Docker-Content-Digest": str(digest),
    }
