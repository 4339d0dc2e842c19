"""No credential reaches a log line, whoever logs it."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from dockyard.observability.logging import JsonFormatter, TextFormatter, redact

SECRETS = [
    ("Authorization: Basic YWxpY2U6c2VjcmV0", "YWxpY2U6c2VjcmV0"),
    ("{'Authorization': 'Bearer abc.def.ghi'}", "abc.def.ghi"),
    ("authorization=Bearer sometokenvalue", "sometokenvalue"),
    ("GET /auth/token?account=a&password=hunter22&scope=x", "hunter22"),
    ("grant_type=refresh_token&refresh_token=r3fr3sh", "r3fr3sh"),
    ("got eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl", "eyJzdWIiOiJhIn0"),
    ("header Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_redact(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "<redacted>" in redact(text)


def test_ordinary_lines_are_untouched() -> None:
    for text in (
        "authentication failed for user 'alice' from 192.0.2.1",
        '127.0.0.1 "GET /v2/team/app/manifests/v1" 200 512 1.2ms',
        "token service: issued a token for 'alice' (3 scopes)",
    ):
        assert redact(text) == text


def test_formatters_redact_messages_and_tracebacks() -> None:
    try:
        raise ValueError("bad header Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "seen %s", ("password=pw123",), sys.exc_info()
        )
    text = TextFormatter({}).format(record)
    assert "pw123" not in text and "eyJzdWIi" not in text
    entry = json.loads(JsonFormatter({}).format(record))
    assert "pw123" not in entry["msg"] and "eyJzdWIi" not in entry["error"]


def test_access_fields_are_redacted_in_json_lines() -> None:
    """The user agent is whatever the client sent; a credential in it is hidden too."""
    agent = "evil/1.0 Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln"
    record = logging.LogRecord("dockyard.access", logging.INFO, __file__, 1, "request", (), None)
    record.access = {"status": 200, "http.request.useragent": agent, "auth.user.name": "alice"}
    entry = json.loads(JsonFormatter({}).format(record))
    assert "eyJzdWIi" not in entry["http.request.useragent"]
    assert entry["http.request.useragent"].startswith("evil/1.0 Authorization: <redacted>")
    assert entry["auth.user.name"] == "alice" and entry["status"] == 200
