"""Manifest parsing: Docker schema2 and lists, OCI manifests and indexes, artifacts.

Every refusal is MANIFEST_INVALID with a message that says what is wrong; nothing else may
escape :func:`parse_manifest`, whatever bytes a client pushes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import errors, mediatypes
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import (
    DEFAULT_MAX_MANIFEST_BYTES,
    Descriptor,
    ParsedManifest,
    UrlPolicy,
    parse_descriptor,
    parse_manifest,
)
from tests.oci import deterministic

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def descriptor(data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


CONFIG = descriptor(b'{"architecture":"amd64","os":"linux"}', DOCKER_CONFIG)
OCI_CONFIG = descriptor(b'{"architecture":"arm64","os":"linux"}', mediatypes.OCI_CONFIG)
EMPTY_CONFIG = descriptor(b"{}", mediatypes.OCI_EMPTY)
LAYERS = [descriptor(b"layer one", DOCKER_LAYER), descriptor(b"layer two", DOCKER_LAYER)]
OCI_LAYERS = [descriptor(b"oci layer", OCI_LAYER)]
SUBJECT = descriptor(b"the subject manifest", mediatypes.OCI_MANIFEST)


def docker_manifest(**changes: Any) -> dict[str, Any]:
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST,
        "config": CONFIG,
        "layers": LAYERS,
    }
    return {**body, **changes}


def oci_manifest(**changes: Any) -> dict[str, Any]:
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": OCI_CONFIG,
        "layers": OCI_LAYERS,
    }
    return {**body, **changes}


def index(media_type: str = mediatypes.OCI_INDEX, **changes: Any) -> dict[str, Any]:
    children = [
        descriptor(
            b"amd64 manifest",
            mediatypes.OCI_MANIFEST,
            platform={"architecture": "amd64", "os": "linux"},
        ),
        descriptor(
            b"arm64 manifest",
            mediatypes.OCI_MANIFEST,
            platform={"architecture": "arm64", "os": "linux", "variant": "v8"},
        ),
    ]
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": children, **changes}


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def parse(body: Any, content_type: str | None = None, **kwargs: Any) -> ParsedManifest:
    media_type = body.get("mediaType") if isinstance(body, dict) else None
    return parse_manifest(encode(body), content_type or media_type, **kwargs)


def refusal(payload: bytes, content_type: str | None, **kwargs: Any) -> errors.RegistryError:
    with pytest.raises(errors.RegistryError) as caught:
        parse_manifest(payload, content_type, **kwargs)
    error = caught.value
    assert error.error is errors.MANIFEST_INVALID, error.message
    assert error.status == 400
    return error


def refused(body: Any, content_type: str | None = None, **kwargs: Any) -> errors.RegistryError:
    media_type = body.get("mediaType") if isinstance(body, dict) else None
    return refusal(encode(body), content_type or media_type, **kwargs)


def digests(descriptors: Any) -> list[str]:
    return [str(d.digest) for d in descriptors]


# -- the four kinds -----------------------------------------------------------------------


def test_docker_schema2_manifest() -> None:
    parsed = parse(docker_manifest())
    assert parsed.media_type == mediatypes.DOCKER_MANIFEST
    assert not parsed.is_index
    assert parsed.config is not None
    assert str(parsed.config.digest) == CONFIG["digest"]
    assert parsed.config.size == CONFIG["size"]
    assert digests(parsed.layers) == [layer["digest"] for layer in LAYERS]
    assert parsed.manifests == ()
    assert parsed.subject is None
    assert digests(parsed.blob_references()) == [CONFIG["digest"], *digests(parsed.layers)]
    assert parsed.referrer_artifact_type() is None


def test_docker_manifest_list() -> None:
    body = index(mediatypes.DOCKER_MANIFEST_LIST)
    parsed = parse(body)
    assert parsed.media_type == mediatypes.DOCKER_MANIFEST_LIST
    assert parsed.is_index
    assert parsed.config is None and parsed.layers == ()
    assert digests(parsed.manifests) == [child["digest"] for child in body["manifests"]]
    assert parsed.manifests[1].platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert parsed.blob_references() == []


def test_oci_image_manifest() -> None:
    parsed = parse(oci_manifest(annotations={"org.opencontainers.image.title": "demo"}))
    assert parsed.media_type == mediatypes.OCI_MANIFEST
    assert parsed.annotations == {"org.opencontainers.image.title": "demo"}
    assert digests(parsed.blob_references()) == [OCI_CONFIG["digest"], OCI_LAYERS[0]["digest"]]
    # Without artifactType, a referrers listing shows the config's media type.
    assert parsed.referrer_artifact_type() == mediatypes.OCI_CONFIG


def test_oci_index() -> None:
    parsed = parse(index(annotations={"a": "b"}))
    assert parsed.media_type == mediatypes.OCI_INDEX
    assert parsed.is_index
    assert len(parsed.manifests) == 2
    assert parsed.annotations == {"a": "b"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({k: v for k, v in oci_manifest().items() if k != "mediaType"}, mediatypes.OCI_MANIFEST),
        ({k: v for k, v in index().items() if k != "mediaType"}, mediatypes.OCI_INDEX),
    ],
)
@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_oci_media_type_may_be_omitted(
    body: dict[str, Any], expected: str, content_type: str | None
) -> None:
    assert parse_manifest(encode(body), content_type).media_type == expected


def test_content_type_supplies_a_missing_media_type() -> None:
    body = {k: v for k, v in docker_manifest().items() if k != "mediaType"}
    parsed = parse_manifest(encode(body), mediatypes.DOCKER_MANIFEST)
    assert parsed.media_type == mediatypes.DOCKER_MANIFEST


@pytest.mark.parametrize(
    "content_type",
    [
        f"{mediatypes.OCI_MANIFEST}; charset=utf-8",
        mediatypes.OCI_MANIFEST.upper(),
        f"  {mediatypes.OCI_MANIFEST}  ",
        "application/json",
    ],
)
def test_content_type_parameters_and_case_are_ignored(content_type: str) -> None:
    assert parse(oci_manifest(), content_type).media_type == mediatypes.OCI_MANIFEST


# -- artifacts (OCI 1.1) ------------------------------------------------------------------


def test_artifact_with_artifact_type_subject_and_empty_config() -> None:
    body = oci_manifest(
        artifactType=SIGNATURE,
        config=EMPTY_CONFIG,
        layers=[descriptor(b"signature payload", SIGNATURE)],
        subject=SUBJECT,
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    )
    parsed = parse(body)
    assert parsed.artifact_type == SIGNATURE
    assert parsed.referrer_artifact_type() == SIGNATURE
    assert parsed.subject is not None
    assert str(parsed.subject.digest) == SUBJECT["digest"]
    assert parsed.subject.media_type == mediatypes.OCI_MANIFEST
    assert parsed.config is not None and parsed.config.media_type == mediatypes.OCI_EMPTY
    assert parsed.config.size == 2
    # The empty config is a real blob ("{}"); the repository must hold it.
    assert EMPTY_CONFIG["digest"] in digests(parsed.blob_references())


def test_artifact_without_layers() -> None:
    body = oci_manifest(artifactType=SBOM, config=EMPTY_CONFIG, subject=SUBJECT)
    del body["layers"]
    parsed = parse(body)
    assert parsed.layers == ()
    assert digests(parsed.blob_references()) == [EMPTY_CONFIG["digest"]]


def test_artifact_type_from_config_media_type() -> None:
    body = oci_manifest(config=descriptor(b"{}", SBOM), subject=SUBJECT)
    assert parse(body).referrer_artifact_type() == SBOM


def test_index_as_an_artifact() -> None:
    parsed = parse(index(artifactType=SBOM, subject=SUBJECT))
    assert parsed.is_index
    assert parsed.referrer_artifact_type() == SBOM
    assert parsed.subject is not None


@pytest.mark.parametrize("artifact_type", [7, "", "no-slash", "a/b c", "/x", "a/" + "b" * 200])
def test_malformed_artifact_type_is_refused(artifact_type: Any) -> None:
    error = refused(oci_manifest(artifactType=artifact_type))
    assert "artifactType" in error.message


@pytest.mark.parametrize(
    "subject",
    [
        "sha256:" + "a" * 64,
        {"mediaType": mediatypes.OCI_MANIFEST, "size": 1},
        {**SUBJECT, "digest": "sha256:nothex"},
    ],
)
def test_malformed_subject_is_refused(subject: Any) -> None:
    error = refused(oci_manifest(subject=subject))
    assert "subject" in error.message


# -- media types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (oci_manifest(), mediatypes.DOCKER_MANIFEST),
        (docker_manifest(), mediatypes.OCI_MANIFEST),
        (index(), mediatypes.OCI_MANIFEST),
        (index(mediatypes.DOCKER_MANIFEST_LIST), mediatypes.OCI_INDEX),
    ],
)
def test_media_type_must_match_content_type(body: dict[str, Any], content_type: str) -> None:
    error = refused(body, content_type)
    assert error.detail == {"mediaType": body["mediaType"], "contentType": content_type}
    assert "does not match" in error.message


@pytest.mark.parametrize(
    "content_type",
    [mediatypes.DOCKER_SCHEMA1, mediatypes.DOCKER_SCHEMA1_SIGNED, None, "application/json"],
)
def test_schema1_is_refused(content_type: str | None) -> None:
    body = {
        "schemaVersion": 1,
        "name": "library/ubuntu",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": LAYERS[0]["digest"]}],
        "history": [{"v1Compatibility": "{}"}],
    }
    error = refusal(encode(body), content_type)
    assert "schema1" in error.message


def test_schema1_content_type_is_refused_whatever_the_body() -> None:
    error = refusal(encode(docker_manifest()), mediatypes.DOCKER_SCHEMA1_SIGNED)
    assert "schema1" in error.message


@pytest.mark.parametrize(
    "media_type",
    ["application/vnd.example+json", "text/plain", mediatypes.OCI_CONFIG, mediatypes.OCI_EMPTY],
)
def test_unsupported_media_types_are_refused(media_type: str) -> None:
    error = refused(oci_manifest(mediaType=media_type))
    assert "unsupported manifest media type" in error.message


def test_unsupported_content_type_without_media_type_is_refused() -> None:
    body = {k: v for k, v in oci_manifest().items() if k != "mediaType"}
    refusal(encode(body), "text/plain")


def test_media_type_must_be_a_string() -> None:
    refused(oci_manifest(mediaType=["x"]), mediatypes.OCI_MANIFEST)


# -- structure ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, 1.5, 3, "2", [2]])
def test_schema_version_must_be_2(version: Any) -> None:
    body = oci_manifest(schemaVersion=version)
    if version is None:
        del body["schemaVersion"]
    refused(body)


def test_index_must_not_carry_config_or_layers() -> None:
    refused(index(config=OCI_CONFIG))
    refused(index(layers=OCI_LAYERS))


def test_index_needs_manifests() -> None:
    body = index()
    del body["manifests"]
    error = refusal(encode(body), mediatypes.OCI_INDEX)
    assert "manifests" in error.message


def test_image_manifest_must_not_carry_manifests() -> None:
    refused(oci_manifest(manifests=[]))


def test_image_manifest_needs_a_config() -> None:
    body = oci_manifest()
    del body["config"]
    assert "config" in refused(body).message
    assert "config" in refused(oci_manifest(config=None)).message


def test_docker_manifest_needs_layers() -> None:
    body = docker_manifest()
    del body["layers"]
    assert "layers" in refused(body).message


@pytest.mark.parametrize("layers", [{}, "layer", 3])
def test_layers_must_be_a_list(layers: Any) -> None:
    refused(oci_manifest(layers=layers))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mediaType", None),
        ("mediaType", ""),
        ("mediaType", "layer"),
        ("mediaType", 5),
        ("digest", None),
        ("digest", 5),
        ("digest", "sha256:short"),
        ("digest", "md5:" + "a" * 32),
        ("size", None),
        ("size", -1),
        ("size", 1.0),
        ("size", "12"),
        ("size", True),
        ("annotations", {"a": 1}),
        ("annotations", ["a"]),
        ("urls", "http://example.com/layer"),
        ("urls", [1]),
        ("platform", "linux/amd64"),
        ("artifactType", 5),
    ],
)
def test_malformed_descriptor_fields_are_refused(field: str, value: Any) -> None:
    layer = dict(OCI_LAYERS[0])
    if value is None:
        del layer[field]
    else:
        layer[field] = value
    error = refused(oci_manifest(layers=[layer]))
    assert error.message.startswith("layers[0]")


@pytest.mark.parametrize("child", ["sha256:" + "a" * 64, None, 5])
def test_index_children_must_be_descriptors(child: Any) -> None:
    error = refused(index(manifests=[child]))
    assert "manifests[0]" in error.message


def test_annotations_must_be_strings() -> None:
    refused(oci_manifest(annotations={"a": ["b"]}))
    refused(oci_manifest(annotations="a=b"))


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[]", b"null", b'"manifest"', b"2", b"\xff\xfe\x00", b'{"a":1', b"{} {}"],
)
def test_non_object_payloads_are_refused(payload: bytes) -> None:
    refusal(payload, mediatypes.OCI_MANIFEST)


def test_size_limit() -> None:
    payload = encode(oci_manifest())
    assert parse_manifest(payload, None, max_bytes=len(payload)).media_type
    error = refusal(payload, None, max_bytes=len(payload) - 1)
    assert error.detail == {"size": len(payload), "limit": len(payload) - 1}


def test_default_size_limit_is_4_mib() -> None:
    assert DEFAULT_MAX_MANIFEST_BYTES == 4 * 1024 * 1024
    padding = "x" * DEFAULT_MAX_MANIFEST_BYTES
    refused(oci_manifest(annotations={"padding": padding}))


@pytest.mark.parametrize(
    "payload",
    [b"[" * 100_000 + b"]" * 100_000, b'{"schemaVersion": ' + b"9" * 5000 + b"}"],
    ids=["deeply-nested", "huge-integer"],
)
def test_hostile_json_is_manifest_invalid(payload: bytes) -> None:
    refusal(payload, mediatypes.OCI_MANIFEST)


# -- foreign layers and URLs --------------------------------------------------------------


def test_foreign_layers_are_not_blob_references() -> None:
    foreign = descriptor(
        b"windows base",
        mediatypes.DOCKER_FOREIGN_LAYER,
        urls=["https://mcr.microsoft.com/v2/windows/blobs/x"],
    )
    nondistributable = descriptor(
        b"nondistributable", OCI_NONDISTRIBUTABLE, urls=["https://example.com/layer"]
    )
    parsed = parse(docker_manifest(layers=[*LAYERS, foreign, nondistributable]))
    assert len(parsed.layers) == 4
    assert parsed.layers[2].urls == ("https://mcr.microsoft.com/v2/windows/blobs/x",)
    assert digests(parsed.blob_references()) == [CONFIG["digest"]] + [
        layer["digest"] for layer in LAYERS
    ]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://example.com/layer.tar.gz", True),
        ("http://example.com/layer", True),
        ("ftp://example.com/layer", False),
        ("file:///etc/passwd", False),
        ("https://example.com/layer#fragment", False),
        ("https:///no-host", False),
        ("example.com/layer", False),
        ("", False),
    ],
)
def test_default_url_policy(url: str, allowed: bool) -> None:
    assert UrlPolicy().allows(url) is allowed


def test_url_policy_allow_and_deny() -> None:
    policy = UrlPolicy(
        allow=(re.compile(r"^https://mcr\.microsoft\.com/"), re.compile(r"^https://example\.com/")),
        deny=(re.compile(r"/private/"),),
    )
    assert policy.allows("https://mcr.microsoft.com/v2/windows/blobs/x")
    assert policy.allows("https://example.com/public/layer")
    assert not policy.allows("https://example.com/private/layer")
    assert not policy.allows("https://elsewhere.org/layer")
    assert not policy.allows("http://mcr.microsoft.com/v2/windows/blobs/x")
    # An empty allow list admits nothing (registry:2's default with validation on).
    assert not UrlPolicy(allow=()).allows("https://example.com/layer")
    deny_only = UrlPolicy(deny=(re.compile(r"evil"),))
    assert deny_only.allows("https://good.example/layer")
    assert not deny_only.allows("https://evil.example/layer")


def test_manifest_urls_are_judged_by_the_policy() -> None:
    foreign = descriptor(
        b"foreign", mediatypes.DOCKER_FOREIGN_LAYER, urls=["https://example.com/private/x"]
    )
    body = docker_manifest(layers=[foreign])
    policy = UrlPolicy(deny=(re.compile("/private/"),))
    error = refused(body, url_allowed=policy.allows)
    assert error.message.startswith("layers[0] url")
    assert parse(body, url_allowed=UrlPolicy().allows).layers[0].urls == (
        "https://example.com/private/x",
    )
    assert parse(body).layers  # the default policy: any http(s) URL without a fragment


def test_manifest_with_a_non_http_url_is_refused_by_default() -> None:
    foreign = descriptor(b"foreign", mediatypes.DOCKER_FOREIGN_LAYER, urls=["ftp://x/y"])
    refused(docker_manifest(layers=[foreign]))


# -- descriptors --------------------------------------------------------------------------


def test_parse_descriptor() -> None:
    value = descriptor(
        b"payload", SBOM, artifactType=SBOM, annotations={"k": "v"}, urls=["https://a.example/b"]
    )
    parsed = parse_descriptor(value, "thing")
    assert parsed == Descriptor(
        media_type=SBOM,
        digest=Digest.of(b"payload"),
        size=7,
        artifact_type=SBOM,
        annotations={"k": "v"},
        urls=("https://a.example/b",),
    )
    bare = parse_descriptor(descriptor(b"x", SBOM), "thing")
    assert (bare.artifact_type, bare.annotations, bare.urls) == (None, {}, ())


def test_descriptor_error_names_where() -> None:
    with pytest.raises(errors.RegistryError) as caught:
        parse_descriptor({"mediaType": SBOM}, "manifests[3]")
    assert caught.value.error is errors.MANIFEST_INVALID
    assert caught.value.message.startswith("manifests[3].digest")


# -- anything a client can send -----------------------------------------------------------

_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text()
)
_json = st.recursive(
    _json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_fields = {
    "schemaVersion": st.one_of(st.just(2), _json),
    "mediaType": st.one_of(st.sampled_from(sorted(mediatypes.MANIFESTS)), _json),
    "config": st.one_of(st.just(OCI_CONFIG), _json),
    "layers": st.one_of(st.just(OCI_LAYERS), st.lists(st.just(LAYERS[0]) | _json), _json),
    "manifests": st.one_of(st.just(index()["manifests"]), _json),
    "subject": st.one_of(st.just(SUBJECT), _json),
    "artifactType": st.one_of(st.just(SBOM), _json),
    "annotations": st.one_of(st.just({"a": "b"}), _json),
}
manifest_like = st.fixed_dictionaries({}, optional=_fields)
content_types = st.one_of(
    st.none(), st.sampled_from(sorted(mediatypes.MANIFESTS | mediatypes.SCHEMA1)), st.text()
)


@deterministic
@given(manifest_like, content_types)
def test_any_manifest_parses_or_is_manifest_invalid(
    body: dict[str, Any], content_type: str | None
) -> None:
    try:
        parsed = parse_manifest(encode(body), content_type)
    except errors.RegistryError as exc:
        assert exc.error is errors.MANIFEST_INVALID
        json.dumps(exc.body())  # the error body is always renderable
        return
    assert parsed.media_type in mediatypes.MANIFESTS
    assert body["schemaVersion"] == 2
    if parsed.is_index:
        assert parsed.config is None and parsed.layers == ()
    else:
        assert parsed.config is not None and parsed.manifests == ()


@deterministic
@given(st.binary(max_size=200), content_types)
def test_any_bytes_parse_or_are_manifest_invalid(payload: bytes, content_type: str | None) -> None:
    try:
        parse_manifest(payload, content_type)
    except errors.RegistryError as exc:
        assert exc.error is errors.MANIFEST_INVALID


def test_foreign_layer_without_urls_is_refused() -> None:
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": "sha256:" + "a" * 64,
            "size": 2,
        },
        "layers": [
            {
                "mediaType": mediatypes.DOCKER_FOREIGN_LAYER,
                "digest": "sha256:" + "b" * 64,
                "size": 10,
            }
        ],
    }
    with pytest.raises(errors.RegistryError) as caught:
        parse_manifest(json.dumps(body).encode(), mediatypes.DOCKER_MANIFEST)
    assert caught.value.error is errors.MANIFEST_INVALID
    assert "foreign layer without urls" in caught.value.message
