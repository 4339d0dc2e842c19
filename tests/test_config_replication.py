"""The ``replication`` section: what it loads into, secrets masked, and the errors a
mistyped destination or rule gets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dockyard.config import render_effective
from dockyard.replication_setup import replication_settings
from tests.test_config import config_error, load

BASE = "version: 0.1\nstorage:\n  inmemory:\n"
SECTION = (
    BASE
    + "replication:\n"
    + "  destinations:\n"
    + "    - name: prod\n"
    + "      url: https://prod.example:5000/\n"
    + "      username: robot\n"
    + "      password: s3cret\n"
    + "    - name: dr\n"
    + "      url: http://dr.example:5000\n"
    + "      token: tok-123\n"
    + "      tlsverify: false\n"
    + "      disabled: true\n"
    + "  rules:\n"
    + "    - name: releases\n"
    + "      destinations: [prod, dr]\n"
    + "      repositories: ['apps/*']\n"
    + "      tags: 'v[0-9.]+'\n"
    + "      exclude: '-rc'\n"
    + "      interval: 1h\n"
    + "      deletes: true\n"
    + "  retries: 3\n"
    + "  backoff:\n"
    + "    initial: 2s\n"
    + "    max: 1m\n"
)


def test_section_loads_and_renders_with_secrets_masked(tmp_path: Path) -> None:
    loaded = load(tmp_path, SECTION)
    assert loaded.warnings == []
    section = loaded.config.replication
    assert section.enabled
    prod = section.destination("prod")
    assert prod.url == "https://prod.example:5000" and prod.tlsverify
    rule = section.rules[0]
    assert rule.targets() == ["prod", "dr"] and section.active_targets(rule) == ["prod"]
    assert rule.onpush and rule.interval == timedelta(hours=1) and rule.deletes
    filters = rule.filters()
    assert filters.wants_repository("apps/web") and not filters.wants_repository("lib/x")
    assert filters.wants_tag("apps/web", "v1.2") and not filters.wants_tag("apps/web", "v1-rc")
    settings = replication_settings(loaded.config)
    assert [r.destinations for r in settings.rules] == [("prod",)]
    assert [settings.backoff(n) for n in (1, 2, 3, 10)] == [
        timedelta(seconds=s) for s in (2, 4, 8, 60)
    ]
    rendered = render_effective(loaded.config)
    assert "s3cret" not in rendered and "tok-123" not in rendered
    assert "destinations:" in rendered


def test_no_rules_means_nothing_runs(tmp_path: Path) -> None:
    assert not load(tmp_path, BASE).config.replication.enabled


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "  destinations: [{name: a, url: 'ftp://x'}]\n",
            "the registry's base URL",
        ),
        (
            "  destinations: [{name: a, url: 'https://x/team'}]\n",
            "no path",
        ),
        (
            "  destinations: [{name: a, url: 'https://x', token: t, username: u}]\n",
            "username/password or token, not both",
        ),
        (
            "  destinations: [{name: a, url: 'https://x'}, {name: a, url: 'https://y'}]\n",
            "used twice",
        ),
        (
            "  destinations: [{name: a, url: 'https://x'}]\n  rules: [{name: r, destination: b}]\n",
            "no destination named 'b' (destinations: a)",
        ),
        (
            "  destinations: [{name: a, url: 'https://x'}]\n  rules: [{name: r}]\n",
            "name its destination",
        ),
        (
            "  destinations: [{name: a, url: 'https://x'}]\n"
            "  rules: [{name: r, destination: a, tags: 'v['}]\n",
            "is not a regular expression",
        ),
        (
            "  destinations: [{name: a, url: 'https://x'}]\n"
            "  rules: [{name: r, destination: a, onpush: false}]\n",
            "set an interval",
        ),
        (
            "  destinations: [{name: a, url: 'https://x'}]\n"
            "  rules: [{name: r, destination: a, interval: 0s}]\n",
            "must be longer than zero",
        ),
        ("  backoff: {initial: 10s, max: 1s}\n", "backoff.max must not be shorter"),
        ("  retries: -1\n", "greater than or equal to 0"),
        ("  destinations: [{name: 'a b', url: 'https://x'}]\n", "a name of letters"),
        ("  rulez: []\n", "rulez"),
    ],
)
def test_bad_sections_get_clear_errors(tmp_path: Path, section: str, message: str) -> None:
    text = BASE + "replication:\n" + section
    if message == "rulez":  # an unknown key: a warning, as everywhere in the file
        loaded = load(tmp_path, text)
        assert any("replication.rulez: unknown key" in w for w in loaded.warnings)
        return
    assert message in config_error(tmp_path, text)


def test_the_documented_examples_load(tmp_path: Path) -> None:
    docs = (Path(__file__).parents[1] / "docs" / "replication.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Replication inside the server") :]
    examples = [part.split("\n```", 1)[0] for part in section.split("```yaml\n")[1:]]
    assert len(examples) == 3
    for example in examples:
        loaded = load(tmp_path, BASE + example + "\n")
        assert loaded.warnings == [], example
    first = load(tmp_path, BASE + examples[0] + "\n").config.replication
    assert [r.targets() for r in first.rules] == [["prod", "dr"], ["dr"]]
