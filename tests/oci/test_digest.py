"""Digests: the image-spec grammar, the registered algorithms only, exact round-trips."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import errors
from dockyard.oci.digest import HEX_LENGTH, Digest, is_digest, new_hasher
from tests.oci import deterministic

LOWER_HEX = "0123456789abcdef"
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def hex_of(length: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=length // 2, max_size=length // 2).map(bytes.hex)


valid_digests = st.one_of(
    hex_of(64).map(lambda h: f"sha256:{h}"), hex_of(128).map(lambda h: f"sha512:{h}")
)
# Digests the OCI grammar allows: algorithm components joined by [+._-], any encoded part.
_component = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
grammatical_digests = st.builds(
    lambda first, rest, encoded: first + "".join(rest) + ":" + encoded,
    st.one_of(st.sampled_from(["sha256", "sha512", "sha384", "md5"]), _component),
    st.lists(st.tuples(st.sampled_from("+._-"), _component).map("".join), max_size=2),
    st.one_of(
        hex_of(64),
        hex_of(128),
        st.text(alphabet=LOWER_HEX + "ABCDEF=_-xyz", min_size=1, max_size=130),
    ),
)


def digest_error(text: str) -> errors.RegistryError:
    with pytest.raises(errors.RegistryError) as caught:
        Digest.parse(text)
    return caught.value


@deterministic
@given(valid_digests)
def test_valid_digest_round_trips(text: str) -> None:
    digest = Digest.parse(text)
    assert str(digest) == text
    assert Digest.parse(str(digest)) == digest
    assert digest.algorithm == text.split(":")[0]
    assert len(digest.hex) == HEX_LENGTH[digest.algorithm]


@deterministic
@given(st.binary(max_size=4096), st.sampled_from(["sha256", "sha512"]))
def test_digest_of_content_matches_hashlib(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert digest.hex == hashlib.new(algorithm, data).hexdigest()
    assert Digest.parse(str(digest)) == digest
    hasher = digest.hasher()
    hasher.update(data)
    assert hasher.hexdigest() == digest.hex


def test_empty_content_digest() -> None:
    assert str(Digest.of(b"")) == EMPTY_SHA256
    hasher = new_hasher()
    hasher.update(b"")
    assert f"sha256:{hasher.hexdigest()}" == EMPTY_SHA256


@deterministic
@given(st.text(max_size=300))
def test_any_text_parses_exactly_or_is_refused_with_digest_invalid(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except errors.RegistryError as exc:
        assert exc.error is errors.DIGEST_INVALID
        assert exc.status == 400
        return
    assert str(digest) == text


@deterministic
@given(grammatical_digests)
def test_grammatical_digests_of_other_shapes_are_refused(text: str) -> None:
    """The OCI grammar allows far more than a registry can verify; only exact forms pass."""
    algorithm, encoded = text.split(":", 1)
    expected = HEX_LENGTH.get(algorithm)
    acceptable = (
        expected is not None and len(encoded) == expected and set(encoded) <= set(LOWER_HEX)
    )
    if acceptable:
        assert str(Digest.parse(text)) == text
    else:
        assert digest_error(text).error is errors.DIGEST_INVALID


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,  # the registered algorithms are lowercase hex
        "sha256:" + "g" * 64,
        "SHA256:" + "a" * 64,
        "sha512:" + "a" * 64,
        "sha384:" + "a" * 96,  # grammatical, not registered
        "md5:" + "a" * 32,
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
        "sha256 :" + "a" * 64,
        "sha256::" + "a" * 64,
        "sha256:" + "a" * 32 + "/" + "a" * 31,
        "sha256:" + "٣" * 64,  # Unicode digits are not hex
        "sha256:" + "a" * 300,
        "x" * 10_000,
    ],
)
def test_malformed_digests_are_refused(text: str) -> None:
    error = digest_error(text)
    assert error.error is errors.DIGEST_INVALID
    assert error.body()["errors"][0]["code"] == "DIGEST_INVALID"
    # The echoed detail is bounded, whatever the client sent.
    assert len(error.json_bytes()) < 1024


def test_unsupported_algorithm_is_named_in_the_message() -> None:
    error = digest_error("sha384:" + "a" * 96)
    assert "sha384" in error.message


def test_digests_are_values() -> None:
    first = Digest.parse("sha256:" + "a" * 64)
    assert first == Digest("sha256", "a" * 64)
    assert hash(first) == hash(Digest("sha256", "a" * 64))
    assert first < Digest.parse("sha256:" + "b" * 64)
    with pytest.raises(AttributeError):
        first.hex = "b" * 64  # type: ignore[misc]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [("latest", False), ("v1.0", False), (EMPTY_SHA256, True), ("sha256:abc", True)],
)
def test_is_digest_tells_digests_from_tags(reference: str, expected: bool) -> None:
    assert is_digest(reference) is expected
