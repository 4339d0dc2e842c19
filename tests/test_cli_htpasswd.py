"""``dockyard htpasswd add|remove|list``, run as a user runs it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import bcrypt


def dockyard(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def test_add_change_list_remove(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "htpasswd"
    result = dockyard("htpasswd", "add", str(path), "alice", "--password-stdin", "--cost", "4",
                      stdin="first secret\n")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"added user alice in {path}\n"
    assert "first secret" not in result.stdout + result.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "alice" and hashed.startswith("$2y$04$")
    assert bcrypt.checkpw(b"first secret", hashed.encode())

    dockyard("htpasswd", "add", str(path), "bob", "--password-stdin", stdin="b\n")
    result = dockyard("htpasswd", "add", str(path), "alice", "--password-stdin", stdin="second\n")
    assert result.stdout == f"changed the password of alice in {path}\n"
    lines = path.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["alice", "bob"]
    assert bcrypt.checkpw(b"second", lines[0].split(":", 1)[1].encode())
    assert lines[1].split(":", 1)[1].startswith("$2y$10$")  # the default cost

    with path.open("a") as handle:
        handle.write("old:$apr1$abc$def\n")
    result = dockyard("htpasswd", "list", str(path))
    assert result.stdout == "alice\nbob\nold\t(not bcrypt: cannot log in)\n"

    result = dockyard("htpasswd", "remove", str(path), "bob")
    assert result.returncode == 0
    assert dockyard("htpasswd", "list", str(path)).stdout.startswith("alice\nold")
    result = dockyard("htpasswd", "remove", str(path), "bob")
    assert result.returncode == 1
    assert f"{path} has no user bob" in result.stderr


def test_refusals(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    result = dockyard("htpasswd", "add", str(path), "a:b", "--password-stdin", stdin="x\n")
    assert result.returncode == 1 and "not a valid user name" in result.stderr
    result = dockyard("htpasswd", "add", str(path), "alice", "--password-stdin", stdin="\n")
    assert result.returncode == 1 and "must not be empty" in result.stderr
    long = "y" * 73
    result = dockyard("htpasswd", "add", str(path), "alice", "--password-stdin", stdin=long)
    assert result.returncode == 1 and "at most 72 bytes" in result.stderr
    assert long not in result.stderr
    assert not path.exists()
    result = dockyard("htpasswd", "list", str(path))
    assert result.returncode == 1 and "no such file" in result.stderr


def test_add_without_a_terminal_asks_for_password_stdin(tmp_path: Path) -> None:
    """No terminal (a new session has none) and no --password-stdin: one clear error, not
    getpass's warning and a prompt that echoes what it reads from stdin."""
    path = tmp_path / "htpasswd"
    argv = [sys.executable, "-m", "dockyard", "htpasswd", "add", str(path), "alice"]
    for stdin in ({"stdin": subprocess.DEVNULL}, {"input": "secret\n"}):
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, start_new_session=True, **stdin
        )
        assert result.returncode == 1
        assert result.stderr == (
            "Error: stdin is not a terminal, so the password cannot be asked for: "
            "pass --password-stdin and write the password on stdin\n"
        )
        assert result.stdout == ""
    assert not path.exists()


def test_add_prompts_twice_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    argv = [sys.executable, "-m", "dockyard", "htpasswd", "add", str(path), "alice", "--cost=4"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child, on the pseudo-terminal as its controlling terminal
        os.execv(sys.executable, argv)
    seen = b""
    answers = {b"Password: ": b"tty secret\n", b"Repeat for confirmation: ": b"tty secret\n"}
    while True:
        ready, _, _ = select.select([terminal], [], [], 60)
        assert ready, f"the command stopped talking: {seen!r}"
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        for prompt, answer in list(answers.items()):
            if seen.endswith(prompt):
                os.write(terminal, answer)
                del answers[prompt]
    os.close(terminal)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert not answers
    assert b"tty secret" not in seen  # not echoed
    assert f"added user alice in {path}".encode() in seen
    assert bcrypt.checkpw(b"tty secret", path.read_text().strip().split(":", 1)[1].encode())


def test_serve_refuses_a_missing_htpasswd_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  inmemory:\nhttp:\n  addr: 127.0.0.1:0\n"
        f"auth:\n  htpasswd:\n    realm: r\n    path: {tmp_path / 'missing'}\n"
    )
    result = dockyard("serve", str(config))
    assert result.returncode == 1
    assert "auth.htpasswd.path: htpasswd" in result.stderr
    assert "cannot read" in result.stderr


def test_config_check_reads_the_files_the_config_names(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    users = tmp_path / "htpasswd"
    config.write_text(
        "version: 0.1\nstorage:\n  inmemory:\n"
        f"auth:\n  htpasswd:\n    realm: r\n    path: {users}\n"
    )
    result = dockyard("config", "check", str(config))
    assert result.returncode == 1
    assert f"invalid: auth.htpasswd.path: htpasswd {users}: cannot read" in result.stderr
    dockyard("htpasswd", "add", str(users), "alice", "--password-stdin", stdin="pw\n")
    result = dockyard("config", "check", str(config))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stderr
