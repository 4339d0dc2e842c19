"""How the bytes of a streamed part are checked, when no SigV4 payload hash covers them.

A streamed part goes out before its bytes are all known, so its payload cannot be signed.
Over HTTPS, TLS protects it. Over plain HTTP one of two checks stands in for the signature:

* :attr:`Integrity.TRAILER_CRC32`: the body is sent ``aws-chunked`` (one chunk, the part)
  with an ``x-amz-checksum-crc32`` trailer, the CRC32 computed while the bytes go out;
  the store verifies it and refuses the part when it differs (S3's flexible checksums).
  Used only when the store was seen refusing a wrong one
  (:mod:`dockyard.storage.s3_checksum_probe`). CRC32 costs a quarter of MD5's CPU here.
* :attr:`Integrity.ETAG_MD5`: the MD5 of what was sent is compared with the part's ETag
  (S3's, SeaweedFS's, MinIO's ETag of an unencrypted part), for stores that do not verify
  trailers.
"""

from __future__ import annotations

import base64
import enum
import zlib
from typing import Final

#: The trailer's header, as the request's ``X-Amz-Trailer`` names it.
TRAILER_NAME: Final = "x-amz-checksum-crc32"
# The trailer's base64 CRC32 (4 bytes) is always 8 characters.
_TRAILER_LENGTH: Final = len(f"0\r\n{TRAILER_NAME}:AAAAAA==\r\n\r\n")


class Integrity(enum.Enum):
    #: over HTTPS: TLS protects the bytes
    TRANSPORT = "transport"
    #: the part's ETag is compared with the MD5 of what was sent
    ETAG_MD5 = "etag-md5"
    #: the store verifies an ``x-amz-checksum-crc32`` trailer
    TRAILER_CRC32 = "trailer-crc32"


class Crc32:
    """A running CRC32 with the ``update`` of a hashlib object."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)


def chunk_head(size: int) -> bytes:
    """What comes before the part's bytes in its ``aws-chunked`` body: one chunk of them."""
    return f"{size:x}\r\n".encode()


def trailer(crc: int) -> bytes:
    """What comes after the part's bytes: the chunk's end, the last (empty) chunk and the
    checksum trailer."""
    value = base64.b64encode(crc.to_bytes(4, "big")).decode()
    return f"\r\n0\r\n{TRAILER_NAME}:{value}\r\n\r\n".encode()


def encoded_length(size: int) -> int:
    """The length on the wire of a part of ``size`` bytes sent with a trailer."""
    return len(chunk_head(size)) + size + 2 + _TRAILER_LENGTH
