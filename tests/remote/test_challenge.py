"""The pure parts of the registry client: challenges, token answers, Link headers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.remote.challenge import (
    MIN_TOKEN_LIFETIME,
    next_link,
    parse_challenge,
    parse_token_answer,
)
from dockyard.remote.errors import RemoteUnavailable, error_from_response


def test_a_bearer_challenge_gives_realm_service_and_scope() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:team/app:pull,push"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.service == "registry.example"
    assert challenge.scope == "repository:team/app:pull,push"


def test_quoted_pairs_and_bare_values() -> None:
    challenge = parse_challenge('Basic realm="a \\"quoted\\" realm", charset=UTF-8')
    assert challenge is not None and challenge.scheme == "basic"
    assert challenge.params == {"realm": 'a "quoted" realm', "charset": "UTF-8"}


@given(st.text(max_size=200))
def test_any_header_parses_or_is_refused_without_crashing(header: str) -> None:
    parse_challenge(header)


def test_token_answers_either_field_and_a_lifetime_of_at_least_a_minute() -> None:
    token = parse_token_answer(json.dumps({"access_token": "abc", "expires_in": 5}).encode(), 0)
    assert token.value == "abc" and token.expires_at == MIN_TOKEN_LIFETIME
    token = parse_token_answer(b'{"token": "xyz", "expires_in": 300}', 100)
    assert (token.value, token.expires_at) == ("xyz", 400)
    with pytest.raises(ValueError):
        parse_token_answer(b'{"expires_in": 300}')


def test_next_link_is_absolute() -> None:
    header = '</v2/_catalog?last=b&n=2>; rel="next"'
    assert next_link(header, "http://127.0.0.1:5000/v2/_catalog") == (
        "http://127.0.0.1:5000/v2/_catalog?last=b&n=2"
    )
    assert next_link('</x>; rel="prev"', "http://h/") is None
    assert next_link(None, "http://h/") is None


def test_errors_carry_the_registry_code_and_say_what_a_cache_may_serve_stale_on() -> None:
    body = b'{"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}'
    error = error_from_response("tags of x", 404, body)
    assert (error.status, error.code) == (404, "NAME_UNKNOWN")
    assert "repository name not known" in str(error)
    assert not isinstance(error, RemoteUnavailable)
    assert isinstance(error_from_response("x", 429, b""), RemoteUnavailable)
    assert isinstance(error_from_response("x", 503, b"<html>"), RemoteUnavailable)
