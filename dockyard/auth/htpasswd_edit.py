"""Editing htpasswd files, for ``dockyard htpasswd add``, ``remove`` and ``list``.

Passwords are hashed with bcrypt and written as ``$2y$`` entries, as Apache's
``htpasswd -B`` writes them. Every other line (comments, other users' entries, entries
that are not bcrypt) is kept as it is, and the file is replaced in one step. Reading and
verifying the file at login is :mod:`dockyard.auth.htpasswd`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import bcrypt

from dockyard.auth.htpasswd import (
    BCRYPT_MAX_PASSWORD,
    DEFAULT_COST,
    HtpasswdError,
    parse_htpasswd,
)

__all__ = [
    "HtpasswdError",
    "hash_password",
    "list_users",
    "read_lines",
    "remove_user",
    "set_user",
    "validate_user",
    "write_lines",
]


def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    data = password.encode("utf-8")
    if len(data) > BCRYPT_MAX_PASSWORD:
        raise HtpasswdError(
            f"the password is {len(data)} bytes long; bcrypt uses at most "
            f"{BCRYPT_MAX_PASSWORD} bytes"
        )
    hashed = bcrypt.hashpw(data, bcrypt.gensalt(cost)).decode("ascii")
    # $2b$ and $2y$ are the same algorithm; $2y$ is what Apache's htpasswd -B writes.
    return "$2y$" + hashed.removeprefix("$2b$")


def read_lines(path: Path) -> list[str]:
    """The file's lines; none when it does not exist yet."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise HtpasswdError(f"{path}: cannot read: {exc}") from None


def validate_user(user: str) -> str:
    if not user or ":" in user or any(c.isspace() for c in user) or user.startswith("#"):
        raise HtpasswdError(
            f"{user!r} is not a valid user name (no ':', no spaces, not starting with '#')"
        )
    return user


def _entry_of(line: str) -> str | None:
    """The user a line is the entry of, or None for comments and other lines."""
    name, sep, _ = line.strip().partition(":")
    if not sep or not name or line.lstrip().startswith("#"):
        return None
    return name


def set_user(lines: Sequence[str], user: str, hashed: str) -> tuple[list[str], bool]:
    """The file's lines with ``user`` set to ``hashed``; True when the user was new."""
    out: list[str] = []
    found = False
    for line in lines:
        if _entry_of(line) == user:
            if not found:
                out.append(f"{user}:{hashed}")
            found = True
            continue
        out.append(line)
    if not found:
        out.append(f"{user}:{hashed}")
    return out, not found


def remove_user(lines: Sequence[str], user: str) -> tuple[list[str], bool]:
    """The file's lines without ``user``'s entries; True when there was one."""
    out = [line for line in lines if _entry_of(line) != user]
    return out, len(out) != len(lines)


def list_users(lines: Sequence[str]) -> list[tuple[str, bool]]:
    """(user, whether its entry is bcrypt) in file order."""
    parsed = parse_htpasswd("\n".join(lines))
    seen: dict[str, bool] = {}
    for line in lines:
        name = _entry_of(line)
        if name is not None and name not in seen:
            seen[name] = name in parsed.entries
    return list(seen.items())


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """Replace the file atomically, readable by its owner only (it holds password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    mode = 0o600
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode & 0o777
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
