"""Repository names and tags, validated against the distribution spec's grammar.

A name is path components separated by ``/``; each component matches
``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*``. Tags match ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``.
The grammar excludes ``.``, ``..``, empty components and leading slashes, so a valid name
can always be joined under a storage root without escaping it.
"""

from __future__ import annotations

import re

from dockyard.oci import errors

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# Distribution limits the full name (with the registry host) to 255 characters.
MAX_NAME_LENGTH = 255
# What joins the tags in a tag-list body (``"tags": ["a", "b"]``). The tag grammar holds
# no '"' (nor anything JSON escapes), so it never occurs inside a tag, and tags joined by
# it are the array's contents without their outer quotes.
TAG_SEPARATOR = '", "'


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NAME_INVALID."""
    if len(name) > MAX_NAME_LENGTH:
        raise errors.RegistryError(
            errors.NAME_INVALID,
            f"repository name must not be longer than {MAX_NAME_LENGTH} characters",
            detail={"name": name[:MAX_NAME_LENGTH] + "..."},
        )
    if not _NAME.fullmatch(name):
        raise errors.RegistryError(
            errors.NAME_INVALID,
            "repository name must be lowercase path components of [a-z0-9] joined by "
            "'.', '_', '__' or '-', separated by '/'",
            detail={"name": name},
        )
    return name


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def validate_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise errors.RegistryError(
            errors.TAG_INVALID,
            "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
            detail={"tag": tag[:200]},
        )
    return tag
