"""Parsing and validation of manifests: Docker schema2 and lists, OCI manifests and indexes.

:func:`parse_manifest` takes the raw body a client pushed and the Content-Type it declared, and
returns what the registry must know to store it: its media type, the blobs and child
manifests it references, its subject and artifact type. Every problem raises
MANIFEST_INVALID (or DIGEST_INVALID for a malformed descriptor digest) with a precise message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dockyard.oci import errors, mediatypes
from dockyard.oci.digest import Digest

DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    platform: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ParsedManifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: Mapping[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEXES

    def blob_references(self) -> list[Descriptor]:
        """Blobs the repository must hold for this manifest (foreign layers excluded)."""
        found = [self.config] if self.config is not None else []
        found.extend(d for d in self.layers if not mediatypes.is_foreign_layer(d.media_type))
        return found

    def referrer_artifact_type(self) -> str | None:
        """The artifactType a referrers listing shows: the field, else the config's type."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and self.media_type == mediatypes.OCI_MANIFEST:
            return self.config.media_type
        return None


@dataclass(frozen=True)
class UrlPolicy:
    """Which foreign-layer URLs a manifest may carry (``validation.manifests.urls``)."""

    # None: any http(s) URL; a tuple: only URLs that one of its patterns matches.
    allow: tuple[re.Pattern[str], ...] | None = None
    deny: tuple[re.Pattern[str], ...] = ()

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.fragment or not parts.netloc:
            return False
        if self.allow is not None and not any(p.search(url) for p in self.allow):
            return False
        return not any(p.search(url) for p in self.deny)


def _invalid(message: str, **detail: Any) -> errors.RegistryError:
    return errors.RegistryError(errors.MANIFEST_INVALID, message, detail=detail or None)


def _media_type_of(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid(f"{where} must be an object of strings")
    return dict(value)


def parse_descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type):
        raise _invalid(f"{where}.mediaType is missing or malformed")
    digest_text = value.get("digest")
    if not isinstance(digest_text, str):
        raise _invalid(f"{where}.digest is missing")
    try:
        digest = Digest.parse(digest_text)
    except errors.RegistryError as exc:
        raise _invalid(f"{where}.digest: {exc.message}", digest=digest_text[:200]) from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid(f"{where}.artifactType must be a string")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _invalid(f"{where}.urls must be a list of strings")
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _invalid(f"{where}.platform must be an object")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=artifact_type,
        annotations=_string_map(value.get("annotations"), f"{where}.annotations"),
        urls=tuple(urls),
        platform=platform,
    )


def _descriptor_list(body: dict[str, Any], key: str, required: bool) -> tuple[Descriptor, ...]:
    value = body.get(key)
    if value is None:
        if required:
            raise _invalid(f"{key} is required")
        return ()
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list")
    return tuple(parse_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value))


def _resolve_media_type(body: dict[str, Any], content_type: str | None) -> str:
    declared = _media_type_of(content_type)
    inner = body.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise _invalid("mediaType must be a string")
    if declared in mediatypes.SCHEMA1 - {"application/json"} or body.get("schemaVersion") == 1:
        raise _invalid(
            "Docker schema1 manifests are not supported: push with a current client "
            "(schema2 or OCI)"
        )
    if inner and declared and declared != "application/json" and inner != declared:
        raise _invalid(
            f"manifest mediaType {inner!r} does not match Content-Type {declared!r}",
            mediaType=inner,
            contentType=declared,
        )
    media_type = inner or (declared if declared != "application/json" else None)
    if media_type is None:
        # OCI allows omitting mediaType; infer the kind from the shape.
        media_type = mediatypes.OCI_INDEX if "manifests" in body else mediatypes.OCI_MANIFEST
    if media_type not in mediatypes.MANIFESTS:
        raise _invalid(f"unsupported manifest media type {media_type!r}", mediaType=media_type)
    return media_type


def is_schema1(payload: bytes) -> bool:
    """Whether ``payload`` is a Docker schema1 manifest (``schemaVersion`` 1), which
    registry:2 may hold but Dockyard never stores."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, RecursionError, ValueError):
        return False
    return isinstance(body, dict) and body.get("schemaVersion") == 1


def parse_manifest(
    payload: bytes,
    content_type: str | None,
    max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
    url_allowed: Callable[[str], bool] | None = None,
) -> ParsedManifest:
    """Validate a pushed manifest body; ``url_allowed`` judges foreign-layer URLs."""
    if len(payload) > max_bytes:
        raise _invalid(
            f"manifest is {len(payload)} bytes; the limit is {max_bytes}",
            size=len(payload),
            limit=max_bytes,
        )
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(f"manifest is not valid JSON: {exc}") from None
    except (RecursionError, ValueError):
        # Hostile shapes: nesting deeper than the parser's stack, integers of thousands of
        # digits. Valid manifests never come close.
        raise _invalid("manifest JSON is nested too deeply or has an oversized number") from None
    if not isinstance(body, dict):
        raise _invalid("manifest must be a JSON object")
    media_type = _resolve_media_type(body, content_type)
    if body.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    artifact_type = body.get("artifactType")
    if artifact_type is not None and (
        not isinstance(artifact_type, str) or not _MEDIA_TYPE.fullmatch(artifact_type)
    ):
        raise _invalid("artifactType must be a media type")
    subject = body.get("subject")
    parsed_subject = parse_descriptor(subject, "subject") if subject is not None else None
    annotations = _string_map(body.get("annotations"), "annotations")

    if media_type in mediatypes.INDEXES:
        if "config" in body or "layers" in body:
            raise _invalid("an index must not have config or layers")
        children = _descriptor_list(body, "manifests", required=True)
        return ParsedManifest(
            media_type, None, (), children, parsed_subject, artifact_type, annotations
        )

    if "manifests" in body:
        raise _invalid("an image manifest must not have manifests")
    if body.get("config") is None:
        raise _invalid("config is required")
    config = parse_descriptor(body["config"], "config")
    layers = _descriptor_list(body, "layers", required=media_type == mediatypes.DOCKER_MANIFEST)
    for i, layer in enumerate(layers):
        if mediatypes.is_foreign_layer(layer.media_type) and not layer.urls:
            # Its bytes are not in the registry, so they must be somewhere: registry:2 too
            # refuses a foreign layer without URLs.
            raise _invalid(f"layers[{i}] is a foreign layer without urls")
        for url in layer.urls:
            if not (url_allowed or UrlPolicy().allows)(url):
                raise _invalid(f"layers[{i}] url {url!r} is not allowed by this registry")
    return ParsedManifest(
        media_type, config, layers, (), parsed_subject, artifact_type, annotations
    )
