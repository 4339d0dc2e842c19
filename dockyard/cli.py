"""The ``dockyard`` command: serve, import a registry:2 store, check a configuration,
manage htpasswd files."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from dockyard import __version__
from dockyard.config import ConfigError, LoadedConfig, load_config, render_effective
from dockyard.observability.logging import configure_logging

CONFIG_ARG = click.argument(
    "config_path",
    metavar="CONFIG",
    required=False,
    type=click.Path(dir_okay=False, path_type=Path),
)


def _load(path: Path | None, serving: bool = True) -> LoadedConfig:
    try:
        loaded = load_config(path, serving=serving)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    log = loaded.config.log
    configure_logging(log.level, log.formatter, dict(log.fields))
    import logging

    for warning in loaded.warnings:
        logging.getLogger("dockyard.config").warning("%s", warning)
    return loaded


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dockyard")
def main() -> None:
    """Dockyard: a container image registry, drop-in for registry:2.

    CONFIG is a registry:2 (Distribution) config.yml; REGISTRY_* environment variables
    override its keys. Without CONFIG, Dockyard serves on :5000 with SQLite metadata and
    filesystem storage under ./data.
    """


@main.command()
@CONFIG_ARG
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=256),
    default=None,
    help="Worker processes sharing the port (default: serve.workers, else one per core).",
)
def serve(config_path: Path | None, workers: int | None) -> None:
    """Serve the registry API."""
    from dockyard.app import serve as run

    config = _load(config_path).config
    if workers is not None and workers > 1 and config.storage.driver == "inmemory":
        raise click.ClickException("inmemory storage lives in one process: use --workers 1")
    try:
        run(config, workers or config.worker_count())
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@main.command(name="import")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would be imported; change nothing.")
def import_store(config_path: Path, dry_run: bool) -> None:
    """Take over, in place, a store written by registry:2.

    Reads Distribution's link files (repositories, tags, manifest revisions, layer links)
    under the configured storage root into Dockyard's database. Blobs are not copied.
    """
    from dockyard.app import run_import

    config = _load(config_path, serving=False).config
    report = asyncio.run(run_import(config, dry_run=dry_run))
    click.echo(report.summary())
    if report.problems:
        for problem in report.problems:
            click.echo(f"warning: {problem}", err=True)


@main.group()
def config() -> None:
    """Configuration tools."""


@config.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
def check(config_path: Path) -> None:
    """Validate CONFIG (with REGISTRY_* overrides) and the files it names (htpasswd, keys,
    certificates), and print the effective configuration."""
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    from dockyard.app import make_security, make_ssl_context

    try:  # the files the configuration names: htpasswd, keys, certificates
        make_security(loaded.config)
        make_ssl_context(loaded.config)
    except ConfigError as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    click.echo(render_effective(loaded.config), nl=False)
    click.echo(f"# metadata database: {loaded.config.database_url()}", err=True)
    click.echo("configuration is valid", err=True)


@main.group()
def htpasswd() -> None:
    """Manage htpasswd files of bcrypt entries (auth.htpasswd.path, access.htpasswd)."""


_HTPASSWD_FILE = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))


@htpasswd.command("add")
@_HTPASSWD_FILE
@click.argument("user")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.option(
    "--cost", type=click.IntRange(4, 31), default=10, show_default=True, help="bcrypt cost."
)
def htpasswd_add(file: Path, user: str, password_stdin: bool, cost: int) -> None:
    """Add USER to FILE (created if missing, mode 0600), or set USER's new password.

    Prompts twice for the password unless --password-stdin. The running server picks the
    change up at the next login.
    """
    from dockyard.auth import htpasswd as files

    try:
        files.validate_user(user)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        if not password:
            raise files.HtpasswdError("the password must not be empty")
        hashed = files.hash_password(password, cost)
        lines, added = files.set_user(files.read_lines(file), user, hashed)
        files.write_lines(file, lines)
    except (files.HtpasswdError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'added user' if added else 'changed the password of'} {user} in {file}")


@htpasswd.command("remove")
@_HTPASSWD_FILE
@click.argument("user")
def htpasswd_remove(file: Path, user: str) -> None:
    """Remove USER from FILE."""
    from dockyard.auth import htpasswd as files

    try:
        lines, removed = files.remove_user(files.read_lines(file), user)
        if not removed:
            raise files.HtpasswdError(f"{file} has no user {user}")
        files.write_lines(file, lines)
    except (files.HtpasswdError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed user {user} from {file}")


@htpasswd.command("list")
@_HTPASSWD_FILE
def htpasswd_list(file: Path) -> None:
    """List the users of FILE; entries that are not bcrypt are marked (they cannot log in)."""
    from dockyard.auth import htpasswd as files

    try:
        if not file.exists():
            raise files.HtpasswdError(f"{file}: no such file")
        users = files.list_users(files.read_lines(file))
    except (files.HtpasswdError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for user, usable in users:
        click.echo(user if usable else f"{user}\t(not bcrypt: cannot log in)")
