"""Dockyard's token service on a live server over TLS: every real client completes the
Docker token flow, rules decide, anonymous pull works where allowed, listings are filtered,
and registry:2 itself accepts the tokens Dockyard issues."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.clients import ClientError, ContainersTool, Ctr, Docker, Skopeo
from tests.e2e.images import Image

from . import flows
from .conftest import ServerFactory, write_htpasswd
from .harness import SecureServer, basic_header
from .pki import Pki, write_signer

pytestmark = pytest.mark.e2e

SERVICE, ISSUER = "dockyard.test", "dockyard-token-service"
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-2", "root": "root-secret-3"}


def creds(user: str) -> tuple[str, str]:
    return user, PASSWORDS[user]


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The token service's key and its (self-signed) certificate, as files."""
    return write_signer(tmp_path_factory.mktemp("token-signer"), "dockyard token signer")


def token_service_config(workdir: Path, signing_key: Path) -> str:
    users = write_htpasswd(workdir / "htpasswd", PASSWORDS)
    return f"""\
auth:
  token:
    realm: /auth/token
    service: {SERVICE}
    issuer: {ISSUER}
access:
  signingkey: {signing_key}
  htpasswd: {users}
  groups:
    developers: [alice]
  admins:
    users: [root]
  rules:
    - repositories: ["public/**"]
      actions: [pull]
      anonymous: true
    - repositories: ["team/**"]
      actions: [pull, push]
      groups: [developers]
    - repositories: ["users/${{user}}/**"]
      actions: ["*"]
      users: ["*"]
"""


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, signer: tuple[Path, Path]
) -> Iterator[SecureServer]:
    workdir = tmp_path_factory.mktemp("token-service")
    server = SecureServer("dockyard", workdir, pki=pki)
    server.configure(token_service_config(workdir, signer[0]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def endpoint(registry: SecureServer, pki: Pki) -> flows.Endpoint:
    return flows.Endpoint(registry.host, pki.cert_dir)


def fetch_token(server: SecureServer, *scopes: str, user: str | None = None) -> str:
    query = urllib.parse.urlencode([("service", SERVICE), *(("scope", s) for s in scopes)])
    headers = {"Authorization": basic_header(*creds(user)) if user else ""}
    r = server.request("GET", f"/auth/token?{query}", headers=headers)
    assert r.status == 200, r.body
    return str(json.loads(r.body)["token"])


def test_challenge_names_the_token_service(registry: SecureServer) -> None:
    r = registry.request("GET", "/v2/team/app/tags/list")
    assert r.status == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer realm="https://{registry.host}/auth/token",service="{SERVICE}",'
        'scope="repository:team/app:pull"'
    )


# ---- every real client completes the flow --------------------------------------------------


def test_skopeo(
    skopeo: Skopeo, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path
) -> None:
    flows.skopeo_flow(skopeo, endpoint, creds("alice"), image, f"team/{repo}", tmp_path)


def test_podman(
    podman: ContainersTool, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path
) -> None:
    flows.podman_flow(podman, endpoint, creds("alice"), image, f"team/{repo}", tmp_path)


def test_buildah(
    buildah: ContainersTool, endpoint: flows.Endpoint, repo: str, tmp_path: Path
) -> None:
    flows.buildah_flow(buildah, endpoint, creds("bob"), f"users/bob/{repo}", tmp_path)


def test_docker(
    docker: Docker,
    skopeo: Skopeo,
    endpoint: flows.Endpoint,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    flows.docker_flow(docker, skopeo, endpoint, creds("alice"), image, f"team/{repo}", tmp_path)


def test_ctr(ctr: Ctr, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path) -> None:
    flows.ctr_flow(ctr, endpoint, creds("alice"), image, f"team/{repo}", tmp_path)


def test_oras(endpoint: flows.Endpoint, repo: str, tmp_path: Path) -> None:
    flows.oras_flow(endpoint, creds("bob"), f"users/bob/{repo}", tmp_path, auth_backend="token")


# ---- the rules, as clients meet them --------------------------------------------------------


def test_anonymous_pull_where_a_rule_allows_it(
    skopeo: Skopeo,
    endpoint: flows.Endpoint,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    public = f"public/{repo}"
    root_auth = tmp_path / "root.json"
    root_auth.write_text("{}")
    skopeo("login", "--authfile", str(root_auth), *endpoint.tls(), "-u", "root",
           "--password-stdin", endpoint.host, input=PASSWORDS["root"])  # fmt: skip
    skopeo("copy", "--quiet", "--preserve-digests", "--authfile", str(root_auth),
           *endpoint.tls("dest-"), image.ref, f"docker://{endpoint.ref(public)}")  # fmt: skip
    # no login at all: pull works, push does not
    out = tmp_path / "anonymous"
    skopeo("copy", "--quiet", *endpoint.tls("src-"), f"docker://{endpoint.ref(public)}",
           f"oci:{out}:v1")  # fmt: skip
    flows.check_layout(out, image)
    with pytest.raises(ClientError):
        skopeo("copy", "--quiet", *endpoint.tls("dest-"), image.ref,
               f"docker://{endpoint.ref(public, 'v2')}")  # fmt: skip
    # and nothing outside public/
    with pytest.raises(ClientError):
        skopeo("inspect", *endpoint.tls(), f"docker://{endpoint.ref(f'team/{repo}')}")


def test_a_user_cannot_push_where_no_rule_lets_them(
    skopeo: Skopeo, endpoint: flows.Endpoint, image: Image, repo: str, tmp_path: Path
) -> None:
    authfile = tmp_path / "bob.json"
    authfile.write_text("{}")
    skopeo("login", "--authfile", str(authfile), *endpoint.tls(), "-u", "bob",
           "--password-stdin", endpoint.host, input=PASSWORDS["bob"])  # fmt: skip
    with pytest.raises(ClientError) as caught:
        skopeo("copy", "--quiet", "--authfile", str(authfile), *endpoint.tls("dest-"),
               image.ref, f"docker://{endpoint.ref(f'team/{repo}')}")  # fmt: skip
    assert "403 (forbidden)" in caught.value.stderr.lower()
    with pytest.raises(ClientError) as caught:
        skopeo("login", "--authfile", str(authfile), *endpoint.tls(), "-u", "bob",
               "--password-stdin", endpoint.host, input="wrong")  # fmt: skip


def test_listings_show_only_what_the_caller_may_pull(registry: SecureServer, repo: str) -> None:
    names = [f"team/{repo}", f"public/{repo}", f"users/bob/{repo}", f"secret/{repo}"]
    root = fetch_token(registry, *(f"repository:{n}:push" for n in names), user="root")
    for name in names:
        data = name.encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = registry.request(
            "POST",
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            body=data,
            headers={"Authorization": f"Bearer {root}"},
        )
        assert r.status == 201, r.body

    def catalog(user: str | None) -> list[str]:
        token = fetch_token(registry, "registry:catalog:*", user=user)
        r = registry.request(
            "GET", "/v2/_catalog?n=1000", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status == 200, r.body
        return [n for n in json.loads(r.body)["repositories"] if n.endswith(repo)]

    assert catalog("root") == sorted(names)
    assert catalog("alice") == sorted([f"public/{repo}", f"team/{repo}"])
    assert catalog("bob") == sorted([f"public/{repo}", f"users/bob/{repo}"])
    assert catalog(None) == [f"public/{repo}"]
    # a tag list needs pull on the repository
    bob = fetch_token(registry, f"repository:team/{repo}:pull", user="bob")
    r = registry.request(
        "GET", f"/v2/team/{repo}/tags/list", headers={"Authorization": f"Bearer {bob}"}
    )
    assert r.status == 403


def test_no_password_or_token_in_the_log(registry: SecureServer) -> None:
    token = fetch_token(registry, "repository:team/x:pull", user="alice")
    registry.request("GET", "/v2/team/x/tags/list", headers={"Authorization": f"Bearer {token}"})
    registry.request("GET", "/auth/token", headers={"Authorization": basic_header("alice", "nope")})
    log = registry.log_path.read_text()
    assert "token service: token for 'alice'" in log
    for secret in (*PASSWORDS.values(), "nope", token, token.split(".")[1]):
        assert secret not in log
    assert base64.b64encode(b"alice:alice-secret-1").decode() not in log
    assert "authorization" not in log.lower()


# ---- another registry verifies Dockyard's tokens ------------------------------------------


@pytest.mark.parametrize("kind", ["registry2", "dockyard"])
def test_another_registry_accepts_tokens_issued_by_dockyard(
    kind: str,
    make_server: ServerFactory,
    registry: SecureServer,
    signer: tuple[Path, Path],
    pki: Pki,
    skopeo: Skopeo,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    """A registry that only verifies tokens (``auth.token`` with Dockyard's signing
    certificate in ``rootcertbundle``) serves a push and a pull with the tokens Dockyard's
    service issues: Distribution 2.8.2 (Debian's docker-registry, which finds the key by
    its libtrust kid), and Dockyard itself as a plain token-verifying registry."""
    _, certificate = signer
    realm = f"https://{registry.host}/auth/token"
    reference = make_server(
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {certificate}\n",
        kind=kind,
    )
    r = reference.request("GET", "/v2/")
    assert r.status == 401
    assert f'realm="{realm}"' in r.headers["www-authenticate"]
    target = flows.Endpoint(reference.host, None)
    # skopeo talks plain HTTP to the registry, and gets its tokens from Dockyard's service
    skopeo("copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
           "--dest-creds", ":".join(creds("alice")), image.ref,
           f"docker://{target.ref(f'team/{repo}')}")  # fmt: skip
    out = tmp_path / "pulled"
    skopeo("copy", "--quiet", "--src-tls-verify=false", "--src-creds", ":".join(creds("alice")),
           f"docker://{target.ref(f'team/{repo}')}", f"oci:{out}:v1")  # fmt: skip
    flows.check_layout(out, image)
    # and the registry enforces the access Dockyard put in the token
    with pytest.raises(ClientError):
        skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
               ":".join(creds("bob")), image.ref,
               f"docker://{target.ref(f'team/{repo}', 'x')}")  # fmt: skip


def test_empty_basic_credentials_are_anonymous_not_failed_logins(
    make_server: ServerFactory,
    signer: tuple[Path, Path],
    pki: Pki,
    skopeo: Skopeo,
    image: Image,
    repo: str,
    tmp_path: Path,
) -> None:
    """containers/image sends ``Basic Og==`` (no user, no password) when it has no login:
    the token service gives it the anonymous rules and never counts it as a failed login."""
    limit = 3
    limits = f"security:\n  failedlogins:\n    limit: {limit}\n    window: 1m\n"
    server = make_server(token_service_config(tmp_path, signer[0]) + limits, pki=pki)
    endpoint = flows.Endpoint(server.host, pki.cert_dir)
    team = f"team/{repo}"
    skopeo("copy", "--quiet", "--preserve-digests", *endpoint.tls("dest-"),
           "--dest-creds", ":".join(creds("alice")), image.ref,
           f"docker://{endpoint.ref(team)}")  # fmt: skip
    query = urllib.parse.urlencode(
        [("service", SERVICE), ("scope", f"repository:public/{repo}:pull"),
         ("scope", f"repository:{team}:pull")]
    )  # fmt: skip
    for _ in range(limit + 2):
        r = server.request("GET", f"/auth/token?{query}", headers={"Authorization": "Basic Og=="})
        assert r.status == 200, r.body
        payload = json.loads(r.body)["token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["sub"] == ""
        assert [entry["name"] for entry in claims["access"]] == [f"public/{repo}"]
        with pytest.raises(ClientError):  # no login: team/ is not for anonymous callers
            skopeo("inspect", *endpoint.tls(), f"docker://{endpoint.ref(team)}")
    inspected = skopeo("inspect", *endpoint.tls(), "--creds", ":".join(creds("alice")),
                       f"docker://{endpoint.ref(team)}")  # fmt: skip
    assert json.loads(inspected.stdout)["Digest"] == image.manifest_digest
    server.stop()
    log = server.log_text()
    assert '" 429 ' not in log
    # the access log names who logged in at the token endpoint, and nobody for Og==
    assert re.search(r' alice "GET /auth/token(\?[^" ]*)?" 200 .* "skopeo/', log)
    assert re.search(r' - "GET /auth/token(\?[^" ]*)?" 200 ', log)
