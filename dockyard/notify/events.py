"""Distribution's notification events, as registry:2 (Distribution 2.8.2) writes them.

Pure functions: an event is a dict with Distribution's keys in its order (``id``,
``timestamp``, ``action``, ``target``, ``request``, ``actor``, ``source``), empty fields left
out as Go's ``omitempty`` leaves them out; ``actor`` is ``{}`` for an anonymous caller. Blob
events carry the media type ``application/octet-stream``, as registry:2's do; delete
events carry no media type. One event goes in each envelope, POSTed with
:data:`EVENTS_MEDIA_TYPE` and indented with three spaces, as registry:2 sends it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from dockyard.oci import errors
from dockyard.oci.manifest import parse_manifest
from dockyard.registry.requests import RequestDetails

EVENTS_MEDIA_TYPE: Final = "application/vnd.docker.distribution.events.v1+json"
BLOB_MEDIA_TYPE: Final = "application/octet-stream"
# Large enough for any stored manifest: it was validated when pushed.
_ANY_SIZE: Final = 1 << 40


@dataclass(frozen=True)
class Source:
    """``source``: the registry instance that wrote the event (``addr`` is its host name
    and port; ``instanceID`` is new for each process, as for each registry:2 process)."""

    addr: str
    instance_id: str


def go_timestamp(moment: datetime) -> str:
    """A time as Go's ``time.Time`` marshals it (RFC 3339, fraction without trailing zeros)."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def event(
    action: str,
    target: dict[str, Any],
    request: RequestDetails | None,
    source: Source,
    actor: str | None = None,
) -> dict[str, Any]:
    """An event; ``actor`` (a job such as garbage collection) stands in for the
    request's caller when there is no request."""
    request_record: dict[str, Any] = {}
    if request is not None:
        request_record = {
            "id": request.id,
            "addr": request.addr,
            "host": request.host,
            "method": request.method,
            "useragent": request.useragent,
        }
        actor = request.actor
    return {
        "id": str(uuid.uuid4()),
        "timestamp": go_timestamp(datetime.now(UTC)),
        "action": action,
        "target": target,
        "request": {k: v for k, v in request_record.items() if v},
        "actor": {"name": actor} if actor else {},
        "source": {"addr": source.addr, "instanceID": source.instance_id},
    }


def _url(base_url: str | None, repository: str, kind: str, digest: str) -> dict[str, str]:
    return {"url": f"{base_url}/v2/{repository}/{kind}/{digest}"} if base_url is not None else {}


def blob_target(
    repository: str,
    digest: str,
    size: int,
    base_url: str | None,
    from_repository: str | None = None,
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "mediaType": BLOB_MEDIA_TYPE,
        "size": size,
        "digest": digest,
        "length": size,
        "repository": repository,
    }
    if from_repository:
        target["fromRepository"] = from_repository
    target.update(_url(base_url, repository, "blobs", digest))
    return target


def manifest_target(
    repository: str,
    digest: str,
    media_type: str,
    payload: bytes,
    tag: str | None,
    base_url: str | None,
    include_references: bool,
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "mediaType": media_type,
        "size": len(payload),
        "digest": digest,
        "length": len(payload),
        "repository": repository,
        **_url(base_url, repository, "manifests", digest),
    }
    if tag:
        target["tag"] = tag
    if include_references:
        found = references(media_type, payload)
        if found:
            target["references"] = found
    return target


def deleted_target(repository: str, *, digest: str = "", tag: str = "") -> dict[str, Any]:
    """The target of a delete: the digest of a manifest or blob, or a tag."""
    target = {"digest": digest, "repository": repository, "tag": tag}
    return {key: value for key, value in target.items() if value}


def references(media_type: str, payload: bytes) -> list[dict[str, Any]]:
    """What a manifest references, as Distribution lists it: an image's config and
    layers, an index's manifests (descriptors without platform)."""
    try:
        parsed = parse_manifest(payload, media_type, _ANY_SIZE, lambda _url: True)
    except errors.RegistryError:
        return []
    found = []
    for descriptor in [
        *([parsed.config] if parsed.config else []),
        *parsed.layers,
        *parsed.manifests,
    ]:
        item: dict[str, Any] = {
            "mediaType": descriptor.media_type,
            "size": descriptor.size,
            "digest": str(descriptor.digest),
        }
        if descriptor.urls:
            item["urls"] = list(descriptor.urls)
        if descriptor.annotations:
            item["annotations"] = dict(descriptor.annotations)
        found.append(item)
    return found


def encoded(event: dict[str, Any]) -> str:
    """An event as it is kept in the outbox."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def envelope(payload: str) -> bytes:
    """The body POSTed for one stored event."""
    body = {"events": [json.loads(payload)]}
    return json.dumps(body, ensure_ascii=False, indent=3).encode()
