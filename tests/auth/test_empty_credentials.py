"""Empty Basic credentials (containers/image's ``Basic Og==``) are no login: they get the
anonymous treatment and are never counted as failed logins."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest

from dockyard.auth.access import Scope, repository_access
from dockyard.auth.controller import AuthRequest, named_login, parse_basic
from dockyard.auth.htpasswd import HtpasswdController, HtpasswdFile
from dockyard.auth.issuer import TokenIssuer, TokenRequest
from dockyard.auth.ratelimit import FailedLoginLimiter
from dockyard.auth.rules import AccessRules, Rule
from dockyard.oci import errors
from tests.security.pki import new_key

LIMIT = 3
CONTAINERS_IMAGE_ANONYMOUS = "Basic Og=="  # base64 of ":"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


EMPTY_LOGINS = [CONTAINERS_IMAGE_ANONYMOUS, basic("", "some-password")]


@pytest.fixture
def users(tmp_path: Path) -> HtpasswdFile:
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{hashed}\n")
    return HtpasswdFile(path)


def test_named_login_drops_an_empty_user() -> None:
    assert parse_basic(CONTAINERS_IMAGE_ANONYMOUS) == ("", "")
    assert named_login(parse_basic(CONTAINERS_IMAGE_ANONYMOUS)) is None
    assert named_login(("", "some-password")) is None
    assert named_login(None) is None
    assert named_login(("alice", "")) == ("alice", "")  # a user with a wrong password


@pytest.mark.parametrize("header", EMPTY_LOGINS)
async def test_htpasswd_challenges_empty_logins_without_counting_them(
    users: HtpasswdFile, header: str
) -> None:
    controller = HtpasswdController("r", users, FailedLoginLimiter(LIMIT, 60))
    required = repository_access("team/app", "pull")
    for _ in range(LIMIT * 3):
        with pytest.raises(errors.RegistryError) as caught:
            await controller.authenticate(AuthRequest(header, "192.0.2.1", "http://r"), required)
        assert caught.value.status == 401
        assert caught.value.headers["WWW-Authenticate"] == 'Basic realm="r"'
    login = AuthRequest(basic("alice", "secret"), "192.0.2.1", "http://r")
    assert (await controller.authenticate(login, required)).name == "alice"


async def test_htpasswd_still_counts_a_named_user_with_an_empty_password(
    users: HtpasswdFile,
) -> None:
    controller = HtpasswdController("r", users, FailedLoginLimiter(LIMIT, 60))
    for _ in range(LIMIT):
        with pytest.raises(errors.RegistryError):
            await controller.authenticate(AuthRequest(basic("alice", ""), "192.0.2.1", "x"), [])
    with pytest.raises(errors.RegistryError) as caught:
        await controller.authenticate(AuthRequest(basic("alice", "secret"), "192.0.2.1", "x"), [])
    assert caught.value.status == 429


@pytest.mark.parametrize("credentials", [("", ""), ("", "some-password")])
async def test_token_service_gives_empty_logins_the_anonymous_rules(
    users: HtpasswdFile, credentials: tuple[str, str]
) -> None:
    rules = AccessRules(
        [
            Rule.build(["public/**"], ["pull"], anonymous=True),
            Rule.build(["team/**"], ["pull", "push"], users=["alice"]),
        ]
    )
    issuer = TokenIssuer(
        new_key("ec"), "issuer", "svc", users, rules, limiter=FailedLoginLimiter(LIMIT, 60)
    )
    scopes = [Scope("repository", "public/x", ("pull",)), Scope("repository", "team/a", ("pull",))]
    for _ in range(LIMIT * 3):
        issued = await issuer.issue(TokenRequest("192.0.2.1", credentials, "svc", scopes))
        assert [str(scope) for scope in issued.granted] == ["repository:public/x:pull"]
    logged_in = await issuer.issue(TokenRequest("192.0.2.1", ("alice", "secret"), "svc", scopes))
    assert [str(scope) for scope in logged_in.granted] == [
        "repository:public/x:pull",
        "repository:team/a:pull",
    ]
