"""htpasswd on a live server: challenges, reload, failed-login limit, log hygiene."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.clients import ClientError, Skopeo
from tests.e2e.images import Image

from .conftest import PASSWORD, USER, ServerFactory, write_htpasswd
from .harness import basic_header

pytestmark = pytest.mark.e2e


def htpasswd_config(path: Path, extra: str = "") -> str:
    return f"auth:\n  htpasswd:\n    realm: Dockyard Test\n    path: {path}\n" + extra


def test_challenge_login_push_pull(
    make_server: ServerFactory, tmp_path: Path, skopeo: Skopeo, image: Image, repo: str
) -> None:
    users = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    server = make_server(htpasswd_config(users))
    r = server.request("GET", "/v2/")
    assert r.status == 401
    assert r.headers["www-authenticate"] == 'Basic realm="Dockyard Test"'
    assert r.json() == {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}

    with pytest.raises(ClientError):
        skopeo.copy(image.ref, server.docker_ref(repo, "v1"))
    skopeo.copy(image.ref, server.docker_ref(repo, "v1"), "--dest-creds", f"{USER}:{PASSWORD}")
    out = tmp_path / "pulled"
    skopeo.copy(server.docker_ref(repo, "v1"), f"oci:{out}:v1", "--src-creds", f"{USER}:{PASSWORD}")
    server.credentials = (USER, PASSWORD)
    assert server.get_manifest(repo, "v1").body == image.manifest_bytes


def test_users_change_without_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    users = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    server = make_server(htpasswd_config(users))

    def status(user: str, password: str) -> int:
        return server.request(
            "GET", "/v2/", headers={"Authorization": basic_header(user, password)}
        ).status

    def cli(*args: str, stdin: str | None = None) -> None:
        subprocess.run(
            [sys.executable, "-m", "dockyard", "htpasswd", *args, str(users), "bob"],
            input=stdin, text=True, check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    assert status("bob", "b0b") == 401
    cli("add", "--password-stdin", "--cost", "5", stdin="b0b\n")
    assert status("bob", "b0b") == 200
    cli("add", "--password-stdin", "--cost", "5", stdin="new\n")
    assert status("bob", "b0b") == 401  # the old password no longer works, cached or not
    assert status("bob", "new") == 200
    cli("remove")
    assert status("bob", "new") == 401
    assert status(USER, PASSWORD) == 200


def test_failed_logins_are_limited_and_nothing_secret_is_logged(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    users = tmp_path / "htpasswd"
    write_htpasswd(users, {USER: PASSWORD})
    with users.open("a") as handle:
        handle.write("legacy:$apr1$Sa1tSa1t$Hq0bv6bqTzDfEVWw8V8l0/\n")
    limits = "security:\n  failedlogins:\n    limit: 3\n    window: 1m\n"
    server = make_server(htpasswd_config(users, limits))

    def get(user: str, password: str) -> int:
        return server.request(
            "GET", "/v2/", headers={"Authorization": basic_header(user, password)}
        ).status

    assert get(USER, PASSWORD) == 200
    assert get("legacy", "whatever") == 401
    assert get(USER, "wrong-password-1") == 401
    assert get("mallory", "wrong-password-2") == 401
    r = server.request("GET", "/v2/", headers={"Authorization": basic_header(USER, PASSWORD)})
    assert r.status == 429
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # a request with a bearer token is not a login, and gets the ordinary challenge
    r = server.request("GET", "/v2/", headers={"Authorization": "Bearer eyJhbGciOi.eyJzdWIi.c2ln"})
    assert r.status == 401

    server.stop()
    log = server.log_path.read_text()
    assert "'legacy'" in log and "not bcrypt" in log  # the user is named...
    assert "$apr1$" not in log and "Sa1tSa1t" not in log  # ...the hash is not
    for secret in (PASSWORD, "wrong-password-1", "wrong-password-2", "eyJzdWIi"):
        assert secret not in log
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in log
    assert "authorization" not in log.lower()
