"""An HTTP client for any OCI / Docker V2 registry, on one aiohttp session.

Blobs are streamed both ways (never held whole in memory); manifests are small and read whole,
and their digest is verified. Authentication (anonymous, Basic, Bearer from the challenge) is
:class:`~dockyard.remote.auth.Authenticator`'s job; every request says which scopes it needs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from yarl import URL

from dockyard.oci import mediatypes
from dockyard.oci.digest import Digest

from .auth import Authenticator
from .challenge import CATALOG_SCOPE, next_link, parse_challenge, repository_scope
from .errors import RemoteError, RemoteUnavailable, error_from_response

ALL_MANIFEST_TYPES: tuple[str, ...] = (
    mediatypes.OCI_MANIFEST,
    mediatypes.OCI_INDEX,
    mediatypes.DOCKER_MANIFEST,
    mediatypes.DOCKER_MANIFEST_LIST,
)
CHUNK_SIZE = 1 << 20
PAGE_SIZE = 1000
OCTET_STREAM = "application/octet-stream"


def _version() -> str:
    try:
        return importlib.metadata.version("dockyard")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"dockyard/{_version()}"


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class FetchedManifest:
    body: bytes
    media_type: str
    digest: str


class BlobStream:
    """An open blob download: ``size`` (None when the server sends no length) and the
    bytes as an async iterator of chunks, checked against the digest at the end."""

    def __init__(self, response: aiohttp.ClientResponse, digest: str, verify: bool) -> None:
        self._response = response
        self._digest = Digest.parse(digest)
        self._verify = verify
        self.size: int | None = response.content_length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        hasher = self._digest.hasher() if self._verify else None
        received = 0
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK_SIZE):
                received += len(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RemoteUnavailable(f"blob {self._digest}: download failed: {exc}") from exc
        if self.size is not None and received != self.size:
            raise RemoteError(f"blob {self._digest}: got {received} of {self.size} bytes")
        if hasher is not None and hasher.hexdigest() != self._digest.hex:
            raise RemoteError(f"blob {self._digest}: the bytes received have another digest")


def _tls_context(tls_verify: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    if not tls_verify:
        return False
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return True


def _verified_digest(body: bytes, expected: str | None, what: str) -> str:
    """The digest of ``body``, in ``expected``'s algorithm; raise when they differ."""
    algorithm = Digest.parse(expected).algorithm if expected else "sha256"
    actual = str(Digest.of(body, algorithm))
    if expected and actual != expected:
        raise RemoteError(f"{what}: the registry sent content of digest {actual}, not {expected}")
    return actual


def _content_type(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip()


def fallback_tag(digest: str) -> str:
    """The referrers tag schema of OCI Distribution 1.1: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)[:128]


class RemoteRegistry:
    """A registry at ``base_url`` (``http(s)://host:port``). One per registry; close it."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls_verify: bool = True,
        ca_file: str | None = None,
        timeout: float = 30.0,
        user_agent: str = USER_AGENT,
        max_connections: int = 32,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not a registry URL (http(s)://host[:port]): {base_url!r}")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self._auth = Authenticator(username, password, token)
        self._tls = _tls_context(tls_verify, ca_file)
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
        )
        self._headers = {"User-Agent": user_agent}
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"RemoteRegistry({self.base_url!r})"

    # ------------------------------------------------------------------ lifecycle

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._tls, limit=self._max_connections),
                timeout=self._timeout,
                headers=self._headers,
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RemoteRegistry:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ one exchange

    def _url(self, path_or_url: str) -> URL:
        return URL(urljoin(self.base_url + "/", path_or_url), encoded=True)

    @contextlib.asynccontextmanager
    async def _exchange(
        self,
        method: str,
        path_or_url: str,
        scopes: Sequence[str],
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        allow_redirects: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one request with credentials for ``scopes``; on a 401 learn the challenge
        and send it once more (only when the body can be replayed)."""
        session = self._client()
        url = self._url(path_or_url)
        replayable = data is None or isinstance(data, bytes)
        for attempt in range(2):
            request_headers = dict(headers or {})
            authorization = await self._auth.header(session, scopes)
            if authorization:
                request_headers["Authorization"] = authorization
            try:
                response = await session.request(
                    method, url, headers=request_headers, data=data,
                    allow_redirects=allow_redirects,
                )  # fmt: skip
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise RemoteUnavailable(
                    f"{method} {url}: {exc.__class__.__name__}: {exc or 'timed out'}"
                ) from exc
            if response.status == 401 and attempt == 0 and replayable:
                challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                if challenge is not None and (
                    self._auth.has_credentials or challenge.scheme == "bearer"
                ):
                    response.release()
                    self._auth.learn(challenge)
                    self._auth.forget(scopes)
                    continue
            try:
                yield response
            finally:
                response.release()
            return

    async def _expect(self, response: aiohttp.ClientResponse, what: str, *statuses: int) -> None:
        if response.status not in statuses:
            body = await response.content.read(64 * 1024)
            raise error_from_response(what, response.status, body)

    # ------------------------------------------------------------------ base

    async def ping(self) -> None:
        """``GET /v2/``: the registry answers and accepts our credentials."""
        async with self._exchange("GET", "/v2/", ()) as response:
            await self._expect(response, f"{self.base_url}/v2/", 200)

    # ------------------------------------------------------------------ manifests

    async def head_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = ALL_MANIFEST_TYPES
    ) -> ManifestInfo | None:
        what = f"manifest {repo}:{reference}"
        path = f"/v2/{repo}/manifests/{quote(reference, safe=':')}"
        headers = {"Accept": ", ".join(accept)}
        async with self._exchange(
            "HEAD", path, [repository_scope(repo, "pull")], headers=headers
        ) as r:
            if r.status == 404:
                return None
            await self._expect(r, what, 200)
            digest = r.headers.get("Docker-Content-Digest")
            if digest and r.content_length is not None:
                return ManifestInfo(digest, _content_type(r), r.content_length)
        try:
            fetched = await self.get_manifest(repo, reference, accept)
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise
        return ManifestInfo(fetched.digest, fetched.media_type, len(fetched.body))

    async def get_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = ALL_MANIFEST_TYPES
    ) -> FetchedManifest:
        what = (
            f"manifest {repo}:{reference}"
            if ":" not in reference
            else f"manifest {repo}@{reference}"
        )
        path = f"/v2/{repo}/manifests/{quote(reference, safe=':')}"
        headers = {"Accept": ", ".join(accept)}
        async with self._exchange(
            "GET", path, [repository_scope(repo, "pull")], headers=headers
        ) as r:
            await self._expect(r, what, 200)
            body = await r.read()
            header_digest = r.headers.get("Docker-Content-Digest")
            media_type = _content_type(r)
        expected = reference if ":" in reference else header_digest
        digest = _verified_digest(body, expected, what)
        if not media_type or media_type not in mediatypes.MANIFESTS:
            media_type = _media_type_in_body(body) or media_type
        return FetchedManifest(body, media_type, digest)

    async def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        what = f"push manifest {repo}:{reference}"
        path = f"/v2/{repo}/manifests/{quote(reference, safe=':')}"
        scopes = [repository_scope(repo, "pull", "push")]
        async with self._exchange(
            "PUT", path, scopes, headers={"Content-Type": media_type}, data=body
        ) as r:
            await self._expect(r, what, 201, 200)
            header_digest = r.headers.get("Docker-Content-Digest")
        return header_digest or _verified_digest(body, None, what)

    async def delete_manifest(self, repo: str, reference: str) -> bool:
        """``DELETE`` a tag or a manifest by digest; False when it was not there (404)."""
        what = f"delete {repo}{'@' if ':' in reference else ':'}{reference}"
        path = f"/v2/{repo}/manifests/{quote(reference, safe=':')}"
        scopes = [repository_scope(repo, "pull", "push", "delete")]
        async with self._exchange("DELETE", path, scopes) as r:
            if r.status == 404:
                return False
            await self._expect(r, what, 202, 200, 204)
        return True

    # ------------------------------------------------------------------ blobs

    async def blob_size(self, repo: str, digest: str) -> int | None:
        """The blob's size when ``repo`` has it (HEAD), None when it does not."""
        path = f"/v2/{repo}/blobs/{digest}"
        scopes = [repository_scope(repo, "pull")]
        async with self._exchange("HEAD", path, scopes, allow_redirects=False) as r:
            if r.status == 404:
                return None
            if r.status not in (301, 302, 303, 307, 308):
                await self._expect(r, f"blob {repo}@{digest}", 200)
                if r.content_length is not None:
                    return r.content_length
        # Redirected to storage (a URL signed for GET only) or no length: ask for one byte.
        headers = {"Range": "bytes=0-0"}
        async with self._exchange("GET", path, scopes, headers=headers) as r:
            if r.status == 404:
                return None
            await self._expect(r, f"blob {repo}@{digest}", 200, 206)
            total = r.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit():
                return int(total)
            return r.content_length

    @contextlib.asynccontextmanager
    async def open_blob(
        self, repo: str, digest: str, *, verify: bool = True
    ) -> AsyncIterator[BlobStream]:
        """Stream a blob (redirects to storage are followed, without our credentials)."""
        path = f"/v2/{repo}/blobs/{digest}"
        async with self._exchange("GET", path, [repository_scope(repo, "pull")]) as r:
            await self._expect(r, f"blob {repo}@{digest}", 200)
            yield BlobStream(r, digest, verify)

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True when the registry mounted it (201)."""
        path = (
            f"/v2/{repo}/blobs/uploads/?mount={quote(digest, safe=':')}"
            f"&from={quote(from_repo, safe='/')}"
        )
        scopes = [repository_scope(repo, "pull", "push"), repository_scope(from_repo, "pull")]
        async with self._exchange("POST", path, scopes) as r:
            if r.status == 201:
                return True
            await self._expect(r, f"mount {digest} from {from_repo} into {repo}", 202)
            location = r.headers.get("Location")
        if location:  # an upload session was opened instead: give it back
            with contextlib.suppress(RemoteError):
                async with self._exchange("DELETE", location, scopes[:1]):
                    pass
        return False

    async def push_blob(
        self, repo: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None:
        """Upload a blob: POST for a session, then one streamed PUT of ``size`` bytes."""
        what = f"push blob {repo}@{digest}"
        scopes = [repository_scope(repo, "pull", "push")]
        async with self._exchange("POST", f"/v2/{repo}/blobs/uploads/", scopes) as r:
            await self._expect(r, what, 202)
            location = r.headers.get("Location")
        if not location:
            raise RemoteError(f"{what}: the registry gave no upload Location")
        separator = "&" if "?" in location else "?"
        target = f"{location}{separator}digest={quote(digest, safe=':')}"
        headers = {"Content-Type": OCTET_STREAM, "Content-Length": str(size)}
        async with self._exchange("PUT", target, scopes, headers=headers, data=chunks) as r:
            await self._expect(r, what, 201)

    # ------------------------------------------------------------------ listings

    async def _pages(self, path: str, key: str, scopes: Sequence[str]) -> list[str]:
        found: list[str] = []
        url: str | None = f"{path}?n={PAGE_SIZE}"
        while url is not None:
            async with self._exchange("GET", url, scopes) as r:
                await self._expect(r, f"{self.base_url}{path}", 200)
                document = json.loads(await r.read())
                link = r.headers.get("Link")
            values = document.get(key) if isinstance(document, dict) else None
            found.extend(v for v in values or [] if isinstance(v, str))
            url = next_link(link, self.base_url + path)
        return found

    async def list_tags(self, repo: str) -> list[str]:
        return await self._pages(f"/v2/{repo}/tags/list", "tags", [repository_scope(repo, "pull")])

    async def catalog(self) -> list[str]:
        return await self._pages("/v2/_catalog", "repositories", [CATALOG_SCOPE])

    async def list_repositories(self) -> list[str]:
        """The catalog (the name :class:`dockyard.sync.protocols.ImageSource` uses)."""
        return await self.catalog()

    async def referrers(self, repo: str, digest: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose ``subject`` is ``digest``: the referrers API,
        or the ``sha256-<hex>`` tag when the registry has no such API (registry:2)."""
        url: str | None = f"/v2/{repo}/referrers/{digest}"
        scopes = [repository_scope(repo, "pull")]
        found: list[dict[str, Any]] = []
        while url is not None:
            async with self._exchange(
                "GET", url, scopes, headers={"Accept": mediatypes.OCI_INDEX}
            ) as r:
                if r.status == 404 and not found:
                    break
                await self._expect(r, f"referrers of {repo}@{digest}", 200)
                found.extend(_index_entries(await r.read()))
                link = r.headers.get("Link")
            url = next_link(link, self.base_url + f"/v2/{repo}/referrers/{digest}")
        else:
            return found
        try:
            index = await self.get_manifest(repo, fallback_tag(digest), [mediatypes.OCI_INDEX])
        except RemoteError as exc:
            if exc.status == 404:
                return []
            raise
        return _index_entries(index.body)


def _index_entries(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except ValueError:
        return []
    manifests = document.get("manifests") if isinstance(document, dict) else None
    return [m for m in manifests or [] if isinstance(m, dict)]


def _media_type_in_body(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("mediaType") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


__all__ = [
    "ALL_MANIFEST_TYPES",
    "BlobStream",
    "FetchedManifest",
    "ManifestInfo",
    "RemoteRegistry",
    "fallback_tag",
]
