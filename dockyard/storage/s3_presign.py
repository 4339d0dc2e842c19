"""Presigned ``GET``/``HEAD`` URLs of the bucket's objects, signed here (SigV4, query form).

botocore's ``generate_presigned_url`` spends about 0.8 ms of CPU per URL (endpoint rules,
event hooks, parameter checks) for a handful of HMACs; every redirected blob read pays it.
This signer asks botocore once for a URL of a probe key, keeps what the URL's shape says
(scheme, host, the path before the key, the signing region), and signs each URL itself in
some 20 microseconds: the same URL botocore would give, byte for byte (a test compares
them). Where the probe's URL has a shape this signer does not know (SigV2, other query
parameters), :meth:`Presigner.of` gives None and botocore signs every URL, as before.

Credentials are the client's own object, frozen for each URL (refreshable ones refresh
there). botocore hands it out only through a private method: where that is gone, botocore
signs every URL again.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote, urlsplit

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_PROBE: Final = "dockyard-presign-probe"
_ALGORITHM: Final = "AWS4-HMAC-SHA256"
# The query parameters of botocore's presigned S3 URLs, in its order; anything else in the
# probe's URL means a shape this signer does not make.
_SIGNED: Final = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires")
_KNOWN: Final = frozenset(
    {*_SIGNED, "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature"}
)


def _encode(value: str, safe: str = "-_.~") -> str:
    return quote(value, safe=safe)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class _Shape:
    """What the probe URL says about every URL of this bucket."""

    base: str  # scheme://host/path-before-the-key
    host: str  # the Host header that is signed
    key_prefix: str  # the URL path up to the key, as signed
    region: str
    service: str


class Presigner:
    """Signs presigned ``GET``/``HEAD`` URLs for one client's bucket."""

    def __init__(self, credentials: Any, shape: _Shape) -> None:
        self._credentials = credentials
        self._shape = shape
        self._signing_key: tuple[tuple[str, str], bytes] | None = None

    @classmethod
    async def of(cls, client: S3Client, bucket: str) -> Presigner | None:
        """A signer for ``bucket``, or None where botocore's URLs have another shape or
        its credentials are out of reach."""
        fetch = getattr(client, "_get_credentials", None)
        credentials = fetch() if callable(fetch) else None
        if credentials is None or not hasattr(credentials, "get_frozen_credentials"):
            return None
        try:
            probe: str = await client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": _PROBE}, ExpiresIn=60
            )
        except Exception:  # then botocore signs (or fails) each redirect itself
            return None
        parts = urlsplit(probe)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if (
            set(query) - _KNOWN
            or query.get("X-Amz-Algorithm") != _ALGORITHM
            or query.get("X-Amz-SignedHeaders") != "host"
            or not parts.path.endswith("/" + _PROBE)
            or parts.fragment
        ):
            return None
        scope = query.get("X-Amz-Credential", "").split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return None
        prefix = parts.path[: -len(_PROBE)]
        shape = _Shape(
            base=f"{parts.scheme}://{parts.netloc}{prefix}",
            host=parts.netloc,
            key_prefix=prefix,
            region=scope[2],
            service=scope[3],
        )
        return cls(credentials, shape)

    async def url(self, key: str, method: str, expires: int, now: datetime | None = None) -> str:
        """The presigned URL of ``method`` on ``key``, valid ``expires`` seconds from
        ``now`` (the current time)."""
        frozen = await self._credentials.get_frozen_credentials()
        moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = moment[:8]
        shape = self._shape
        scope = f"{day}/{shape.region}/{shape.service}/aws4_request"
        params = [
            ("X-Amz-Algorithm", _ALGORITHM),
            ("X-Amz-Credential", f"{frozen.access_key}/{scope}"),
            ("X-Amz-Date", moment),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if frozen.token:
            params.append(("X-Amz-Security-Token", frozen.token))
        query = "&".join(f"{name}={_encode(value)}" for name, value in params)
        canonical_query = "&".join(f"{name}={_encode(value)}" for name, value in sorted(params))
        encoded_key = _encode(key, safe="/~")
        canonical = "\n".join(
            (
                method,
                shape.key_prefix + encoded_key,
                canonical_query,
                f"host:{shape.host}\n",
                "host",
                "UNSIGNED-PAYLOAD",
            )
        )
        to_sign = "\n".join(
            (_ALGORITHM, moment, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(
            self._key(frozen.secret_key, day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        return f"{shape.base}{encoded_key}?{query}&X-Amz-Signature={signature}"

    def _key(self, secret: str, day: str) -> bytes:
        """The SigV4 signing key of ``day``, derived once a day (or when the secret moves)."""
        if self._signing_key is not None and self._signing_key[0] == (secret, day):
            return self._signing_key[1]
        key = _hmac(("AWS4" + secret).encode(), day)
        for part in (self._shape.region, self._shape.service, "aws4_request"):
            key = _hmac(key, part)
        self._signing_key = ((secret, day), key)
        return key
