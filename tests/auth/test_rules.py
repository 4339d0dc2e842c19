"""Access rules: globs, users, groups, anonymous, admins, and what a token request gets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.auth.access import CATALOG_ACCESS, Access, Scope, parse_scopes
from dockyard.auth.rules import AccessRules, Rule, RuleError, glob_to_regex


def matches(glob: str, name: str, user: str | None = None) -> bool:
    import re

    return re.fullmatch(glob_to_regex(glob, user), name) is not None


@pytest.mark.parametrize(
    ("glob", "name", "expected"),
    [
        ("team/*", "team/app", True),
        ("team/*", "team/a/b", False),
        ("team/**", "team/a/b", True),
        ("team/**", "team", False),
        ("**", "anything/at/all", True),
        ("*/app", "team/app", True),
        ("*/app", "a/b/app", False),
        ("team/ap?", "team/app", True),
        ("team/ap?", "team/ap/", False),
        ("team.x/*", "teamzx/app", False),  # a dot is a dot
        ("library/busybox", "library/busybox", True),
        ("library/busybox", "library/busybox2", False),
    ],
)
def test_globs(glob: str, name: str, expected: bool) -> None:
    assert matches(glob, name) is expected


def test_user_placeholder() -> None:
    assert matches("users/${user}/**", "users/alice/app", "alice")
    assert not matches("users/${user}/**", "users/bob/app", "alice")
    assert not matches("users/${user}/**", "users/alice/app", None)
    assert not matches("users/${user}/**", "users/a/app", "a/b")  # no escaping a component
    assert not matches("users/${user}/**", "users/ax/app", "a.")  # regex characters are literal


@given(st.text(max_size=20), st.text(alphabet="abc/.-_", max_size=20))
def test_globs_without_wildcards_match_only_themselves(glob: str, name: str) -> None:
    if not any(c in glob for c in "*?$"):
        assert matches(glob, name) is (glob == name)


RULES = AccessRules(
    [
        Rule.build(["public/**"], ["pull"], anonymous=True),
        Rule.build(["public/**"], ["pull", "push"], groups=["maintainers"]),
        Rule.build(["team/**"], ["pull", "push"], groups=["developers"]),
        Rule.build(["team/releases/*"], ["pull"], users=["*"]),
        Rule.build(["users/${user}/**"], ["*"], users=["*"]),
        Rule.build(["ci/**"], ["push"], users=["ci-bot"]),
    ],
    groups={"developers": ["alice", "bob"], "maintainers": ["carol"], "ops": ["root2"]},
    admin_users=["root"],
    admin_groups=["ops"],
)


@pytest.mark.parametrize(
    ("user", "repository", "expected"),
    [
        (None, "public/tools", {"pull"}),
        (None, "team/app", set()),
        (None, "users/alice/x", set()),
        ("alice", "public/tools", {"pull"}),  # a login does not take anonymous pull away
        ("carol", "public/tools", {"pull", "push"}),
        ("alice", "team/app", {"pull", "push"}),
        ("dave", "team/app", set()),
        ("dave", "team/releases/v1", {"pull"}),
        ("alice", "users/alice/app", {"pull", "push", "delete"}),
        ("alice", "users/bob/app", set()),
        ("ci-bot", "ci/build", {"push"}),
        ("root", "anything/here", {"pull", "push", "delete"}),
        ("root2", "anything/here", {"pull", "push", "delete"}),
        ("alice", "Not/Valid", set()),
    ],
)
def test_what_each_caller_may_do(user: str | None, repository: str, expected: set[str]) -> None:
    assert RULES.actions(user, repository) == expected


def test_grant_is_what_was_asked_and_allowed() -> None:
    requested = parse_scopes(
        [
            "repository:team/app:pull,push,delete",
            "repository:users/alice/x:*",
            "repository:secret/thing:pull",
            "registry:catalog:*",
            "plugin:whatever:pull",
        ]
    )
    assert RULES.grant("alice", requested) == [
        Scope("repository", "team/app", ("pull", "push")),
        Scope("repository", "users/alice/x", ("pull", "push", "delete")),
        Scope("registry", "catalog", ("*",)),
    ]
    # anonymous: only what anonymous rules allow; the catalog because some rule is anonymous
    assert RULES.grant(
        None, parse_scopes(["repository:public/a:pull,push", "registry:catalog:*"])
    ) == [
        Scope("repository", "public/a", ("pull",)),
        Scope("registry", "catalog", ("*",)),
    ]
    assert AccessRules([]).grant(None, parse_scopes(["registry:catalog:*"])) == []


def test_permits() -> None:
    assert RULES.permits("alice", Access("repository", "team/app", "push"))
    assert not RULES.permits("alice", Access("repository", "team/app", "delete"))
    assert not RULES.permits("alice", Access("repository", "team/app", "*"))
    assert RULES.permits("root", Access("repository", "x", "*"))
    assert RULES.permits("alice", CATALOG_ACCESS)
    assert not RULES.is_admin(None) and RULES.is_admin("root2")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repositories": [], "actions": ["pull"], "users": ["a"]}, "at least one repository"),
        ({"repositories": ["x"], "actions": [], "users": ["a"]}, "at least one action"),
        ({"repositories": ["x"], "actions": ["pull"]}, "must name users, groups or anonymous"),
        ({"repositories": ["x"], "actions": ["push"], "anonymous": True}, "only be given pull"),
        ({"repositories": ["x"], "actions": ["fly"], "users": ["a"]}, "unknown action"),
    ],
)
def test_bad_rules(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        Rule.build(**kwargs)  # type: ignore[arg-type]


def test_unknown_groups_are_refused() -> None:
    with pytest.raises(RuleError, match="unknown group 'devs'"):
        AccessRules([Rule.build(["x"], ["pull"], groups=["devs"])], groups={})
    with pytest.raises(RuleError, match="unknown admin group"):
        AccessRules([], groups={}, admin_groups=["ops"])
