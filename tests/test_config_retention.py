"""The ``retention`` and ``immutabletags`` sections: what they load into, and the errors
a mistyped rule gets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dockyard.config.retention import retention_policy
from tests.test_config import config_error, load, rendered_and_loaded

BASE = "version: 0.1\nstorage:\n  inmemory:\n"
RULES = (
    BASE
    + "retention:\n"
    + "  rules:\n"
    + "    - name: ci\n"
    + "      repositories: ['ci/**']\n"
    + "      keeplast: 3\n"
    + "      keeptags: ['v[0-9]+', latest]\n"
    + "      olderthan: 720h\n"
    + "      untaggedolderthan: 24h\n"
    + "    - repositories: ['**']\n"
    + "      untaggedolderthan: 168h\n"
    + "immutabletags:\n"
    + "  rules:\n"
    + "    - repositories: ['prod/*']\n"
    + "      tags: ['v.*']\n"
)


def test_rules_load_into_a_policy(tmp_path: Path) -> None:
    loaded = load(tmp_path, RULES)
    assert loaded.warnings == []
    config = loaded.config
    policy = retention_policy(config.retention, config.immutabletags)
    ci = policy.rule_for("ci/app")
    assert ci is not None and ci.label == "ci"
    assert (ci.keep_last, ci.tags_older_than) == (3, timedelta(hours=720))
    assert ci.keeps_by_pattern("v12") and ci.keeps_by_pattern("latest")
    assert not ci.keeps_by_pattern("v12-rc") and not ci.keeps_by_pattern("latest2")
    other = policy.rule_for("team/app")
    assert other is not None and other.label == "retention.rules[1]"
    assert not other.removes_tags
    protecting = policy.immutable.protecting("prod/app", "v1")
    assert protecting is not None and protecting.label == "immutabletags.rules[0]"
    assert policy.immutable.protecting("prod/a/b", "v1") is None
    rendered_and_loaded(tmp_path, config)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("repositories: ['ci/**']\n      keeptags: ['v[']", "is not a regular expression"),
        ("repositories: ['c i']", "is not a repository glob"),
        ("repositories: []", "at least 1 item"),
        ("repositories: ['x']\n      keeplast: -1", "greater than or equal to 0"),
        ("repositories: ['x']\n      olderthan: 0s", "must be longer than zero"),
    ],
)
def test_a_bad_retention_rule_is_an_error(tmp_path: Path, rule: str, message: str) -> None:
    error = config_error(tmp_path, BASE + f"retention:\n  rules:\n    - {rule}\n")
    assert "retention.rules" in error and message in error, error


def test_immutable_rules_need_tags_and_unique_names(tmp_path: Path) -> None:
    missing = config_error(tmp_path, BASE + "immutabletags:\n  rules:\n    - repositories: [x]\n")
    assert "immutabletags.rules" in missing and "tags" in missing
    twice = (
        BASE
        + "immutabletags:\n  rules:\n"
        + "    - {name: a, repositories: [x], tags: [v1]}\n"
        + "    - {name: a, repositories: [y], tags: [v2]}\n"
    )
    assert "rule names must be unique" in config_error(tmp_path, twice)


def test_a_mistyped_key_is_a_warning_with_a_suggestion(tmp_path: Path) -> None:
    loaded = load(tmp_path, BASE + "retention:\n  dryrun: true\n  rule: []\n")
    assert loaded.config.retention.dryrun is True
    assert loaded.warnings == [
        "retention.rule: unknown key, ignored; did you mean retention.rules?"
    ]


def test_the_environment_overrides_dryrun(tmp_path: Path) -> None:
    loaded = load(tmp_path, BASE, {"REGISTRY_RETENTION_DRYRUN": "true"})
    assert loaded.config.retention.dryrun is True
