"""GCS V4 signed URLs, signed here with a service account's own RSA key: no request to
Google (its signBlob service, a metadata server) is ever made for one.

The steps are Google's "V4 signing process": a canonical request (method, path, sorted
query, the ``host`` header, ``UNSIGNED-PAYLOAD``), a string to sign over its SHA-256, and
an RSA-SHA256 signature in hex appended as ``X-Goog-Signature``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import quote

MAX_EXPIRY = timedelta(days=7)
ALGORITHM = "GOOG4-RSA-SHA256"


def _encode(value: str, safe: str = "~") -> str:
    return quote(value, safe=safe)


def signed_url(
    *,
    method: str,
    bucket: str,
    key: str,
    expiry: timedelta,
    now: datetime,
    client_email: str,
    sign: Callable[[bytes], bytes],
    endpoint: str = "https://storage.googleapis.com",
) -> str:
    """A URL that lets its holder ``method`` the object ``key`` until ``now + expiry``.

    ``endpoint`` is the scheme and host the URL points at (path style: ``/bucket/key``);
    ``sign`` makes an RSA-SHA256 (PKCS#1 v1.5) signature with the account's key.
    """
    if not timedelta(seconds=1) <= expiry <= MAX_EXPIRY:
        raise ValueError(f"a V4 signed URL expires within 1 s and 7 days, not {expiry}")
    scheme, _, host = endpoint.rstrip("/").partition("://")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{now.strftime('%Y%m%d')}/auto/storage/goog4_request"
    path = f"/{bucket}/{_encode(key, safe='/~')}"
    query = {
        "X-Goog-Algorithm": ALGORITHM,
        "X-Goog-Credential": f"{client_email}/{scope}",
        "X-Goog-Date": stamp,
        "X-Goog-Expires": str(int(expiry.total_seconds())),
        "X-Goog-SignedHeaders": "host",
    }
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))
    canonical_request = "\n".join(
        [method, path, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        [ALGORITHM, stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signature = sign(to_sign.encode()).hex()
    return f"{scheme}://{host}{path}?{canonical_query}&X-Goog-Signature={signature}"
