"""What one rule removes from a repository snapshot (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.metadata.retention_queries import ManifestRow, RepositorySnapshot, TagRow
from dockyard.retention.plan import plan_repository
from dockyard.retention.policy import ImmutableRule, ImmutableTags, RetentionPolicy, RetentionRule

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)
NONE = ImmutableTags()


def snapshot(
    tags: dict[str, tuple[int, int]],
    manifests: dict[int, int] | None = None,
    children: tuple[tuple[int, str], ...] = (),
    subjects: dict[int, str] | None = None,
) -> RepositorySnapshot:
    """``tags``: name -> (manifest id, pushed days ago); ``manifests``: id -> wanted days
    ago (default: every tagged manifest, 100 days ago); digests are ``d<id>``."""
    ages = manifests or {mid: 100 for mid, _ in tags.values()}
    return RepositorySnapshot(
        "team/app",
        tuple(TagRow(n, mid, NOW - days * DAY) for n, (mid, days) in tags.items()),
        tuple(
            ManifestRow(mid, f"d{mid}", NOW - days * DAY, (subjects or {}).get(mid))
            for mid, days in ages.items()
        ),
        children,
    )


def removed(
    plan_input: RepositorySnapshot, rule: RetentionRule, immutable: ImmutableTags = NONE
) -> tuple[list[str], list[str]]:
    plan = plan_repository(plan_input, rule, immutable, NOW)
    return [t.name for t in plan.tags], [m.digest for m in plan.manifests]


def rule(**given: object) -> RetentionRule:
    return RetentionRule(label="r", repositories=("team/**",), **given)  # type: ignore[arg-type]


def test_keep_last_counts_the_newest_removable_tags() -> None:
    repo = snapshot({"a": (1, 5), "b": (2, 4), "c": (3, 3), "latest": (3, 1), "v1": (1, 9)})
    assert removed(repo, rule(keep_last=2, keep_tags=("v[0-9]+", "latest"))) == (["a"], [])


def test_older_than_spares_recent_tags_and_keep_last_a_minimum() -> None:
    repo = snapshot({"old1": (1, 40), "old2": (2, 35), "new": (3, 2)})
    assert removed(repo, rule(tags_older_than=30 * DAY)) == (["old1", "old2"], [])
    assert removed(repo, rule(tags_older_than=30 * DAY, keep_last=2)) == (["old1"], [])


def test_a_rule_without_keep_last_or_older_than_removes_no_tag() -> None:
    repo = snapshot({"a": (1, 400)})
    assert removed(repo, rule(keep_tags=("x",))) == ([], [])


def test_immutable_tags_are_never_removed() -> None:
    repo = snapshot({"v1.0": (1, 90), "dev": (2, 90)})
    frozen = ImmutableTags((ImmutableRule("releases", ("**",), (r"v.*",)),))
    assert removed(repo, rule(keep_last=0), frozen) == (["dev"], [])


def test_untagged_manifests_go_once_nothing_keeps_them() -> None:
    # 1 tagged; 2 untagged and old; 3 untagged but recent; 4 an old index whose child 5 is
    # old too; 6 an old referrer of the tagged 1; 7 an old referrer of the doomed 2.
    repo = snapshot(
        {"keep": (1, 1)},
        manifests={1: 100, 2: 100, 3: 1, 4: 100, 5: 100, 6: 100, 7: 100},
        children=((4, "d5"),),
        subjects={6: "d1", 7: "d2"},
    )
    tags, manifests = removed(repo, rule(untagged_older_than=7 * DAY))
    assert tags == []
    assert sorted(manifests) == ["d2", "d4", "d5", "d7"]
    assert manifests.index("d4") < manifests.index("d5")  # the index before its child


def test_children_of_a_tagged_index_stay() -> None:
    repo = snapshot(
        {"multi": (1, 50)}, manifests={1: 50, 2: 50, 3: 50}, children=((1, "d2"), (1, "d3"))
    )
    assert removed(repo, rule(untagged_older_than=DAY)) == ([], [])


def test_manifests_untagged_by_the_same_run_go_too() -> None:
    repo = snapshot({"old": (1, 60), "new": (2, 1)}, manifests={1: 60, 2: 1})
    assert removed(repo, rule(keep_last=1, untagged_older_than=30 * DAY)) == (["old"], ["d1"])


def test_the_first_matching_rule_applies() -> None:
    first = RetentionRule("first", ("team/app",), keep_last=1)
    second = RetentionRule("second", ("team/**",), keep_last=5)
    policy = RetentionPolicy((first, second))
    assert policy.rule_for("team/app") is first
    assert policy.rule_for("team/other") is second
    assert policy.rule_for("else/app") is None
