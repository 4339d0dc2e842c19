"""One S3 bucket as the S3 driver's parts see it: an aiobotocore client made from
``storage.s3``, the bucket's name, the key prefix (``rootdirectory``) and the arguments every
new object gets (ACL, storage class, server-side encryption).

Credentials: ``accesskey``/``secretkey`` (and ``sessiontoken``) when given, else botocore's
usual chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_PROFILE`` and the shared files (``~/.aws/credentials``, ``~/.aws/config``), web
identity, container and instance roles.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import ClientError

from dockyard.storage.driver import InvalidPathError, PathNotFoundError
from dockyard.storage.s3 import S3Parameters
from dockyard.storage.s3_checksums import Integrity

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = Any

# S3 limits a key to 1024 bytes of UTF-8; some S3-compatible stores (SeaweedFS) limit each
# name in it to 255, as filesystems do. Distribution's layout needs neither much.
MAX_KEY_BYTES: Final = 1024
MAX_NAME_BYTES: Final = 255
# How many connections one process keeps open to the store: the multipart copies run up
# to ``multipartcopymaxconcurrency`` part copies at a time, besides the other requests.
MAX_CONNECTIONS: Final = 128
_NOT_FOUND: Final = frozenset({"NoSuchKey", "NoSuchUpload", "NotFound", "404"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in _NOT_FOUND


def endpoint_url(parameters: S3Parameters) -> str | None:
    """``regionendpoint`` as a URL (a bare host gets the scheme ``secure`` asks for)."""
    endpoint = parameters.regionendpoint.strip()
    if not endpoint:
        return None
    if "://" not in endpoint:
        endpoint = ("https://" if parameters.secure else "http://") + endpoint
    return endpoint


_session: AioSession | None = None


def shared_session() -> AioSession:
    """The process's one botocore session: its loader caches the S3 service model, so that
    :func:`preload` in the parent leaves the model in pages every forked worker shares."""
    global _session
    if _session is None:
        _session = get_session()
    return _session


def preload() -> None:
    """Load the S3 service model and endpoint rules before the workers fork (the botocore
    modules are imported by importing this one): each worker would otherwise parse its own
    copy, some 25 MiB of Python objects each."""
    loader = shared_session().get_component("data_loader")
    for kind in ("service-2", "endpoint-rule-set-1", "paginators-1"):
        loader.load_service_model("s3", kind)
    for name in ("endpoints", "partitions", "sdk-default-configuration"):
        loader.load_data(name)


def open_client(
    parameters: S3Parameters, unsigned_payload: bool = False
) -> AbstractAsyncContextManager[S3Client]:
    """An aiobotocore S3 client for ``parameters`` (enter it to use it); with
    ``unsigned_payload``, one that signs no request body, even over plain HTTP (for parts
    streamed as they arrive, which cannot be hashed before they are sent)."""
    config = AioConfig(
        signature_version="s3v4" if parameters.v4auth else "s3",
        s3={
            "addressing_style": "path" if parameters.path_style else "virtual",
            # Over HTTPS, TLS protects the bytes: no SigV4 hash of every part's payload
            # (a sha256 of each part in the event loop). Over plain HTTP it is kept: it is
            # then the only check that the store got what was sent.
            "payload_signing_enabled": not parameters.secure and not unsigned_payload,
        },
        max_pool_connections=MAX_CONNECTIONS,
        # The digest of every blob is checked by Dockyard itself; CRCs of every part
        # would cost CPU for nothing (and some S3-compatible stores lack them).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=120,
        user_agent_extra=parameters.useragent or None,
    )
    credentials: dict[str, str] = {}
    if parameters.accesskey:
        credentials["aws_access_key_id"] = parameters.accesskey
        credentials["aws_secret_access_key"] = parameters.secretkey
        if parameters.sessiontoken:
            credentials["aws_session_token"] = parameters.sessiontoken
    client: AbstractAsyncContextManager[S3Client] = shared_session().create_client(
        "s3",
        region_name=parameters.region,
        endpoint_url=endpoint_url(parameters),
        use_ssl=parameters.secure,
        verify=False if parameters.skipverify else None,
        config=config,
        **credentials,
    )
    return client


def send_body_as_view(request: Any, **_: Any) -> None:
    """``before-send`` hook: hand aiohttp a request body (a part) as a memoryview, which it
    sends as it is; a ``bytes`` or ``bytearray`` it would first copy whole (it slices the
    body to its length). Signing is done by then. A retry makes a new request from the
    original body; botocore first rewinds the old one, which an in-memory view needs not."""
    if isinstance(request.body, bytes | bytearray):
        request.body = memoryview(request.body)
        request.reset_stream = _nothing_to_rewind


def _nothing_to_rewind() -> None:
    return None


def _object_arguments(parameters: S3Parameters) -> dict[str, str]:
    arguments: dict[str, str] = {"ACL": parameters.objectacl}
    if parameters.storageclass != "NONE":
        arguments["StorageClass"] = parameters.storageclass
    if parameters.encrypt:
        if parameters.keyid:
            arguments["ServerSideEncryption"] = "aws:kms"
            arguments["SSEKMSKeyId"] = parameters.keyid
        else:
            arguments["ServerSideEncryption"] = "AES256"
    return arguments


@dataclass(frozen=True)
class Bucket:
    client: S3Client
    name: str
    #: the key prefix of every path (``rootdirectory`` without its slashes)
    root: str
    #: what every object written gets: ACL, storage class, encryption, content type
    new_object: Mapping[str, str] = field(default_factory=dict)
    #: the client that sends parts as their bytes arrive (unsigned payloads); None: parts
    #: are buffered whole and sent with ``client``
    streaming: S3Client | None = None
    #: how a streamed part's bytes are checked (:mod:`dockyard.storage.s3_checksums`)
    integrity: Integrity = Integrity.TRANSPORT

    @classmethod
    def of(
        cls,
        client: S3Client,
        parameters: S3Parameters,
        streaming: S3Client | None = None,
        integrity: Integrity = Integrity.TRANSPORT,
    ) -> Bucket:
        arguments = {**_object_arguments(parameters), "ContentType": "application/octet-stream"}
        return cls(
            client,
            parameters.bucket,
            parameters.rootdirectory,
            arguments,
            streaming,
            integrity,
        )

    def key(self, path: str) -> str:
        """The key of a checked driver path (``/`` is the prefix of everything)."""
        if path == "/":
            return self.root
        key = f"{self.root}{path}" if self.root else path[1:]
        if len(key) > MAX_KEY_BYTES or max(map(len, path.split("/"))) > MAX_NAME_BYTES:
            raise InvalidPathError(path)
        return key

    def prefix(self, path: str) -> str:
        """The key prefix of everything below the directory ``path``."""
        key = self.key(path)
        return key + "/" if key else ""

    def path(self, key: str) -> str:
        """The driver path of a key below the root."""
        return "/" + key[len(self.root) + 1 :] if self.root else "/" + key


def not_found(path: str, exc: ClientError) -> PathNotFoundError | ClientError:
    """PathNotFoundError for ``path`` when ``exc`` says so; else ``exc`` itself."""
    return PathNotFoundError(path) if is_not_found(exc) else exc
