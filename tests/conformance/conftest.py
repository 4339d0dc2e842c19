"""Fixtures and helpers of the conformance port: the live Dockyard process, a small HTTP
client that behaves like the suite's (reggie over resty over Go's net/http), the test data
of the suite's ``setup.go``, and the status-code expectations.

Environment (the names and meanings of the upstream suite, with this port's defaults):

* ``OCI_NAMESPACE`` (``conformance/test``) and ``OCI_CROSSMOUNT_NAMESPACE``
  (``conformance-<uuid4>``, as upstream when unset);
* ``OCI_AUTOMATIC_CROSSMOUNT`` (``1``): whether the registry is expected to mount a blob
  when ``from`` is missing;
* ``OCI_DELETE_MANIFEST_BEFORE_BLOBS`` (``1``): teardown order;
* ``OCI_DEBUG``: print every request and response (see them with ``pytest -s``).

Port-specific:

* ``DOCKYARD_CONFORMANCE_SHARED_SERVER=1``: one server for the whole session, so the four
  workflows share a registry and a namespace exactly as one upstream run does (by default
  every test module gets a fresh server and store);
* ``DOCKYARD_CONFORMANCE_SEED``: seed of the random blobs (upstream: the Ginkgo seed);
* ``DOCKYARD_CONFORMANCE_SERVER=registry2``: run the port against Debian's
  ``docker-registry`` (Distribution 2.8, the code of ``registry:2``) instead of Dockyard, to
  check the port itself; that server has no referrers API, so the referrers specs fail there.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import secrets
import string
import sys
import tarfile
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlencode, urlsplit

import pytest

from tests.e2e.server import RegistryServer
from tests.seaweedfs import SeaweedServer

# --------------------------------------------------------------------------- settings

MANIFEST_V1 = "application/vnd.oci.image.manifest.v1+json"
INDEX_V1 = "application/vnd.oci.image.index.v1+json"
CONFIG_V1 = "application/vnd.oci.image.config.v1+json"
LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"
OCTET_STREAM = "application/octet-stream"
#: the digest of ``{}``, which the suite asserts before using it
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

USER_AGENT = "distribution-spec-conformance-tests"
#: the error codes of the spec's table; a 400 body must use one of them
ERROR_CODES = (
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
)
TEST_TAG = "tagtest0"
EMPTY_LAYER_TAG = "emptylayer"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
ARTIFACT_TYPE_FILTER = "artifactType"
#: the workflows of the suite (pull, push, content discovery, content management) are bit
#: flags 1 << 0 .. 1 << 3, and the count that sizes the per-workflow data is 1 << 4
NUM_WORKFLOWS = 1 << 4

REQUEST_TIMEOUT = 30.0


def _go_parse_bool(value: str) -> bool | None:
    """``strconv.ParseBool``: None where Go returns an error (and then false)."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


@dataclass(frozen=True)
class SuiteSettings:
    namespace: str
    crossmount_namespace: str
    #: OCI_AUTOMATIC_CROSSMOUNT is set at all (the two automatic-mount specs run)
    run_automatic_crossmount_test: bool
    #: ... and is true (the 201 variant runs, else the 202 variant)
    automatic_crossmount_enabled: bool
    delete_manifest_before_blobs: bool
    shared_server: bool
    seed: int
    debug: bool
    #: "dockyard", or "registry2" to check the port against the reference
    server_kind: str

    @classmethod
    def from_environment(cls) -> SuiteSettings:
        env = os.environ
        automatic = env.get("OCI_AUTOMATIC_CROSSMOUNT", "1")
        # upstream: true unless the variable is set, then whatever ParseBool makes of it
        delete_first = env.get("OCI_DELETE_MANIFEST_BEFORE_BLOBS")
        seed_text = env.get("DOCKYARD_CONFORMANCE_SEED", "")
        return cls(
            namespace=env.get("OCI_NAMESPACE") or "conformance/test",
            crossmount_namespace=env.get("OCI_CROSSMOUNT_NAMESPACE")
            or f"conformance-{uuid.uuid4()}",
            # upstream runs the two automatic-mount specs only when the variable is set at
            # all; this port defaults it to "1", so they always run
            run_automatic_crossmount_test=True,
            automatic_crossmount_enabled=bool(_go_parse_bool(automatic)),
            delete_manifest_before_blobs=delete_first is None or bool(_go_parse_bool(delete_first)),
            shared_server=bool(_go_parse_bool(env.get("DOCKYARD_CONFORMANCE_SHARED_SERVER", ""))),
            seed=int(seed_text) if seed_text else int(time.time_ns() % 2**31),
            debug=bool(_go_parse_bool(env.get("OCI_DEBUG", ""))),
            server_kind=env.get("DOCKYARD_CONFORMANCE_SERVER", "").strip() or "dockyard",
        )


SETTINGS = SuiteSettings.from_environment()


# --------------------------------------------------------------------------- test data


@dataclass(frozen=True)
class Blob:
    """Content with its length (as the decimal string the suite sends) and digest."""

    content: bytes

    @property
    def length(self) -> str:
        return str(len(self.content))

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def digest(self) -> str:
        return sha256_digest(self.content)


def sha256_digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _go_marshal_indent(value: object) -> bytes:
    """``json.MarshalIndent(v, "", "\\t")`` for the shapes built here (ASCII strings, no
    HTML characters, keys in the order the Go struct declares them)."""
    return json.dumps(value, indent="\t").encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _descriptor(
    media_type: str,
    content: bytes,
    *,
    data: bytes | None = None,
    unspecified: bytes | None = None,
) -> dict[str, Any]:
    """A descriptor as the suite's Go struct marshals it: ``data`` only when set, and the
    extra ``newUnspecifiedField`` always (``null`` when unset) to check that registries keep
    fields they do not know."""
    out: dict[str, Any] = {
        "mediaType": media_type,
        "digest": sha256_digest(content),
        "size": len(content),
    }
    if data:
        out["data"] = _b64(data)
    out["newUnspecifiedField"] = _b64(unspecified) if unspecified is not None else None
    return out


def _random_blob(size: int, seed: int) -> Blob:
    return Blob(random.Random(seed).randbytes(size))


def _random_author(length: int = 16) -> str:
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase + "-"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _layer_tarball() -> bytes:
    """A small gzipped tar with one text file, built deterministically (the upstream suite
    embeds a similar tarball as base64)."""
    text = b"Dockyard conformance port: a one-file layer.\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("layer.txt")
        info.size = len(text)
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(text))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass(frozen=True)
class ChunkedBlob:
    """The blob the chunked-upload specs send in two PATCHes."""

    blob: Blob
    chunk1: bytes
    chunk2: bytes

    @classmethod
    def build(cls, size: int, seed: int) -> ChunkedBlob:
        blob = _random_blob(size, seed)
        cut = size // 2 + 1
        return cls(blob, blob.content[:cut], blob.content[cut:])

    @property
    def chunk1_range(self) -> str:
        return f"0-{len(self.chunk1) - 1}"

    @property
    def chunk2_range(self) -> str:
        return f"{len(self.chunk1)}-{self.blob.size - 1}"


@dataclass
class TestData:
    """The suite's fixtures (``setup.go`` ``init``), with fresh random content per run."""

    __test__ = False  # not a test class

    seed: int
    configs: list[Blob]
    manifests: list[Blob]
    layer: Blob
    empty_layer_manifest: Blob
    blob_a: Blob
    chunked: ChunkedBlob
    empty_json: Blob
    ref_blob_a: Blob
    ref_blob_b: Blob
    artifact_type_a: str
    artifact_type_b: str
    artifact_type_index: str
    annotation_key: str
    #: digest of each referrer -> the annotation value it carries
    annotation_values: dict[str, str]
    refs_a_config: Blob
    refs_b_config: Blob
    refs_a_layer: Blob
    refs_b_layer: Blob
    refs_c_layer: Blob
    refs_index: Blob
    dummy_digest: str = field(default_factory=lambda: sha256_digest(b"hello world"))
    invalid_manifest_content: bytes = b"blablabla"

    def rebuild_chunked(self, size: int) -> None:
        """``setupChunkedBlob``: used when the registry demands larger chunks."""
        self.chunked = ChunkedBlob.build(size, self.seed + 2)

    @classmethod
    def build(cls, seed: int) -> TestData:
        configs = []
        for _ in range(NUM_WORKFLOWS):
            image = {
                "author": _random_author(),
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }
            configs.append(Blob(_go_marshal_indent(image)))

        layer = Blob(_layer_tarball())
        layers = [_descriptor(LAYER_TAR_GZIP, layer.content)]
        manifests = []
        for config in configs:
            doc = {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V1,
                "config": _descriptor(
                    CONFIG_V1, config.content, data=config.content, unspecified=b"hello world"
                ),
                "layers": layers,
            }
            manifests.append(Blob(_go_marshal_indent(doc)))

        # no mediaType field and no layers: registries must accept both
        empty_layer_manifest = Blob(
            _go_marshal_indent(
                {
                    "schemaVersion": 2,
                    "config": _descriptor(
                        CONFIG_V1,
                        configs[1].content,
                        data=configs[1].content,
                        unspecified=b"hello world",
                    ),
                    "layers": [],
                }
            )
        )

        empty_json = Blob(b"{}")
        empty_desc = _descriptor(EMPTY_JSON, empty_json.content)
        ref_blob_a = Blob(b"referrer payload A: a signature-like artifact")
        ref_blob_b = Blob(b"referrer payload B: an SBOM-like artifact")
        type_a = "application/vnd.dockyard.conformance.alpha"
        type_b = "application/vnd.dockyard.conformance.beta"
        type_index = "application/vnd.dockyard.conformance.bundle"
        key = "org.dockyard.conformance.note"
        subject4 = _descriptor(MANIFEST_V1, manifests[4].content)
        subject3 = _descriptor(MANIFEST_V1, manifests[3].content)
        values: dict[str, str] = {}

        def artifact(doc: dict[str, Any]) -> Blob:
            blob = Blob(_go_marshal_indent(doc))
            if "annotations" in doc:
                values[blob.digest] = doc["annotations"][key]
            return blob

        # artifact type carried by config.mediaType
        refs_a_config = artifact(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V1,
                "config": _descriptor(type_a, ref_blob_a.content),
                "layers": [empty_desc],
                "subject": subject4,
                "annotations": {key: "config-typed artifact A"},
            }
        )
        refs_b_config = artifact(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V1,
                "config": _descriptor(type_b, ref_blob_b.content),
                "layers": [empty_desc],
                "subject": subject4,
                "annotations": {key: "config-typed artifact B"},
            }
        )
        # artifactType field, empty JSON config
        refs_a_layer = artifact(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V1,
                "artifactType": type_a,
                "config": empty_desc,
                "layers": [_descriptor(type_a, ref_blob_a.content)],
                "subject": subject4,
                "annotations": {key: "artifactType-typed artifact A"},
            }
        )
        refs_b_layer = artifact(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V1,
                "artifactType": type_b,
                "config": empty_desc,
                "layers": [_descriptor(type_b, ref_blob_b.content)],
                "subject": subject4,
                "annotations": {key: "artifactType-typed artifact B"},
            }
        )
        # like B, but its subject (manifests[3]) is never pushed in this workflow
        refs_c_layer = artifact(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V1,
                "artifactType": type_b,
                "config": empty_desc,
                "layers": [_descriptor(type_b, ref_blob_b.content)],
                "subject": subject3,
            }
        )
        refs_index = artifact(
            {
                "schemaVersion": 2,
                "mediaType": INDEX_V1,
                "artifactType": type_index,
                "manifests": [
                    _descriptor(MANIFEST_V1, refs_a_config.content),
                    _descriptor(MANIFEST_V1, refs_a_layer.content),
                ],
                "subject": subject4,
                "annotations": {key: "index artifact"},
            }
        )

        return cls(
            seed=seed,
            configs=configs,
            manifests=manifests,
            layer=layer,
            empty_layer_manifest=empty_layer_manifest,
            blob_a=_random_blob(42, seed + 1),
            chunked=ChunkedBlob.build(42, seed + 2),
            empty_json=empty_json,
            ref_blob_a=ref_blob_a,
            ref_blob_b=ref_blob_b,
            artifact_type_a=type_a,
            artifact_type_b=type_b,
            artifact_type_index=type_index,
            annotation_key=key,
            annotation_values=values,
            refs_a_config=refs_a_config,
            refs_b_config=refs_b_config,
            refs_a_layer=refs_a_layer,
            refs_b_layer=refs_b_layer,
            refs_c_layer=refs_c_layer,
            refs_index=refs_index,
        )


# --------------------------------------------------------------------------- HTTP client


@dataclass
class Response:
    """One exchange, kept whole so that a failed expectation can show it."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        """The first value of ``name`` or "" (Go's ``Header.Get``)."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return ""

    def relative_location(self) -> str:
        """Path (decoded, as Go's ``url.URL.Path``) and query of ``Location``."""
        parts = urlsplit(self.header("Location"))
        path = unquote(parts.path)
        return f"{path}?{parts.query}" if parts.query else path

    def absolute_location(self) -> str:
        return self.header("Location")

    def json(self) -> Any:
        return json.loads(self.body)

    def errors(self) -> list[dict[str, Any]]:
        """reggie's ``Errors()``: the ``errors`` array of an OCI error body, which must
        parse and be non-empty."""
        try:
            doc = json.loads(self.body)
        except ValueError as exc:
            raise AssertionError(f"error body is not JSON ({exc})\n{self.trace()}") from None
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errors, list) or not errors:
            raise AssertionError(f"error body has no errors array\n{self.trace()}")
        return errors

    def trace(self) -> str:
        def show(raw: bytes, limit: int) -> str:
            if not raw:
                return "(empty)"
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                text = repr(raw)
            return text if len(text) <= limit else text[:limit] + f"... ({len(raw)} bytes)"

        lines = [f">>> {self.method} {self.url}"]
        lines += [f">>> {k}: {v}" for k, v in self.request_headers.items()]
        if self.request_body:
            lines.append(">>> " + show(self.request_body, 400))
        lines.append(f"<<< {self.status} {self.reason}")
        lines += [f"<<< {k}: {v}" for k, v in self.headers]
        lines.append("<<< " + show(self.body, 2000))
        return "\n".join(lines)


class OciClient:
    """The suite's client, reduced to what the specs use.

    Like reggie/resty/net/http: ``<name>``, ``<reference>`` and ``<digest>`` are filled in
    the path template; query parameters are appended (sorted, URL-encoded) to any query the
    path already has; ``Content-Length`` always reflects the body actually sent (Go drops a
    ``Content-Length`` header set by hand, so a PUT with that header and no body goes out
    with ``Content-Length: 0``); redirects are followed as Go's client does; one keep-alive
    connection is reused.
    """

    def __init__(self, host: str, port: int, namespace: str) -> None:
        self.host = host
        self.port = port
        self.namespace = namespace
        self._conn: http.client.HTTPConnection | None = None
        self._used = False
        self._others: dict[str, OciClient] = {}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for other in self._others.values():
            other.close()

    def _elsewhere(self, netloc: str, redirect: Response) -> OciClient:
        """A client of another server on this machine (where a redirect points)."""
        host, _, port = netloc.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit():
            raise AssertionError(f"redirect off this machine\n{redirect.trace()}")
        if netloc not in self._others:
            self._others[netloc] = OciClient(host, int(port), self.namespace)
        return self._others[netloc]

    def request(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        reference: str | None = None,
        digest: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        path = path.replace("<name>", name or self.namespace)
        if reference is not None:
            path = path.replace("<reference>", reference)
        if digest is not None:
            path = path.replace("<digest>", digest)
        if "<" in path:
            raise ValueError(f"unfilled path parameter in {path!r}")
        if not path.startswith("/"):
            path = "/" + path
        if query:
            encoded = urlencode(sorted(query.items()))
            path += ("&" if "?" in path else "?") + encoded
        sent = {"User-Agent": USER_AGENT}
        for key, value in (headers or {}).items():
            if key.lower() != "content-length":
                sent[key] = value
        if method in ("GET", "HEAD", "OPTIONS"):
            body = None  # resty sends no payload with these methods
        if method != "HEAD" and "Range" not in sent:
            sent["Accept-Encoding"] = "gzip"  # Go's transport asks for gzip, then decodes it
        return self._follow(method, path, sent, body)

    def _follow(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        client = self
        for _ in range(10):
            resp = client._exchange(method, target, headers, body)
            if SETTINGS.debug:
                print(resp.trace() + "\n", flush=True)
            location = resp.header("Location")
            if resp.status not in (301, 302, 303, 307, 308) or not location:
                return resp
            parts = urlsplit(location)
            if parts.netloc and parts.netloc != f"{client.host}:{client.port}":
                # The storage's presigned URL (S3): another host, as Go follows it, without
                # the registry's credentials.
                client = self._elsewhere(parts.netloc, resp)
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        raise AssertionError("more than 10 redirects")

    def _exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        for attempt in (1, 2):
            reused = self._conn is not None and self._used
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT
                )
                self._used = False
            conn = self._conn
            try:
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
                data = raw.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 1:
                    continue  # a keep-alive connection the server had closed: retry once
                raise
            self._used = True
            if raw.will_close:
                self.close()
            response_headers = list(raw.getheaders())
            encoding = raw.getheader("Content-Encoding", "")
            if headers.get("Accept-Encoding") == "gzip" and encoding.lower() == "gzip" and data:
                data = gzip.decompress(data)
                dropped = ("content-encoding", "content-length")
                response_headers = [h for h in response_headers if h[0].lower() not in dropped]
            sent = dict(headers)
            if body is not None or method in ("POST", "PUT", "PATCH"):
                sent["Content-Length"] = str(len(body or b""))
            return Response(
                method=method,
                url=self.base_url + target,
                request_headers=sent,
                request_body=body or b"",
                status=raw.status,
                reason=raw.reason,
                headers=response_headers,
                body=data,
            )
        raise AssertionError("unreachable")


# --------------------------------------------------------------------------- expectations

SUCCESS = range(200, 300)


def _describe(allowed: tuple[int | range, ...]) -> str:
    parts = [f"{a.start}..{a.stop - 1}" if isinstance(a, range) else str(a) for a in allowed]
    return " or ".join(parts)


def expect_status(resp: Response, *allowed: int | range) -> None:
    """Gomega's ``Equal`` / ``SatisfyAny`` / ``BeNumerically`` on the status code."""
    __tracebackhide__ = True
    for option in allowed:
        if (resp.status in option) if isinstance(option, range) else resp.status == option:
            return
    raise AssertionError(f"status {resp.status}, expected {_describe(allowed)}\n{resp.trace()}")


def expect(condition: bool, message: str, resp: Response | None = None) -> None:
    __tracebackhide__ = True
    if not condition:
        raise AssertionError(message + ("\n" + resp.trace() if resp is not None else ""))


def warn(message: str) -> None:
    """The suite's ``Warn``: reported, not a failure."""
    print(f"WARNING (conformance): {message}", file=sys.stderr)


def skip_unless(condition: bool) -> None:
    """``RunOnlyIf``."""
    if not condition:
        pytest.skip("you have skipped this test.")


def tag_list(resp: Response) -> list[str]:
    """``getTagList``: the ``tags`` of a tag-list body, empty when it does not parse."""
    try:
        doc = json.loads(resp.body)
    except ValueError:
        return []
    tags = doc.get("tags") if isinstance(doc, dict) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def push_blob(oci: OciClient, blob: Blob) -> Response:
    """The suite's two-request upload: POST a session, PUT the content with ``digest``."""
    started = oci.request("POST", "/v2/<name>/blobs/uploads/")
    return oci.request(
        "PUT",
        started.relative_location(),
        query={"digest": blob.digest},
        headers={"Content-Type": OCTET_STREAM, "Content-Length": blob.length},
        body=blob.content,
    )


def put_manifest(
    oci: OciClient, reference: str, manifest: Blob, media_type: str = MANIFEST_V1
) -> Response:
    return oci.request(
        "PUT",
        "/v2/<name>/manifests/<reference>",
        reference=reference,
        headers={"Content-Type": media_type},
        body=manifest.content,
    )


# --------------------------------------------------------------------------- the server


def _server_scope(fixture_name: str, config: pytest.Config) -> Literal["session", "module"]:
    return "session" if SETTINGS.shared_server else "module"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: the OCI distribution-spec conformance port (live server)"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"conformance: namespace={SETTINGS.namespace} "
        f"crossmount={SETTINGS.crossmount_namespace} seed={SETTINGS.seed} "
        f"automatic-crossmount={SETTINGS.automatic_crossmount_enabled} "
        f"delete-manifest-before-blobs={SETTINGS.delete_manifest_before_blobs} "
        f"server={SETTINGS.server_kind}, "
        f"{'one for the session' if SETTINGS.shared_server else 'one per module'}"
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, append the tail of the server's log to the report."""
    report = yield
    if report.failed:
        server = getattr(item, "funcargs", {}).get("conformance_server")
        if isinstance(server, RegistryServer):
            report.sections.append(
                (f"{server.kind} log tail ({server.log_path})", server.log_tail(60))
            )
    return report


@pytest.fixture(scope="session")
def suite() -> SuiteSettings:
    return SETTINGS


@pytest.fixture(scope="session")
def data() -> TestData:
    return TestData.build(SETTINGS.seed)


@pytest.fixture(scope=_server_scope, params=["filesystem", "s3"])
def conformance_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """The registry under test, started as the e2e suite starts it (tests/e2e/server.py),
    on the filesystem and on S3 (SeaweedFS, a bucket of its own; blob reads redirected)."""
    kind = SETTINGS.server_kind
    storage = ""
    if request.param == "s3":
        seaweedfs: SeaweedServer = request.getfixturevalue("seaweedfs")
        storage = seaweedfs.storage_section(seaweedfs.new_bucket("conformance"))
    workdir = tmp_path_factory.mktemp(f"{kind}-conformance-{request.param}-")
    server = RegistryServer(kind, workdir, storage=storage)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope=_server_scope)
def oci(conformance_server: RegistryServer) -> Iterator[OciClient]:
    client = OciClient("127.0.0.1", conformance_server.port, SETTINGS.namespace)
    try:
        yield client
    finally:
        client.close()
