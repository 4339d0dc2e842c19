"""A registry that costs nothing: the push ceiling of the real-client benchmark.

    python -m bench.sink_registry --port PORT [--log] [--hash]

It answers just what a push needs (``/v2/``, blob ``HEAD``, ``POST`` and ``PATCH`` and
``PUT`` of uploads, manifest ``PUT``) and reads every blob body to its end without
hashing or storing it, so a client pushing to it measures its own cost: reading its
store, compressing, HTTP. It remembers only the size of each blob it was told about (a
``HEAD`` after the commit, as docker sends, answers 200) and the manifests (a few KiB).
Bench code, never a registry: nothing is verified. ``--log`` prints each request's
method, path, ``Content-Length`` and ``Transfer-Encoding`` (what the client sends).
``--hash`` computes the sha256 of every blob body (and still keeps nothing): the least
that a registry which verifies digests must spend.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import uuid

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]*)$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_API = {"Docker-Distribution-API-Version": "registry/2.0"}
_MANIFEST_LIMIT = 4 * 1024 * 1024


class Sink:
    """What the sink remembers: blob sizes, upload offsets, manifests."""

    def __init__(self, hashing: bool = False) -> None:
        self.hashing = hashing
        self.blobs: dict[tuple[str, str], int] = {}  # (repository, digest): size
        self.uploads: dict[str, int] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/v2/", "/v2"):
            return web.json_response({}, headers=_API)
        if found := _UPLOADS.match(path):
            return await self._upload(request, found["name"], found["id"])
        if found := _BLOB.match(path):
            return self._blob(request, found["name"], found["digest"])
        if found := _MANIFEST.match(path):
            return await self._manifest(request, found["name"], found["ref"])
        return _unknown()

    async def _upload(self, request: web.Request, name: str, upload: str) -> web.Response:
        if request.method == "POST" and not upload:
            upload = uuid.uuid4().hex
            self.uploads[upload] = 0
        if upload not in self.uploads:
            return _unknown("BLOB_UPLOAD_UNKNOWN")
        if request.method == "DELETE":
            del self.uploads[upload]
            return web.Response(status=204, headers=_API)
        self.uploads[upload] += await _discard(request, self.hashing)
        digest = request.query.get("digest")
        if request.method in ("PUT", "POST") and digest:
            self.blobs[name, digest] = self.uploads.pop(upload)
            location = f"/v2/{name}/blobs/{digest}"
            headers = {**_API, "Location": location, "Docker-Content-Digest": digest}
            return web.Response(status=201, headers=headers)
        received = self.uploads[upload]
        headers = {
            **_API,
            "Location": f"/v2/{name}/blobs/uploads/{upload}",
            "Range": f"0-{max(received - 1, 0)}",
            "Docker-Upload-UUID": upload,
        }
        return web.Response(status=204 if request.method == "GET" else 202, headers=headers)

    def _blob(self, request: web.Request, name: str, digest: str) -> web.Response:
        size = self.blobs.get((name, digest))
        if size is None or request.method != "HEAD":
            return _unknown("BLOB_UNKNOWN")
        headers = {**_API, "Content-Length": str(size), "Docker-Content-Digest": digest}
        return web.Response(status=200, headers=headers)

    async def _manifest(self, request: web.Request, name: str, ref: str) -> web.Response:
        key = f"{name}:{ref}"
        if request.method == "PUT":
            body = await request.content.read(_MANIFEST_LIMIT)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            kind = request.content_type
            self.manifests[key] = self.manifests[f"{name}:{digest}"] = (kind, body)
            headers = {**_API, "Location": f"/v2/{name}/manifests/{digest}",
                       "Docker-Content-Digest": digest}  # fmt: skip
            return web.Response(status=201, headers=headers)
        stored = self.manifests.get(key)
        if stored is None:
            return _unknown("MANIFEST_UNKNOWN")
        kind, body = stored
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        headers = {**_API, "Content-Type": kind, "Docker-Content-Digest": digest}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(status=200, headers=headers)
        return web.Response(status=200, body=body, headers=headers)


async def _discard(request: web.Request, hashing: bool = False) -> int:
    """Read the body to its end (chunked or not), keeping nothing; its length."""
    total = 0
    digest = hashlib.sha256() if hashing else None
    while chunk := await request.content.readany():
        total += len(chunk)
        if digest is not None:
            digest.update(chunk)
    return total


def _unknown(code: str = "NAME_UNKNOWN") -> web.Response:
    body = {"errors": [{"code": code, "message": "not in the sink", "detail": None}]}
    return web.json_response(body, status=404, headers=_API)


def make_app(hashing: bool = False) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", Sink(hashing).handle)
    return app


class _HeadersLog(AbstractAccessLogger):
    """An access logger: what each request declared about its body."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        length = request.headers.get("Content-Length", "-")
        coding = request.headers.get("Transfer-Encoding", "-")
        print(f"{request.method} {request.path_qs[:120]} length={length} te={coding} "
              f"-> {response.status} {seconds:.3f}s", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink_registry", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", action="store_true", help="one line per request")
    parser.add_argument("--hash", action="store_true", help="sha256 every blob body")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    logging = {"access_log_class": _HeadersLog} if args.log else {"access_log": None}
    web.run_app(make_app(args.hash), host="127.0.0.1", port=args.port, print=None, **logging)


if __name__ == "__main__":
    main()
