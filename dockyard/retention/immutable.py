"""Immutable tags: wrappers of the manifest and tag use cases that refuse to move or delete
a tag an ``immutabletags`` rule protects, answering 403 ``DENIED`` with the rule's name.

A push to a protected tag stores the manifest by digest through the inner use case, then
tags it in one transaction that refuses when the tag already points elsewhere; pushing
the digest the tag already has succeeds and changes nothing. A push that would be refused
is refused before anything is stored, save when two pushes race for a new tag: the loser
leaves its manifest untagged, for retention or collection to remove.
"""

from __future__ import annotations

from dockyard.metadata.manifest_queries import KeptTagError
from dockyard.metadata.records import ManifestRecord
from dockyard.metadata.store import MetadataStore
from dockyard.oci import errors
from dockyard.oci.digest import Digest, is_digest
from dockyard.oci.names import validate_tag
from dockyard.oci.pagination import Page
from dockyard.registry.listing import Listing
from dockyard.registry.manifests import PushedManifest
from dockyard.registry.protocols import Manifests, Tags, UseCases
from dockyard.retention.policy import ImmutableRule, ImmutableTags


def refusal(rule: ImmutableRule, name: str, tag: str, action: str) -> errors.RegistryError:
    return errors.RegistryError(
        errors.DENIED,
        f"tag {tag} of {name} is immutable (rule {rule.label}): it cannot be {action}",
        detail={"name": name, "tag": tag, "rule": rule.label},
    )


class ImmutableManifests:
    """The manifest use case, with protected tags neither moved nor deleted."""

    def __init__(self, inner: Manifests, metadata: MetadataStore, rules: ImmutableTags) -> None:
        self._inner = inner
        self._metadata = metadata
        self._rules = rules

    async def push(
        self, name: str, reference: str, payload: bytes, content_type: str | None
    ) -> PushedManifest:
        rule = None if is_digest(reference) else self._rules.protecting(name, reference)
        if rule is None:
            return await self._inner.push(name, reference, payload, content_type)
        tag = validate_tag(reference)
        digest = str(Digest.of(payload))
        current = await self._metadata.get_manifest(name, tag, by_digest=False)
        if current is not None and current.digest != digest:
            raise refusal(rule, name, tag, f"moved from {current.digest} to {digest}")
        pushed = await self._inner.push(name, digest, payload, content_type)
        moved = await self._metadata.tag_unless_moved(name, tag, str(pushed.digest))
        if moved is not None:
            raise refusal(rule, name, tag, f"moved from {moved} to {digest}")
        return pushed

    async def get(
        self, name: str, reference: str, accept: set[str] | None, method: str = "GET"
    ) -> ManifestRecord:
        return await self._inner.get(name, reference, accept, method)

    async def delete(self, name: str, digest: str) -> None:
        """Deleting a manifest deletes its tags: refused while a protected tag is one,
        checked in the deleting transaction (a push cannot slip a protected tag in)."""
        if not self._rules.any_for(name):
            await self._inner.delete(name, digest)
            return
        canonical = str(Digest.parse(digest))

        def protected(tag: str) -> bool:
            return self._rules.protecting(name, tag) is not None

        try:
            deleted = await self._metadata.delete_manifest(name, canonical, keep_tag=protected)
        except KeptTagError as exc:
            (tag,) = exc.args
            rule = self._rules.protecting(name, tag)
            assert rule is not None
            raise refusal(rule, name, tag, f"deleted with manifest {canonical}") from None
        if not deleted:
            raise errors.RegistryError(
                errors.MANIFEST_UNKNOWN, detail={"name": name, "reference": digest}
            )


class ImmutableTagDeletes:
    """The tag use case, with protected tags not deleted."""

    def __init__(self, inner: Tags, metadata: MetadataStore, rules: ImmutableTags) -> None:
        self._inner = inner
        self._metadata = metadata
        self._rules = rules

    async def list(self, name: str, page: Page) -> Listing:
        return await self._inner.list(name, page)

    async def delete(self, name: str, tag: str) -> None:
        rule = self._rules.protecting(name, tag)
        if rule is None:
            await self._inner.delete(name, tag)
            return
        if await self._metadata.get_manifest(name, validate_tag(tag), by_digest=False) is None:
            raise errors.RegistryError(
                errors.MANIFEST_UNKNOWN, detail={"name": name, "reference": tag}
            )
        raise refusal(rule, name, tag, "deleted")


def with_immutable_tags(
    use_cases: UseCases, metadata: MetadataStore, rules: ImmutableTags
) -> UseCases:
    """``use_cases`` with the manifest and tag use cases wrapped (unchanged without rules).
    Wrap the plain use cases first, so that wrappers added around them (notifications,
    metrics) see a refused push as the failure it is."""
    if not rules.rules:
        return use_cases
    return use_cases.wrapped(
        manifests=ImmutableManifests(use_cases.manifests, metadata, rules),
        tags=ImmutableTagDeletes(use_cases.tags, metadata, rules),
    )
