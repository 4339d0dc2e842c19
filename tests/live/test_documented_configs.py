"""Every YAML example of docs/configuration.md, docs/deployment.md, docs/retention.md,
docs/notifications.md, docs/monitoring.md and docs/storage.md passes ``dockyard config
check`` and, unless marked, is started with ``dockyard serve``: it answers ``GET /v2/``
(401 when auth is on) and takes a blob push and pull (logging in where auth asks for it).

The examples run as written; what cannot work on a test machine is overridden with
``REGISTRY_*`` variables: ``http.addr`` (a free 127.0.0.1 port), the storage root (a temp
directory) and the files the example names (made here: TLS certificate and key, token
signing key, htpasswd files). An example that cannot run here (a PostgreSQL
``database.url``, say) is marked with the line ``<!-- example: check only -->`` right
before its block: it is only checked. An example naming a file this test cannot make
fails until the test learns to make it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.auth.htpasswd_edit import hash_password
from tests.e2e.server import REPO_ROOT, free_port
from tests.security.harness import SecureServer, basic_header
from tests.security.pki import Pki, key_pem, make_pki, new_key

DOCS = (
    "docs/configuration.md",
    "docs/deployment.md",
    "docs/retention.md",
    "docs/notifications.md",
    "docs/monitoring.md",
    "docs/storage.md",
)
CHECK_ONLY = "<!-- example: check only -->"
PASSWORD = "documented-example-password"
# Keys naming files this test can make, by the REGISTRY_* variable that overrides them.
MADE_FILES = {
    ("http", "tls", "certificate"): "REGISTRY_HTTP_TLS_CERTIFICATE",
    ("http", "tls", "key"): "REGISTRY_HTTP_TLS_KEY",
    ("auth", "htpasswd", "path"): "REGISTRY_AUTH_HTPASSWD_PATH",
    ("access", "signingkey"): "REGISTRY_ACCESS_SIGNINGKEY",
    ("access", "htpasswd"): "REGISTRY_ACCESS_HTPASSWD",
}
# Keys naming files it cannot make yet.
OTHER_FILES = (
    ("http", "tls", "clientcas"),
    ("auth", "token", "rootcertbundle"),
    ("auth", "token", "jwks"),
)


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    text: str
    check_only: bool

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def yaml_examples(doc: str, markdown: str | None = None) -> list[Example]:
    """The YAML blocks of ``doc`` (or of ``markdown``, named ``doc``)."""
    if markdown is None:
        markdown = (REPO_ROOT / doc).read_text(encoding="utf-8")
    lines = markdown.splitlines()
    examples = []
    for number, line in enumerate(lines):
        if line.strip() != "```yaml":
            continue
        end = lines.index("```", number + 1)
        before = [text for text in lines[:number] if text.strip()]
        marked = bool(before) and before[-1].strip() == CHECK_ONLY
        text = "\n".join(lines[number + 1 : end]) + "\n"
        examples.append(Example(doc, number + 1, text, marked))
    return examples


EXAMPLES = [example for doc in DOCS for example in yaml_examples(doc)]


def test_the_docs_have_examples() -> None:
    assert {example.doc for example in EXAMPLES} == set(DOCS)
    assert sum(not example.check_only for example in EXAMPLES) >= 5


def test_a_marked_example_is_only_checked() -> None:
    markdown = f"Run:\n\n```yaml\na: 1\n```\n\n{CHECK_ONLY}\n\n```yaml\nb: 2\n```\n"
    first, second = yaml_examples("x.md", markdown)
    assert (first.text, first.check_only, first.line) == ("a: 1\n", False, 3)
    assert (second.text, second.check_only) == ("b: 2\n", True)


def lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


@dataclass
class Setup:
    """The overrides that make an example runnable here, and how to log in to it."""

    env: dict[str, str]
    pki: Pki | None
    #: "basic" (auth.htpasswd), "token" (Dockyard's token service), "none", or None when
    #: nobody can log in (tokens from a token server we do not have)
    login: str | None
    user: str = ""
    service: str = ""


def users_of(access: dict[str, Any]) -> list[str]:
    """Every user an ``access`` section names, for its htpasswd file."""
    named = list(lookup(access, ("admins", "users")) or [])
    for members in (access.get("groups") or {}).values():
        named += members
    return sorted(set(named) - {"*"})


def write_htpasswd(path: Path, users: list[str]) -> Path:
    path.write_text("".join(f"{user}:{hash_password(PASSWORD, 4)}\n" for user in users))
    return path


def prepare(example: Example, workdir: Path, port: int) -> Setup:
    tree = yaml.safe_load(example.text)
    for path in OTHER_FILES:
        assert lookup(tree, path) is None, (
            f"{example.name} names {'.'.join(path)}: teach this test to make that file"
        )
    env = {"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"}
    if lookup(tree, ("http", "debug", "addr")):
        env["REGISTRY_HTTP_DEBUG_ADDR"] = f"127.0.0.1:{free_port()}"
    storage = lookup(tree, ("storage",))
    if storage == "filesystem" or (isinstance(storage, dict) and "filesystem" in storage):
        env["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"] = str(workdir / "store")
    made: dict[tuple[str, ...], Path] = {}
    pki = None
    if lookup(tree, ("http", "tls", "certificate")):
        pki = make_pki(workdir / "pki")
        made[("http", "tls", "certificate")] = pki.server_cert
        made[("http", "tls", "key")] = pki.server_key
    setup = Setup(env, pki, "none")
    if lookup(tree, ("auth", "htpasswd")):
        made[("auth", "htpasswd", "path")] = write_htpasswd(workdir / "htpasswd", ["docs"])
        setup.login, setup.user = "basic", "docs"
    elif lookup(tree, ("auth", "token")):
        setup.login, setup.service = None, lookup(tree, ("auth", "token", "service"))
    access = lookup(tree, ("access",))
    if access and access.get("signingkey"):
        signing = workdir / "signing.key"
        signing.write_bytes(key_pem(new_key("ec")))
        made[("access", "signingkey")] = signing
        users = users_of(access)
        made[("access", "htpasswd")] = write_htpasswd(workdir / "access-htpasswd", users)
        admins = lookup(access, ("admins", "users")) or []
        if admins:
            setup.login, setup.user = "token", admins[0]
    for key, file in made.items():
        assert lookup(tree, key) is not None, key
        env[MADE_FILES[key]] = str(file)
    return setup


def config_check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "config", "check", str(config)],
        env={**environment, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def credentials(server: SecureServer, setup: Setup, repo: str) -> dict[str, str]:
    """The Authorization header that lets the example's user push to ``repo``."""
    if setup.login == "basic":
        return {"Authorization": basic_header(setup.user, PASSWORD)}
    assert setup.login == "token"
    query = urllib.parse.urlencode(
        {"service": setup.service, "scope": f"repository:{repo}:pull,push"}
    )
    r = server.request(
        "GET", f"/auth/token?{query}", headers={"Authorization": basic_header(setup.user, PASSWORD)}
    )
    assert r.status == 200, r.body
    return {"Authorization": f"Bearer {json.loads(r.body)['token']}"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_documented_example(example: Example, tmp_path: Path) -> None:
    port = free_port()
    setup = prepare(example, tmp_path, port)
    config = tmp_path / "config.yml"
    config.write_text(example.text)

    checked = config_check(config, setup.env)
    assert checked.returncode == 0, checked.stderr
    assert "configuration is valid" in checked.stderr
    if example.check_only:
        return

    server = SecureServer("dockyard", tmp_path, port=port, env=setup.env, pki=setup.pki)
    server.start()
    try:
        r = server.request("GET", "/v2/", headers={"Authorization": ""})
        assert r.status == (200 if setup.login == "none" else 401), r.body
        if setup.login is None:
            return  # tokens come from a token server this test does not have
        repo = f"docs/example-{example.line}"
        headers = {} if setup.login == "none" else credentials(server, setup, repo)
        data = os.urandom(70_000)
        digest = server.push_blob(repo, data, headers=headers)
        pulled = server.get_blob(repo, digest, headers=headers)
        assert pulled.status == 200 and pulled.body == data
    finally:
        server.stop()
