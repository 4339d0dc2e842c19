"""Editing htpasswd files: other lines kept, owner-only mode, read back by the verifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.auth.htpasswd import HtpasswdFile
from dockyard.auth.htpasswd_edit import (
    HtpasswdError,
    hash_password,
    list_users,
    read_lines,
    remove_user,
    set_user,
    validate_user,
    write_lines,
)


def test_set_remove_list_keep_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "htpasswd"
    lines, added = set_user([], "alice", hash_password("a", 4))
    assert added
    lines, added = set_user(["# team", *lines, "dave:$apr1$x$y"], "bob", "$2y$04$x")
    assert added
    lines, added = set_user(lines, "alice", hash_password("new", 4))
    assert not added
    write_lines(path, lines)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.startswith("# team\nalice:$2y$04$")
    assert list_users(read_lines(path)) == [
        ("alice", True),
        ("dave", False),
        ("bob", True),
    ]
    lines, removed = remove_user(read_lines(path), "dave")
    assert removed
    assert not remove_user(lines, "zed")[1]


def test_a_commented_out_entry_is_not_the_user(tmp_path: Path) -> None:
    lines = ["#alice:$2y$04$old", "  # alice:$2y$04$older"]
    lines, added = set_user(lines, "alice", "$2y$04$new")
    assert added
    assert lines == ["#alice:$2y$04$old", "  # alice:$2y$04$older", "alice:$2y$04$new"]
    assert list_users(lines) == [("alice", True)]
    assert remove_user(lines, "alice") == (lines[:2], True)


async def test_what_is_written_is_what_logs_in(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    lines, _ = set_user(read_lines(path), "alice", hash_password("s3cret", 4))
    write_lines(path, lines)
    users = HtpasswdFile(path)
    assert await users.verify("alice", "s3cret")
    assert not await users.verify("alice", "S3cret")


@pytest.mark.parametrize("user", ["", "a:b", "a b", "#x"])
def test_invalid_user_names(user: str) -> None:
    with pytest.raises(HtpasswdError):
        validate_user(user)
