"""``notifications`` with Distribution's keys and defaults, and ``outbox``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dockyard.config import render_effective
from dockyard.notify_setup import notify_settings
from tests.test_config import MINIMAL, config_error, load

SECTION = """\
notifications:
  events:
    includereferences: true
  endpoints:
    - name: ci
      url: https://user:secret@ci.example.com/hook
      headers:
        authorization: [Bearer t0ken]
      timeout: 0
      threshold: 0
      ignoredmediatypes: [application/octet-stream]
      ignore:
        mediatypes: [application/vnd.oci.image.index.v1+json]
        actions: [pull]
    - name: off
      disabled: true
      url: http://127.0.0.1:9/
"""


def test_distribution_keys_and_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, MINIMAL + SECTION)
    assert loaded.warnings == []
    first, second = loaded.config.notifications.endpoints
    assert (first.timeout, first.threshold, first.backoff) == (
        timedelta(seconds=1),
        10,
        timedelta(seconds=1),
    )
    assert first.headers == {"Authorization": ["Bearer t0ken"]}
    assert second.disabled
    settings = notify_settings(loaded.config)
    assert settings is not None
    (only,) = settings.endpoints
    assert only.ignored_media_types == {
        "application/octet-stream",
        "application/vnd.oci.image.index.v1+json",
    }
    assert not only.wants("pull", "application/vnd.oci.image.manifest.v1+json")
    assert not only.wants("push", "application/octet-stream")
    assert only.wants("delete", "")
    assert settings.include_references
    assert (settings.max_attempts, settings.max_pending, settings.interval) == (0, 100_000, 1.0)


def test_config_check_masks_headers_and_url_passwords(tmp_path: Path) -> None:
    shown = render_effective(load(tmp_path, MINIMAL + SECTION).config)
    assert "t0ken" not in shown and ":secret@" not in shown
    assert "url: https://user:***@ci.example.com/hook" in shown
    assert "maxpending: 100000" in shown


def test_no_enabled_endpoint_means_no_notifications(tmp_path: Path) -> None:
    assert notify_settings(load(tmp_path, MINIMAL).config) is None
    endpoints = "  endpoints:\n    - {name: a, url: 'http://x/', disabled: true}\n"
    text = MINIMAL + "notifications:\n" + endpoints
    assert notify_settings(load(tmp_path, text).config) is None


def test_environment_overrides_reach_an_endpoint(tmp_path: Path) -> None:
    env = {
        "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL": "http://127.0.0.1:8099/events",
        "REGISTRY_OUTBOX_MAXATTEMPTS": "5",
    }
    config = load(tmp_path, MINIMAL + SECTION, env).config
    assert config.notifications.endpoints[0].url == "http://127.0.0.1:8099/events"
    assert config.outbox.maxattempts == 5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("url: https://user:secret@ci.example.com/hook", "must be an http or https URL"),
        ("name: off", "the name 'ci' is used twice"),
        ("actions: [pull]", "notifications.endpoints[0].ignore.actions[0]"),
    ],
)
def test_mistakes_are_errors(tmp_path: Path, change: str, expected: str) -> None:
    wrong = {
        "url: https://user:secret@ci.example.com/hook": "url: ftp://ci.example.com/",
        "name: off": "name: ci",
        "actions: [pull]": "actions: [fetch]",
    }[change]
    assert SECTION.count(change) == 1
    assert expected in config_error(tmp_path, MINIMAL + SECTION.replace(change, wrong))


def test_outbox_interval_must_be_positive(tmp_path: Path) -> None:
    message = config_error(tmp_path, MINIMAL + "outbox:\n  interval: 0\n")
    assert "outbox.interval: " in message and "longer than zero" in message
