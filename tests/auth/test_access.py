"""Scopes and access sets: the Docker token specification's vocabulary."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dockyard.auth.access import (
    CATALOG_ACCESS,
    Access,
    AccessSet,
    Scope,
    parse_scope,
    parse_scopes,
    scopes_of,
)


def test_parse_scope() -> None:
    assert parse_scope("repository:team/app:pull,push") == Scope(
        "repository", "team/app", ("pull", "push")
    )
    assert parse_scope("registry:catalog:*") == Scope("registry", "catalog", ("*",))
    # a name with a port keeps its colon; the resource class is dropped
    assert parse_scope("repository:localhost:5000/app:pull") == Scope(
        "repository", "localhost:5000/app", ("pull",)
    )
    assert parse_scope("repository(plugin):team/app:pull") == Scope(
        "repository", "team/app", ("pull",)
    )
    assert parse_scope("repository:a:pull,pull,,push") == Scope("repository", "a", ("pull", "push"))
    for bad in ("", "repository", "repository:app", ":app:pull", "repository::pull", "r:a:"):
        assert parse_scope(bad) is None, bad
    assert parse_scope('repository:a"b:pull') is None


def test_parse_scopes_splits_on_spaces() -> None:
    scopes = parse_scopes(["repository:a:pull repository:b:push", "junk", "registry:catalog:*"])
    assert [str(s) for s in scopes] == [
        "repository:a:pull",
        "repository:b:push",
        "registry:catalog:*",
    ]


def test_scopes_of_groups_actions() -> None:
    required = [
        Access("repository", "a", "pull"),
        Access("repository", "b", "pull"),
        Access("repository", "a", "push"),
        Access("repository", "a", "pull"),
    ]
    assert [str(s) for s in scopes_of(required)] == ["repository:a:pull,push", "repository:b:pull"]


def test_access_set() -> None:
    granted = AccessSet.from_claim(
        [
            {"type": "repository", "name": "a", "actions": ["pull"]},
            {"type": "repository", "name": "a", "actions": ["push"]},
            {"type": "repository", "name": "b", "actions": ["*"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
            {"type": "repository", "name": "c", "actions": "pull"},  # malformed: nothing
            "junk",
        ]
    )
    assert granted.allows(Access("repository", "a", "pull"))
    assert granted.allows(Access("repository", "a", "push"))
    assert not granted.allows(Access("repository", "a", "delete"))
    assert granted.allows(Access("repository", "b", "delete"))
    assert granted.allows(CATALOG_ACCESS)
    assert not granted.allows(Access("repository", "c", "pull"))
    assert not granted.allows(Access("repository", "A", "pull"))
    assert not AccessSet.from_claim(None).allows(Access("repository", "a", "pull"))


@given(st.text(max_size=60))
def test_parse_scope_never_raises(text: str) -> None:
    scope = parse_scope(text)
    if scope is not None:
        assert parse_scope(str(scope)) == scope
