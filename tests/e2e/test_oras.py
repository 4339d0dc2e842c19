"""oras (Python SDK): artifacts, chunked uploads, ``subject``, and the OCI 1.1 referrers API."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import oras.client
import oras.oci
import pytest

from .images import OCI_INDEX, OCI_MANIFEST, sha256_digest
from .server import SERVER_KIND, RegistryServer

pytestmark = pytest.mark.e2e

#: registry:2 (Distribution 2.8) has no referrers API: Dockyard-only
dockyard_only = pytest.mark.xfail(
    SERVER_KIND == "registry2",
    reason="Distribution 2.8 has no OCI 1.1 referrers API",
    strict=True,
)

SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"


@pytest.fixture
def oras_client(registry: RegistryServer) -> Iterator[oras.client.OrasClient]:
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    try:
        yield client
    finally:
        client.session.close()


def _push(
    client: oras.client.OrasClient,
    target: str,
    files: list[Path],
    *,
    config: tuple[Path, str] | None = None,
    annotations: dict[str, str] | None = None,
    subject: oras.oci.Subject | None = None,
    chunked: bool = False,
    chunk_size: int = 64 * 1024,
) -> tuple[str, dict[str, str]]:
    """Push an artifact; returns (manifest digest, response headers)."""
    response = client.push(
        target=target,
        files=[str(f) for f in files],
        disable_path_validation=True,
        manifest_config=f"{config[0]}:{config[1]}" if config else None,
        manifest_annotations=annotations,
        subject=subject,
        do_chunked=chunked,
        chunk_size=chunk_size,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    headers = {k.lower(): v for k, v in response.headers.items()}
    return headers["docker-content-digest"], headers


def _subject(registry: RegistryServer, repo: str, reference: str) -> oras.oci.Subject:
    """The subject descriptor of a manifest, from the exact bytes the registry serves."""
    r = registry.get_manifest(repo, reference)
    assert r.status == 200
    return oras.oci.Subject(
        mediaType=r.headers["content-type"].split(";")[0],
        digest=sha256_digest(r.body),
        size=len(r.body),
    )


def test_push_and_pull_artifact(
    oras_client: oras.client.OrasClient, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    small = tmp_path / "notes.txt"
    small.write_text("an artifact, not an image\n")
    big = tmp_path / "model.bin"
    big.write_bytes(os.urandom(300 * 1024))  # several 64 KiB chunks
    target = f"{registry.host}/{repo}:v1"

    digest, _ = _push(
        oras_client,
        target,
        [small, big],
        annotations={"org.opencontainers.image.description": "e2e"},
        chunked=True,
    )
    manifest = oras_client.get_manifest(target)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["annotations"]["org.opencontainers.image.description"] == "e2e"
    titles = {
        layer["annotations"]["org.opencontainers.image.title"]: layer
        for layer in manifest["layers"]
    }
    assert set(titles) == {"notes.txt", "model.bin"}
    assert titles["model.bin"]["digest"] == sha256_digest(big.read_bytes())
    assert registry.get_manifest(repo, "v1").headers["docker-content-digest"] == digest

    out = tmp_path / "out"
    files = oras_client.pull(target=target, outdir=str(out))
    assert sorted(Path(f).name for f in files) == ["model.bin", "notes.txt"]
    assert (out / "notes.txt").read_bytes() == small.read_bytes()
    assert (out / "model.bin").read_bytes() == big.read_bytes()

    _push(oras_client, f"{registry.host}/{repo}:v2", [small])
    assert sorted(oras_client.get_tags(f"{registry.host}/{repo}")) == ["v1", "v2"]


@pytest.mark.parametrize("chunk_size", [None, 9 * 1024 * 1024], ids=["monolithic", "chunked"])
def test_large_artifact_round_trip(
    oras_client: oras.client.OrasClient,
    registry: RegistryServer,
    repo: str,
    tmp_path: Path,
    chunk_size: int | None,
) -> None:
    """Blobs large enough to be read straight from the socket (Dockyard takes over bodies
    of 8 MiB and more): stored and served byte for byte, over reconnecting requests."""
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024 + 12_345))
    target = f"{registry.host}/{repo}:large"
    if chunk_size is None:
        _push(oras_client, target, [big])
    else:
        _push(oras_client, target, [big], chunked=True, chunk_size=chunk_size)
    out = tmp_path / "out"
    oras_client.pull(target=target, outdir=str(out))
    assert (out / "weights.bin").read_bytes() == big.read_bytes()


def test_delete_tag(
    oras_client: oras.client.OrasClient, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("delete me\n")
    _push(oras_client, f"{registry.host}/{repo}:gone", [f])
    f.write_text("keep me\n")
    _push(oras_client, f"{registry.host}/{repo}:kept", [f])
    assert oras_client.delete_tags(f"{registry.host}/{repo}", "gone") == ["gone"]
    assert registry.get_manifest(repo, "gone").status == 404
    assert oras_client.get_tags(f"{registry.host}/{repo}") == ["kept"]


def test_push_artifact_with_subject(
    oras_client: oras.client.OrasClient, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    base = tmp_path / "app.txt"
    base.write_text("the thing being signed\n")
    _push(oras_client, f"{registry.host}/{repo}:app", [base])
    subject = _subject(registry, repo, "app")

    sig = tmp_path / "app.sig"
    sig.write_bytes(os.urandom(64))
    cfg = tmp_path / "sig-config.json"
    cfg.write_text("{}")
    sig_digest, _ = _push(
        oras_client,
        f"{registry.host}/{repo}:sig",
        [sig],
        config=(cfg, SIGNATURE_TYPE),
        subject=subject,
    )

    r = registry.get_manifest(repo, sig_digest)
    assert r.status == 200
    manifest = json.loads(r.body)
    assert manifest["subject"] == {
        "mediaType": subject.mediaType,
        "digest": subject.digest,
        "size": subject.size,
    }
    assert manifest["config"]["mediaType"] == SIGNATURE_TYPE
    # the subject is untouched
    assert _subject(registry, repo, "app") == subject


@dockyard_only
def test_referrers(
    oras_client: oras.client.OrasClient, registry: RegistryServer, repo: str, tmp_path: Path
) -> None:
    base = tmp_path / "app.txt"
    base.write_text("an image with a signature and an sbom\n")
    _push(oras_client, f"{registry.host}/{repo}:app", [base])
    subject = _subject(registry, repo, "app")

    # nothing refers to it yet: an empty index, not a 404
    r = registry.request("GET", f"/v2/{repo}/referrers/{subject.digest}")
    assert r.status == 200, (r.status, r.body)
    assert r.headers["content-type"].split(";")[0] == OCI_INDEX
    assert json.loads(r.body)["manifests"] == []

    pushed = {}
    for artifact_type, name in ((SIGNATURE_TYPE, "app.sig"), (SBOM_TYPE, "app.sbom")):
        payload = tmp_path / name
        payload.write_bytes(os.urandom(128))
        cfg = tmp_path / f"{name}.config.json"
        cfg.write_text("{}")
        digest, headers = _push(
            oras_client,
            f"{registry.host}/{repo}:{name.replace('.', '-')}",
            [payload],
            config=(cfg, artifact_type),
            annotations={"org.example.kind": name},
            subject=subject,
        )
        # OCI 1.1: a registry that processes `subject` says so
        assert headers.get("oci-subject") == subject.digest
        pushed[artifact_type] = (digest, registry.get_manifest(repo, digest).body)

    r = registry.request("GET", f"/v2/{repo}/referrers/{subject.digest}")
    assert r.status == 200
    assert r.headers["content-type"].split(";")[0] == OCI_INDEX
    index = json.loads(r.body)
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_type = {d["artifactType"]: d for d in index["manifests"]}
    assert set(by_type) == {SIGNATURE_TYPE, SBOM_TYPE}
    for artifact_type, (digest, body) in pushed.items():
        descriptor = by_type[artifact_type]
        assert descriptor["mediaType"] == OCI_MANIFEST
        assert descriptor["digest"] == digest
        assert descriptor["size"] == len(body)
        assert descriptor["annotations"]["org.example.kind"] in ("app.sig", "app.sbom")

    # filtering by artifactType
    query = urllib.parse.urlencode({"artifactType": SIGNATURE_TYPE})  # "+" must be %2B
    r = registry.request("GET", f"/v2/{repo}/referrers/{subject.digest}?{query}")
    assert r.status == 200
    filtered = json.loads(r.body)["manifests"]
    assert [d["digest"] for d in filtered] == [pushed[SIGNATURE_TYPE][0]]
    assert "artifactType" in r.headers.get("oci-filters-applied", "")
