"""A repository name can never reach outside the storage root, whatever a client sends."""

from __future__ import annotations

import posixpath

from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.oci.names import is_valid_name
from dockyard.storage import paths

ROOT = "/srv/registry"
# names built from the characters that matter for paths, plus ordinary ones
pieces = st.sampled_from(["a", "b", "0", ".", "..", "/", "_", "__", "-", "%2e", "%2f", "\\", "~"])
names = st.lists(pieces, min_size=1, max_size=12).map("".join)


@settings(max_examples=2000)
@given(names)
def test_every_valid_name_stays_under_the_root(name: str) -> None:
    if not is_valid_name(name):
        return
    for path in (paths.repository(name), paths.upload_dir(name, "id"), paths.tags_dir(name)):
        joined = posixpath.normpath(ROOT + path)
        assert joined.startswith(ROOT + paths.ROOT + "/repositories/"), (name, joined)
        assert ".." not in joined.split("/")
        assert joined == ROOT + path  # nothing for normpath to resolve


@given(names)
def test_no_valid_name_has_a_dot_component_or_an_encoded_separator(name: str) -> None:
    if is_valid_name(name):
        components = name.split("/")
        assert all(c not in (".", "..", "") for c in components)
        assert "%" not in name and "\\" not in name and not name.startswith("/")
