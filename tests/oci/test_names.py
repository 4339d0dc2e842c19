"""Repository names and tags: the distribution spec's grammar, and path safety.

A valid name is joined under a storage root (``repositories/<name>/...``); the grammar alone
must guarantee that the result never escapes the root.
"""

from __future__ import annotations

import json
import os.path
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import errors
from dockyard.oci.names import (
    MAX_NAME_LENGTH,
    TAG_SEPARATOR,
    is_valid_name,
    is_valid_tag,
    validate_name,
    validate_tag,
)
from tests.oci import deterministic

ROOT = PurePosixPath("/srv/registry/docker/registry/v2/repositories")

_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
# A component exactly as the grammar builds it: alnum runs joined by separators.
components = st.builds(
    lambda first, rest: first + "".join(rest),
    _alnum,
    st.lists(st.tuples(_separator, _alnum).map("".join), max_size=3),
)
valid_names = (
    st.lists(components, min_size=1, max_size=5).map("/".join).filter(lambda n: len(n) <= 255)
)
# Text that looks like a name, with the characters that make paths dangerous mixed in.
name_like = st.text(alphabet="ab0/._-A \\\x00\n%é", max_size=40)
valid_tags = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("aZ9_"),
    st.text(alphabet="abcXYZ019._-", max_size=127),
)


def name_error(name: str) -> errors.RegistryError:
    with pytest.raises(errors.RegistryError) as caught:
        validate_name(name)
    return caught.value


@deterministic
@given(valid_names)
def test_names_built_from_the_grammar_are_accepted(name: str) -> None:
    assert validate_name(name) == name
    assert is_valid_name(name)


@deterministic
@given(st.one_of(name_like, st.text(max_size=40), valid_names))
def test_accepted_names_stay_under_the_storage_root(name: str) -> None:
    if not is_valid_name(name):
        assert name_error(name).error is errors.NAME_INVALID
        return
    assert validate_name(name) == name
    parts = name.split("/")
    assert all(part not in ("", ".", "..") for part in parts)
    assert not name.startswith("/")
    joined = ROOT / name
    assert joined.parts[: len(ROOT.parts)] == ROOT.parts
    assert ".." not in joined.parts
    # Normalising cannot move it either: there is nothing to collapse.
    assert os.path.normpath(str(joined)) == str(joined)
    assert str(joined).startswith(f"{ROOT}/")


@deterministic
@given(st.text(max_size=300))
def test_validate_name_and_is_valid_name_agree(name: str) -> None:
    try:
        validate_name(name)
    except errors.RegistryError as exc:
        assert exc.error is errors.NAME_INVALID
        assert not is_valid_name(name)
    else:
        assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "library/ubuntu",
        "a",
        "0",
        "a/b/c/d/e",
        "my-app",
        "my--app",
        "my.app",
        "my_app",
        "my__app",
        "a.b-c_d__e/f",
        "x" * MAX_NAME_LENGTH,
    ],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "/library/ubuntu",
        "library/ubuntu/",
        "library//ubuntu",
        ".",
        "..",
        "../etc",
        "a/../b",
        "a/./b",
        "a/..",
        "Library/ubuntu",
        "-a",
        "a-",
        ".a",
        "a.",
        "_a",
        "a_",
        "a___b",
        "a..b",
        "a._b",
        "a b",
        "a\\b",
        "a\x00b",
        "a%2fb",
        "café",
        "library/ubuntu\n",
        "a:b",
        "a@b",
        "x" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    error = name_error(name)
    assert error.error is errors.NAME_INVALID
    assert error.status == 400
    assert not is_valid_name(name)


def test_over_long_name_detail_is_bounded() -> None:
    error = name_error("a" * 100_000)
    assert error.error is errors.NAME_INVALID
    assert len(error.json_bytes()) < 1024


@deterministic
@given(valid_tags)
def test_tags_built_from_the_grammar_are_accepted(tag: str) -> None:
    assert validate_tag(tag) == tag
    assert is_valid_tag(tag)


@deterministic
@given(st.text(max_size=200))
def test_any_tag_is_accepted_only_if_it_fits_the_grammar(tag: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    fits = 1 <= len(tag) <= 128 and set(tag) <= allowed and tag[0] not in ".-"
    assert is_valid_tag(tag) is fits
    if not fits:
        with pytest.raises(errors.RegistryError) as caught:
            validate_tag(tag)
        assert caught.value.error is errors.TAG_INVALID


@pytest.mark.parametrize("tag", ["latest", "v1.0.0", "_", "A", "9", "1.0-rc.1_b", "a" * 128])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    ["", ".", "..", "-a", ".hidden", "a/b", "a:b", "a b", "a\n", "tág", "a" * 129, "sha256:abc"],
)
def test_invalid_tags_are_refused(tag: str) -> None:
    with pytest.raises(errors.RegistryError) as caught:
        validate_tag(tag)
    assert caught.value.error is errors.TAG_INVALID
    assert caught.value.status == 400


@deterministic
@given(st.lists(valid_tags, min_size=1, max_size=20))
def test_tags_joined_by_the_separator_are_a_json_array(tags: list[str]) -> None:
    """What a tag-list body is built from without json.dumps."""
    assert json.loads(f'["{TAG_SEPARATOR.join(tags)}"]') == tags
