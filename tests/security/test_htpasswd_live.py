"""htpasswd on a live server: challenges, reload, failed-login limit, log hygiene."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.clients import ClientError, Skopeo
from tests.e2e.images import Image
from tests.e2e.server import wait_for

from .conftest import PASSWORD, USER, ServerFactory, write_htpasswd
from .harness import basic_header
from .workers import listening_inode, watches_socket

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
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"  # type: ignore[index]
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


def test_anonymous_skopeo_is_not_a_failed_login(
    make_server: ServerFactory, tmp_path: Path, skopeo: Skopeo, image: Image, repo: str
) -> None:
    """skopeo without a login sends ``Basic Og==``: more of those than the failed-login
    limit must leave the address free to log in."""
    users = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    limit = 3
    limits = f"security:\n  failedlogins:\n    limit: {limit}\n    window: 1m\n"
    server = make_server(htpasswd_config(users, limits))
    skopeo.copy(image.ref, server.docker_ref(repo, "v1"), "--dest-creds", f"{USER}:{PASSWORD}")
    authfile = tmp_path / "auth.json"
    authfile.write_text("{}")
    for _ in range(limit + 2):
        with pytest.raises(ClientError) as caught:
            skopeo.inspect(server.docker_ref(repo, "v1"), "--authfile", str(authfile))
        assert "authentication required" in caught.value.stderr
        assert "too many" not in caught.value.stderr.lower()
    # no 429: skopeo would wait out Retry-After and succeed a minute later
    login = server.request("GET", "/v2/", headers={"Authorization": basic_header(USER, PASSWORD)})
    assert login.status == 200

    skopeo("login", "--authfile", str(authfile), "--tls-verify=false", "-u", USER,
           "--password-stdin", server.host, input=PASSWORD)  # fmt: skip
    inspected = skopeo.inspect(server.docker_ref(repo, "v1"), "--authfile", str(authfile))
    assert inspected["Digest"] == image.manifest_digest
    creds = skopeo.inspect(server.docker_ref(repo, "v1"), "--creds", f"{USER}:{PASSWORD}")
    assert creds["Digest"] == image.manifest_digest
    server.stop()
    log = server.log_text()
    statuses = re.findall(r'"[A-Z]+ /v2/\S*" (\d{3}) ', log)
    assert "401" in statuses and "429" not in statuses  # skopeo never had to wait
    # the text access log names the user (or "-") and the user agent
    assert re.search(rf'127\.0\.0\.1 {USER} "PUT /v2/{repo}/manifests/v1" 201 .* "skopeo/', log)
    assert re.search(rf'127\.0\.0\.1 - "GET /v2/{repo}/manifests/v1" 401 .* "skopeo/', log)


def test_htpasswd_warnings_are_logged_once_per_serve(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """Two workers: the warning about an entry that is not bcrypt comes once, from the
    parent that loaded the file before forking, not once more from each worker."""
    users = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    with users.open("a") as handle:
        handle.write("legacy:$apr1$Sa1tSa1t$Hq0bv6bqTzDfEVWw8V8l0/\n")
    server = make_server(htpasswd_config(users, "serve:\n  workers: 2\n"))
    inode = listening_inode(server.port)

    def both_workers_accept() -> bool:
        workers = server.worker_pids()
        return len(workers) == 2 and all(watches_socket(pid, inode) for pid in workers)

    wait_for(both_workers_accept, "both workers to accept connections")
    login = server.request("GET", "/v2/", headers={"Authorization": basic_header(USER, PASSWORD)})
    assert login.status == 200
    server.stop()
    warnings = re.findall(
        r"user 'legacy' has a password hash that is not bcrypt", server.log_text()
    )
    assert len(warnings) == 1


def test_json_access_log_names_the_user_and_the_user_agent(
    make_server: ServerFactory, tmp_path: Path, skopeo: Skopeo, image: Image, repo: str
) -> None:
    users = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    server = make_server(htpasswd_config(users), env={"REGISTRY_LOG_FORMATTER": "json"})
    skopeo.copy(image.ref, server.docker_ref(repo, "v1"), "--dest-creds", f"{USER}:{PASSWORD}")
    probe = {"User-Agent": "probe/1.0", "Authorization": basic_header("mallory", "guess-pw")}
    assert server.request("GET", f"/v2/{repo}/tags/list", headers=probe).status == 401
    server.stop()

    text = server.log_text()
    entries = [
        json.loads(line)
        for line in text.splitlines()
        if line.startswith("{") and '"msg": "request"' in line
    ]
    (manifest_put,) = [
        e
        for e in entries
        if e["http.request.method"] == "PUT" and e["http.request.uri"] == f"/v2/{repo}/manifests/v1"
    ]
    assert manifest_put["http.response.status"] == 201
    assert manifest_put["auth.user.name"] == USER
    assert manifest_put["http.request.useragent"].startswith("skopeo/")
    uploads = [
        e
        for e in entries
        if e["http.request.method"] == "PUT" and "/blobs/uploads/" in e["http.request.uri"]
    ]
    assert uploads and all(e["auth.user.name"] == USER for e in uploads)
    # a refused login names no user: a password typed as the user name stays out of the log
    (refused,) = [e for e in entries if e["http.request.uri"] == f"/v2/{repo}/tags/list"]
    assert (
        refused["http.response.status"] == 401 and refused["http.request.useragent"] == "probe/1.0"
    )
    assert "auth.user.name" not in refused
    for secret in (PASSWORD, "guess-pw", base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()):
        assert secret not in text
