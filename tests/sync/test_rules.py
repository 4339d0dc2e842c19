"""Filters, prefix mapping and the command line's registry references."""

from __future__ import annotations

import pytest

from dockyard.sync import PrefixMap, SyncRules
from dockyard.sync_commands import CommandError, parse_endpoint, parse_image_ref


def test_globs_tags_and_excludes() -> None:
    rules = SyncRules(include=("apps/*",), tags=r"v[0-9.]+", exclude=r":v0\.|^apps/tmp")
    assert rules.wants_repository("apps/web") and rules.wants_repository("apps/team/db")
    assert not rules.wants_repository("base/os") and not rules.wants_repository("apps/tmp")
    assert rules.wants_tag("apps/web", "v1.2") and not rules.wants_tag("apps/web", "v1.2-rc")
    assert not rules.wants_tag("apps/web", "v0.9")
    assert SyncRules().wants_repository("anything") and SyncRules().wants_tag("a", "b")


def test_prefixes_map_source_names_onto_destination_names() -> None:
    prefixes = PrefixMap("team", "mirror/team")
    assert prefixes.relative("team/web") == "web" and prefixes.relative("teamx/web") is None
    assert prefixes.destination("web") == "mirror/team/web"
    assert prefixes.relative("team") == "" and prefixes.destination("") == "mirror/team"
    assert PrefixMap().destination(PrefixMap().relative("a/b") or "") == "a/b"


def test_endpoints() -> None:
    assert parse_endpoint("reg.example:5000/team", True).base_url == "https://reg.example:5000"
    assert parse_endpoint("reg.example:5000", False).base_url == "http://reg.example:5000"
    end = parse_endpoint("http://127.0.0.1:5000/a/b/", True)
    assert (end.base_url, end.path) == ("http://127.0.0.1:5000", "a/b")
    for bad in ("ftp://x", "x:5000/Upper", "/path"):
        with pytest.raises(CommandError):
            parse_endpoint(bad, True)


def test_image_references() -> None:
    ref = parse_image_ref("127.0.0.1:5000/team/web:1.0", True, registry_required=True)
    assert ref.registry is not None and ref.registry.base_url == "https://127.0.0.1:5000"
    assert (ref.repository, ref.reference) == ("team/web", "1.0")
    digest = "sha256:" + "a" * 64
    ref = parse_image_ref(f"http://h:1/web@{digest}", True, registry_required=True)
    assert (ref.repository, ref.reference) == ("web", digest)
    local = parse_image_ref("team/web-prod:stable", True, registry_required=False)
    assert local.registry is None and local.repository == "team/web-prod"
    assert parse_image_ref("h.example/web", True, registry_required=True).reference == "latest"
    for bad in ("web:1.0", "h:1/web@sha256:short", "h:1/Web:1"):
        with pytest.raises(CommandError):
            parse_image_ref(bad, True, registry_required=True)


@pytest.mark.parametrize("command", ["sync", "promote"])
def test_every_option_is_documented(command: str) -> None:
    from pathlib import Path

    import click

    from dockyard.cli import main

    assert isinstance(main, click.Group)
    page = (Path(__file__).parents[2] / "docs" / "replication.md").read_text()
    for param in main.commands[command].params:
        for name in getattr(param, "opts", []):
            if name.startswith("--") and name != "--help":
                assert f"`{name}" in page, f"{command} {name} is not in docs/replication.md"
