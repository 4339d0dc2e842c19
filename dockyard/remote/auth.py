"""Credentials for one remote registry: anonymous, Basic, or Bearer tokens.

The scheme is learnt from the first ``401`` challenge. Bearer tokens are fetched from the
challenge's realm (``service`` and the request's ``scope`` as query parameters, Basic
credentials when we have them), cached per scope set until they expire, and dropped when the
registry answers ``401`` again (the caller then re-challenges once).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from urllib.parse import urlencode

import aiohttp

from .challenge import Challenge, Token, parse_token_answer
from .errors import RemoteError, RemoteUnavailable, error_from_response


class Authenticator:
    def __init__(
        self, username: str | None, password: str | None, token: str | None = None
    ) -> None:
        """``token``: a Bearer token sent as it is with every request (no challenge)."""
        self._static = f"Bearer {token}" if token else None
        self._basic = (
            "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            if username is not None
            else None
        )
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    @property
    def has_credentials(self) -> bool:
        return self._basic is not None or self._static is not None

    def learn(self, challenge: Challenge | None) -> None:
        """Remember the scheme (and realm) a 401 answer asked for."""
        if challenge is not None and challenge.scheme in ("basic", "bearer"):
            self._challenge = challenge

    def forget(self, scopes: Sequence[str]) -> None:
        """Drop the cached token of ``scopes`` (the registry refused it)."""
        self._tokens.pop(tuple(sorted(scopes)), None)

    async def header(self, session: aiohttp.ClientSession, scopes: Sequence[str]) -> str | None:
        """The Authorization value for a request needing ``scopes``; None: send nothing."""
        if self._static is not None:
            return self._static
        challenge = self._challenge
        if challenge is None or challenge.scheme == "basic":
            return self._basic
        key = tuple(sorted(scopes))
        token = self._tokens.get(key)
        if token is not None and token.fresh():
            return f"Bearer {token.value}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self._tokens.get(key)
            if token is None or not token.fresh():
                token = await self._fetch_token(session, challenge, key)
                self._tokens[key] = token
        return f"Bearer {token.value}"

    async def _fetch_token(
        self, session: aiohttp.ClientSession, challenge: Challenge, scopes: tuple[str, ...]
    ) -> Token:
        if not challenge.realm:
            raise RemoteError("the registry's Bearer challenge names no realm", status=401)
        query: list[tuple[str, str]] = []
        if challenge.service:
            query.append(("service", challenge.service))
        query.extend(("scope", scope) for scope in scopes)
        separator = "&" if "?" in challenge.realm else "?"
        url = challenge.realm + (separator + urlencode(query) if query else "")
        headers = {"Authorization": self._basic} if self._basic else {}
        try:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise error_from_response("token service", response.status, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RemoteUnavailable(
                f"token service {challenge.realm}: {exc or 'timed out'}"
            ) from exc
        try:
            return parse_token_answer(body)
        except ValueError as exc:
            raise RemoteError(f"token service {challenge.realm}: {exc}", status=200) from exc
