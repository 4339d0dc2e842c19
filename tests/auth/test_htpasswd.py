"""htpasswd parsing, bcrypt-only, reload on change, the verified-login cache, Basic auth."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from pathlib import Path

import bcrypt
import pytest

from dockyard.auth import htpasswd, htpasswd_edit
from dockyard.auth.access import repository_access
from dockyard.auth.controller import AuthRequest
from dockyard.auth.htpasswd import HtpasswdController, HtpasswdFile, parse_htpasswd
from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.oci import errors


def bcrypt_hash(password: str, prefix: bytes = b"2y", cost: int = 4) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    return f"${prefix.decode()}$" + hashed[4:]


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(authorization: str | None, client: str = "192.0.2.1") -> AuthRequest:
    return AuthRequest(authorization, client, "http://registry.test")


# ---- parsing ---------------------------------------------------------------------------


def test_parse_keeps_bcrypt_and_skips_the_rest() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            f"alice:{bcrypt_hash('a', b'2y')}",
            f"bob:{bcrypt_hash('b', b'2b')}",
            f"carol:{bcrypt_hash('c', b'2a')}",
            "dave:$apr1$abcdefgh$0123456789abcdefghijkl",
            "erin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "frank:plaintext",
            "no colon here",
            "   ",
        ]
    )
    parsed = parse_htpasswd(text)
    assert set(parsed.entries) == {"alice", "bob", "carol"}
    assert parsed.unsupported == {"dave", "erin", "frank"}
    assert any("line 9" in problem for problem in parsed.problems)
    for problem in parsed.problems:  # problems name users and lines, never a hash
        assert "$apr1$" not in problem and "{SHA}" not in problem and "plaintext" not in problem


def test_a_later_entry_wins() -> None:
    parsed = parse_htpasswd(f"alice:{bcrypt_hash('a')}\nalice:$apr1$x$y\n")
    assert "alice" not in parsed.entries
    assert parsed.unsupported == {"alice"}


# ---- verification ------------------------------------------------------------------------


async def test_verify_bcrypt_variants(tmp_path: Path) -> None:
    path = write(
        tmp_path / "htpasswd",
        f"y:{bcrypt_hash('py', b'2y')}",
        f"b:{bcrypt_hash('pb', b'2b')}",
        f"a:{bcrypt_hash('pa', b'2a')}",
    )
    users = HtpasswdFile(path)
    assert await users.verify("y", "py")
    assert await users.verify("b", "pb")
    assert await users.verify("a", "pa")
    assert not await users.verify("y", "pb")
    assert not await users.verify("nobody", "py")
    assert not await users.verify("y", "")


async def test_non_bcrypt_entry_is_refused_with_a_log_line_naming_the_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hashed = "$apr1$abcdefgh$0123456789abcdefghijkl"
    path = write(tmp_path / "htpasswd", f"dave:{hashed}")
    caplog.set_level(logging.INFO, "dockyard.auth")
    users = HtpasswdFile(path)
    assert not await users.verify("dave", "whatever")
    text = caplog.text
    assert "'dave'" in text
    assert "not bcrypt" in text
    assert hashed not in text and "abcdefgh" not in text


async def test_long_passwords_are_checked_on_72_bytes(tmp_path: Path) -> None:
    long = "x" * 100
    stored = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(4)).decode()
    users = HtpasswdFile(write(tmp_path / "htpasswd", f"u:{stored}"))
    assert await users.verify("u", long)
    with pytest.raises(htpasswd.HtpasswdError, match="72 bytes"):
        htpasswd_edit.hash_password(long)


async def test_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "htpasswd", f"alice:{bcrypt_hash('one')}")
    users = HtpasswdFile(path)
    assert await users.verify("alice", "one")
    write(path, f"alice:{bcrypt_hash('two')}", f"bob:{bcrypt_hash('b')}")
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert not await users.verify("alice", "one")  # the cached login does not survive
    assert await users.verify("alice", "two")
    assert await users.verify("bob", "b")
    path.unlink()
    assert not await users.verify("alice", "two")  # a missing file lets nobody in


async def test_verified_login_is_cached_without_a_second_bcrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = HtpasswdFile(write(tmp_path / "htpasswd", f"alice:{bcrypt_hash('secret')}"))
    calls: list[bytes] = []
    real = htpasswd._checkpw

    def counting(secret: bytes, stored: bytes) -> bool:
        calls.append(secret)
        return real(secret, stored)

    monkeypatch.setattr(htpasswd, "_checkpw", counting)
    assert await users.verify("alice", "secret")
    assert await users.verify("alice", "secret")
    assert await users.verify("alice", "secret")
    assert len(calls) == 1
    # a wrong password is never answered from the cache
    assert not await users.verify("alice", "secreT")
    assert len(calls) == 2
    # the cache holds no password, only an HMAC under a per-process key
    assert all(b"secret" not in tag for tag in users._cache.values())


async def test_concurrent_checks_of_one_login_share_one_bcrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = HtpasswdFile(write(tmp_path / "htpasswd", f"alice:{bcrypt_hash('s', cost=8)}"))
    calls = 0
    real = htpasswd._checkpw

    def counting(secret: bytes, stored: bytes) -> bool:
        nonlocal calls
        calls += 1
        return real(secret, stored)

    monkeypatch.setattr(htpasswd, "_checkpw", counting)
    results = await asyncio.gather(*(users.verify("alice", "s") for _ in range(8)))
    assert results == [True] * 8
    assert calls == 1


async def test_unknown_users_cost_a_bcrypt_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = HtpasswdFile(write(tmp_path / "htpasswd", f"alice:{bcrypt_hash('s', cost=5)}"))
    costs: list[int] = []
    real = htpasswd._checkpw

    def spy(secret: bytes, stored: bytes) -> bool:
        costs.append(int(stored.split(b"$")[2]))
        return real(secret, stored)

    monkeypatch.setattr(htpasswd, "_checkpw", spy)
    assert not await users.verify("mallory", "s")
    assert costs == [5]  # a failing check at the file's own cost


def test_unreadable_file_at_startup(tmp_path: Path) -> None:
    with pytest.raises(htpasswd.HtpasswdError, match="cannot read"):
        HtpasswdFile(tmp_path / "missing").check_readable()


# ---- the controller --------------------------------------------------------------------


async def test_controller_challenges_and_authenticates(tmp_path: Path) -> None:
    users = HtpasswdFile(write(tmp_path / "htpasswd", f"alice:{bcrypt_hash('secret')}"))
    controller = HtpasswdController('Dockyard "test"', users)
    required = repository_access("team/app", "pull")
    for header in (None, "Bearer abc", "Basic !!!", basic("alice", "wrong"), basic("bob", "x")):
        with pytest.raises(errors.RegistryError) as caught:
            await controller.authenticate(request(header), required)
        assert caught.value.status == 401
        assert caught.value.error is errors.UNAUTHORIZED
        assert caught.value.headers["WWW-Authenticate"] == 'Basic realm="Dockyard \\"test\\""'
        assert caught.value.detail == [
            {"Type": "repository", "Class": "", "Name": "team/app", "Action": "pull"}
        ]
    identity = await controller.authenticate(request(basic("alice", "secret")), required)
    assert identity.name == "alice"
    controller.authorize(identity, request(None), required)
    assert controller.pulls_everything(identity)


async def test_controller_limits_failed_logins_per_address(tmp_path: Path) -> None:
    users = HtpasswdFile(write(tmp_path / "htpasswd", f"alice:{bcrypt_hash('secret')}"))
    now = [1000.0]
    limiter = FailedLoginLimiter(3, 60, clock=lambda: now[0])
    controller = HtpasswdController("r", users, limiter)
    for _ in range(3):
        with pytest.raises(errors.RegistryError) as caught:
            await controller.authenticate(request(basic("alice", "guess")), [])
        assert caught.value.status == 401
    # the address is blocked, even with the right password
    with pytest.raises(errors.RegistryError) as caught:
        await controller.authenticate(request(basic("alice", "secret")), [])
    assert caught.value.status == 429
    assert caught.value.error is errors.TOOMANYREQUESTS
    assert caught.value.headers["Retry-After"] == "60"
    # another address is not
    other = await controller.authenticate(request(basic("alice", "secret"), "192.0.2.9"), [])
    assert other.name == "alice"
    # and the block ends with the window
    now[0] += 60.5
    identity = await controller.authenticate(request(basic("alice", "secret")), [])
    assert identity.name == "alice"
