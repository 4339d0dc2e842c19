"""The S3 driver's ``storage.s3`` section, with Distribution's keys and defaults, and its
registration. The driver itself (:mod:`dockyard.storage.s3_driver`) imports aiobotocore, so
it is imported only when an S3 driver is made, not when a configuration is checked.

Distribution's defaults: ``secure`` and ``v4auth`` on, ``chunksize`` 10 MiB (5 MiB to
5 GiB, S3's part limits), multipart copies of 32 MiB parts, 100 at a time, above 32 MiB,
``storageclass`` ``STANDARD``, ``objectacl`` ``private``. Empty ``accesskey`` and
``secretkey`` leave the credentials to the usual AWS chain (environment, shared files,
instance roles), as Distribution does.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from dockyard.storage.driver import StorageDriver
from dockyard.storage.factory import DriverOptions, DriverParameters, register_driver

MiB: Final = 1024 * 1024
MIN_PART: Final = 5 * MiB  # S3: every part but the last is at least 5 MiB
MAX_PART: Final = 5 * 1024 * MiB  # S3: a part, or a single copy, is at most 5 GiB

StorageClass = Literal[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "OUTPOSTS",
    "NONE",
]
ObjectAcl = Literal[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
]


class S3Parameters(DriverParameters):
    """``storage.s3``."""

    accesskey: str = ""
    secretkey: str = Field(default="", repr=False)
    sessiontoken: str = Field(default="", repr=False)
    region: str = ""
    regionendpoint: str = ""
    #: None: path-style addressing when ``regionendpoint`` is set (what S3-compatible
    #: stores need), virtual-hosted otherwise.
    forcepathstyle: bool | None = None
    bucket: str = ""
    rootdirectory: str = ""
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    chunksize: int = Field(default=10 * MiB, ge=MIN_PART, le=MAX_PART)
    multipartcopychunksize: int = Field(default=32 * MiB, ge=MIN_PART, le=MAX_PART)
    multipartcopymaxconcurrency: int = Field(default=100, ge=1, le=10_000)
    multipartcopythresholdsize: int = Field(default=32 * MiB, ge=0, le=MAX_PART)
    encrypt: bool = False
    keyid: str = ""
    storageclass: StorageClass = "STANDARD"
    objectacl: ObjectAcl = "private"
    useragent: str = ""
    #: Dockyard's own: send a request that declares its length as parts while its bytes
    #: arrive (unsigned payloads, checked by their ETag over plain HTTP); off: every part
    #: gathers whole and is signed, as for a body of unknown length
    streamparts: bool = True
    #: Dockyard's own: a chunked upload's final ``PUT`` completes it where it is and answers
    #: at once; the copy to the blob's Distribution path follows in the background
    #: (docs/storage.md, "Deferred copies"). Off (the default): the copy is made inside
    #: the request; on a store that copies on the registry's own machines, a pull right
    #: after a push shares the store with the copies (podman's first pull 0.53x registry:2)
    deferredcopy: bool = False

    @field_validator("region", "bucket")
    @classmethod
    def _required(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("required (as in Distribution)")
        return value.strip()

    @field_validator("storageclass", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("rootdirectory")
    @classmethod
    def _root(cls, value: str) -> str:
        root = value.strip("/")
        if any(part in ("", ".", "..") for part in root.split("/")) and root:
            raise ValueError(f"not a clean key prefix: {value!r}")
        return root

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_required(cls, data: object) -> object:
        # Missing required keys get an empty value so that the validators name them.
        if isinstance(data, dict):
            return {"region": "", "bucket": "", **data}
        return data

    @field_serializer("secretkey", "sessiontoken")
    def _masked(self, value: str) -> str:
        return "***" if value else ""

    def preload(self) -> None:
        from dockyard.storage import s3_bucket

        s3_bucket.preload()

    @property
    def path_style(self) -> bool:
        if self.forcepathstyle is not None:
            return self.forcepathstyle
        return bool(self.regionendpoint)


@register_driver("s3", S3Parameters)
def _create(parameters: S3Parameters, options: DriverOptions) -> StorageDriver:
    from dockyard.storage.s3_driver import S3Driver

    return S3Driver(parameters, redirect_expiry=options.redirect_expiry)
