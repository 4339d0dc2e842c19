"""The ``dockyard`` command: serve, import a registry:2 store (and export back to one),
collect garbage, check a configuration, manage htpasswd files."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dockyard import __version__
from dockyard.api.request_context import RequestIdFilter
from dockyard.config import (
    ConfigError,
    LoadedConfig,
    load_config,
    masked_url,
    render_effective,
)
from dockyard.observability.logging import configure_logging
from dockyard.registry2.reports import EXIT_STOPPED, Report

if TYPE_CHECKING:
    from dockyard.sync.engine import SyncSummary

# Optional: without it, the embedded defaults. The metavar says so in the usage line.
CONFIG_ARG = click.argument(
    "config_path",
    metavar="[CONFIG]",
    required=False,
    type=click.Path(dir_okay=False, path_type=Path),
)
STRICT_OPTION = click.option(
    "--strict",
    is_flag=True,
    help="Treat every configuration warning (unknown key, unsupported section...) as an error.",
)


def _load(path: Path | None, serving: bool = True, strict: bool = False) -> LoadedConfig:
    try:
        loaded = load_config(path, serving=serving, strict=strict)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    log = loaded.config.log
    configure_logging(log.level, log.formatter, dict(log.fields), [RequestIdFilter()])
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
@STRICT_OPTION
def serve(config_path: Path | None, workers: int | None, strict: bool) -> None:
    """Serve the registry API."""
    from dockyard.app import serve as run
    from dockyard.startup import StartupError

    config = _load(config_path, strict=strict).config
    if workers is not None and workers > 1 and config.storage.in_process:
        raise click.ClickException(
            f"{config.storage.driver} storage lives in one process: use --workers 1"
        )
    try:
        status = run(config, workers or config.worker_count())
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(status)


_EXIT_STATUSES = """
    \b
    Exit status:
      0  done (with --dry-run: would be done), nothing to report
      1  done, with problems reported as warning: lines
      2  refused: nothing was changed (the reason follows error:)
      3  stopped by a storage error: partly done; run it again once fixed
"""


@main.command(name="import", epilog=_EXIT_STATUSES)
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would be imported; change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Import even though Dockyard has served writes to the store, undoing them.",
)
def import_store(config_path: Path, dry_run: bool, force: bool) -> None:
    """Take over, in place, a store written by registry:2.

    Reads Distribution's link files (repositories, tags, manifest revisions, layer links)
    under the configured storage root into Dockyard's database. Blobs are not copied.

    Refuses when the storage root holds no registry:2 store (creating nothing), and once
    Dockyard has served pushes or deletions on the store: the link files no longer say
    what it holds, and importing them would set tags back and bring deleted images back.
    """
    from dockyard.registry2_commands import run_import

    config = _load(config_path, serving=False).config
    with _stopped_by_storage_errors("import"):
        report = asyncio.run(run_import(config, dry_run=dry_run, force=force))
    _finish(report)


@main.command(name="export", epilog=_EXIT_STATUSES)
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would be written; change nothing.")
def export_store(config_path: Path, dry_run: bool) -> None:
    """Write registry:2's link files for what Dockyard holds: the way back to registry:2.

    Writes, under the configured storage root, the link files registry:2 (Distribution 2.8)
    would have for every repository, tag, manifest and blob link in Dockyard's database, and
    removes those of manifests, tags and blob links Dockyard no longer holds. Stop Dockyard
    (or make it read-only) first. Blobs are not copied.
    """
    from dockyard.registry2_commands import run_export

    config = _load(config_path, serving=False).config
    with _stopped_by_storage_errors("export"), _repository_progress("Exporting") as progress:
        report = asyncio.run(run_export(config, dry_run=dry_run, progress=progress))
    _finish(report)


@contextlib.contextmanager
def _stopped_by_storage_errors(command: str) -> Iterator[None]:
    """A storage failure (permissions, a full disk) stops the command with exit status 3;
    what was done so far stays done, and running the command again continues it."""
    from dockyard.storage.driver import StorageError

    try:
        yield
    except (StorageError, OSError) as exc:
        click.echo(f"error: {command} stopped: {exc}; fix that and run it again", err=True)
        sys.exit(EXIT_STOPPED)


@contextlib.contextmanager
def _repository_progress(verb: str) -> Iterator[Callable[[int, int, str], None] | None]:
    """A per-repository progress bar on a terminal (standard error); None elsewhere."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{verb} repositories", total=None)

        def advance(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{verb} {name}")

        yield advance


def _finish(report: Report) -> None:
    """Print a report of import or export and exit with its status."""
    if report.refused is not None:
        prefix = "dry run: " if report.dry_run else ""
        click.echo(f"error: {prefix}refused: {report.refused}", err=True)
    else:
        click.echo(report.summary())
    for problem in report.problems:
        click.echo(f"warning: {problem}", err=True)
    sys.exit(report.exit_status)


@main.command(name="garbage-collect")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-d", "--dry-run", is_flag=True, help="List what would be removed; change nothing.")
@click.option(
    "-m",
    "--delete-untagged",
    is_flag=True,
    help="Also remove manifests no tag reaches (a tagged index keeps its children).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
def garbage_collect(config_path: Path, dry_run: bool, delete_untagged: bool, quiet: bool) -> None:
    """Remove blobs no manifest references, while the registry keeps serving.

    Keeps everything wanted within gc.reviewafter (pushed, linked, mounted or found by a
    HEAD), so it may run beside a serving Dockyard: no read-only window is needed.
    """
    from dockyard.database import in_process_database
    from dockyard.gc_command import run_gc

    config = _load(config_path, serving=False).config
    if config.storage.in_process or in_process_database(config.database_url()):
        raise click.ClickException(
            f"{config.storage.driver} storage (or an in-memory database) lives in the "
            "serving process: nothing to collect from here (set gc.enabled instead)"
        )
    with _stopped_by_storage_errors("garbage-collect"), _step_progress() as progress:
        report = asyncio.run(
            run_gc(
                config,
                dry_run=dry_run,
                delete_untagged=delete_untagged,
                progress=progress,
                waiting=lambda: click.echo(
                    "waiting for the collection running elsewhere", err=True
                ),
            )
        )
    if not quiet:
        for line in report.items():
            click.echo(line)
    click.echo(report.summary())
    for problem in report.problems:
        click.echo(f"warning: {problem}", err=True)
    sys.exit(1 if report.problems else 0)


@contextlib.contextmanager
def _step_progress() -> Iterator[Callable[[str, int, int | None], None] | None]:
    """A progress bar per step on a terminal (standard error); None elsewhere."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, TaskID

    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(f"Collecting {step}", total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield advance


@main.group()
def config() -> None:
    """Configuration tools."""


@config.command()
@CONFIG_ARG
@STRICT_OPTION
def check(config_path: Path | None, strict: bool) -> None:
    """Validate CONFIG (or, without it, the embedded defaults) with REGISTRY_* overrides,
    exactly as serve would, and the files it names (htpasswd, keys, certificates); print
    the effective configuration."""
    try:
        loaded = load_config(config_path, strict=strict)
    except ConfigError as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    from dockyard.security import make_security, make_ssl_context

    try:  # the files the configuration names: htpasswd, keys, certificates
        make_security(loaded.config)
        make_ssl_context(loaded.config)
    except ConfigError as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    click.echo(render_effective(loaded.config), nl=False)
    click.echo(f"# metadata database: {masked_url(loaded.config.database_url())}", err=True)
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

    Prompts twice for the password on the terminal; without a terminal (scripts, CI),
    pass --password-stdin. The running server picks the change up at the next login.
    """
    from dockyard.auth import htpasswd_edit as files

    try:
        files.validate_user(user)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:  # getpass would read stdin with echo on, after a Python warning
            raise files.HtpasswdError(
                "stdin is not a terminal, so the password cannot be asked for: "
                "pass --password-stdin and write the password on stdin"
            )
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
    from dockyard.auth import htpasswd_edit as files

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
    from dockyard.auth import htpasswd_edit as files

    try:
        if not file.exists():
            raise files.HtpasswdError(f"{file}: no such file")
        users = files.list_users(files.read_lines(file))
    except (files.HtpasswdError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for user, usable in users:
        click.echo(user if usable else f"{user}\t(not bcrypt: cannot log in)")


@main.group()
def db() -> None:
    """The metadata database: the revision of its schema, and migrating it."""


def _database_config(config_path: Path | None) -> LoadedConfig:
    """The configuration, refused when its database lives only inside a server."""
    from dockyard.database import in_process_database

    loaded = _load(config_path, serving=False)
    if in_process_database(loaded.config.database_url()):
        raise click.ClickException(
            "database: in memory (inmemory storage without database.url): the serving "
            "process creates its schema, there is nothing to migrate"
        )
    return loaded


@db.command("migrate")
@CONFIG_ARG
def db_migrate(config_path: Path | None) -> None:
    """Bring the database schema to this version's revision.

    Run it once per upgrade, before starting the new version's servers (with PostgreSQL
    they refuse an older schema unless database.migrate is onstart). Safe to run from
    several hosts at once: they take turns, and all but the first find nothing to do.
    """
    from dockyard.database import SchemaError, migrate_schema, migration_summary

    config = _database_config(config_path).config
    try:
        done = asyncio.run(migrate_schema(config))
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(migration_summary(config, done))


@db.command("status")
@CONFIG_ARG
def db_status(config_path: Path | None) -> None:
    """Print the schema's revision and this version's; exit 1 unless they are the same."""
    from dockyard.database import SchemaError, schema_status

    config = _database_config(config_path).config
    try:
        status = asyncio.run(schema_status(config))
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    for line in status.report():
        click.echo(line)
    sys.exit(0 if status.up_to_date else 1)


_STORE_CONFIG = click.argument(
    "config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path)
)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """A store that cannot be worked on: the reason on standard error, exit status 2."""
    from dockyard.storage.driver import StorageError
    from dockyard.store_commands import NoDatabaseError

    try:
        yield
    except (NoDatabaseError, StorageError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@main.command()
@_STORE_CONFIG
@click.option("--dry-run", is_flag=True, help="List what the rules would remove; change nothing.")
def retention(config_path: Path, dry_run: bool) -> None:
    """Apply the retention rules of CONFIG (retention.rules) to every repository.

    Removes the tags and untagged manifests the first matching rule does not keep, through
    the registry's own deletions; garbage collection then frees what nothing references.
    Immutable tags (immutabletags) are never removed. Exit status 2 when it cannot run.
    """
    from dockyard.store_commands import run_retention
    from dockyard.store_views import progress_bar, show_retention

    config = _load(config_path, serving=False).config
    if not dry_run and config.storage.maintenance.readonly.enabled:
        click.echo("error: the registry is read-only (storage.maintenance.readonly)", err=True)
        sys.exit(2)
    with _store_errors(), progress_bar("Retention") as bar:
        progress = None if bar is None else (lambda d, t, n: bar(n, d, t))
        report = asyncio.run(run_retention(config, dry_run, progress=progress))
    show_retention(report)


@main.group()
def replication() -> None:
    """Replication inside the server (the replication section): its job queue."""


@replication.command("status")
@_STORE_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print the queue as JSON.")
def replication_status(config_path: Path, as_json: bool) -> None:
    """Print the replication queue of CONFIG's database: pending, failed and done jobs
    per rule and destination, and the last failures with their errors. Exit status 1
    when a job has failed, 2 when there is no database."""
    from dockyard.replication_commands import queue_status, show_status, status_json

    config = _load(config_path, serving=False).config
    with _store_errors():
        status = asyncio.run(queue_status(config))
    if as_json:
        click.echo(status_json(status))
    else:
        show_status(status)
    sys.exit(1 if any(c.failed for c in status.counts) else 0)


@main.command()
@click.argument("arguments", metavar="[REPO...] [CONFIG]", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def du(arguments: tuple[str, ...], as_json: bool) -> None:
    """Storage usage: per repository its total and unique bytes (what deleting it would
    free), and the registry's stored and referenced bytes and deduplication ratio.

    The last argument is CONFIG when it names an existing file; the others are
    repositories (default: every repository). Answered from the database.
    """
    from dockyard.registry.usage import registry_json, repository_json
    from dockyard.store_commands import run_usage
    from dockyard.store_views import show_usage

    names = list(arguments)
    config_path = None
    if names and Path(names[-1]).is_file():
        config_path = Path(names.pop())
    config = _load(config_path, serving=False).config
    with _store_errors():
        repositories, registry = asyncio.run(run_usage(config, names))
    unknown = sorted(set(names) - {u.name for u in repositories})
    if as_json:
        import json

        body = {
            "registry": registry_json(registry),
            "repositories": [repository_json(u) for u in repositories],
        }
        click.echo(json.dumps(body, indent=2))
    else:
        show_usage(repositories, registry)
    for name in unknown:
        click.echo(f"warning: no repository {name}", err=True)
    sys.exit(1 if unknown else 0)


@main.command()
@_STORE_CONFIG
@click.option("--repair", is_flag=True, help="Repair what is safe to repair (see below).")
@click.option("--verify-digests", is_flag=True, help="Hash every blob and compare its digest.")
def fsck(config_path: Path, repair: bool, verify_digests: bool) -> None:
    """Check that the database and the storage agree.

    Reports blob rows without bytes (or with bytes of the wrong size or digest), manifests
    without their copy in storage, bytes without rows, layer link files of an imported
    registry:2 store the database lacks, and upload directories without a session. With
    --repair: marks blobs whose bytes are gone or wrong missing, rewrites manifest copies,
    links what an import missed, deletes orphaned upload directories past the purge age.
    It never deletes a blob's bytes. Exit status: 0 all agree, 1 problems found, 2 it
    could not run.
    """
    from dockyard.store_commands import run_fsck
    from dockyard.store_views import progress_bar, show_fsck

    config = _load(config_path, serving=False).config
    if repair and config.storage.maintenance.readonly.enabled:
        click.echo("error: the registry is read-only (storage.maintenance.readonly)", err=True)
        sys.exit(2)
    with _store_errors(), progress_bar("Checking") as progress:
        report = asyncio.run(run_fsck(config, repair, verify_digests, progress))
    show_fsck(report)
    sys.exit(report.exit_status)


def _side_options(side: str, what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--SIDE-creds`` (also ``DOCKYARD_SIDE_CREDS``) and ``--SIDE-tls-verify``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        command = click.option(
            f"--{side}-creds",
            envvar=f"DOCKYARD_{side.upper()}_CREDS",
            metavar="USER:PASSWORD",
            help=f"Credentials for the {what} registry (default: DOCKYARD_{side.upper()}_CREDS, "
            "else Docker's config.json, else anonymous).",
        )(command)
        command = click.option(
            f"--{side}-ca-file",
            type=click.Path(exists=True, dir_okay=False),
            metavar="FILE",
            help=f"PEM certificates to trust for the {what} registry (a private CA).",
        )(command)
        return click.option(
            f"--{side}-tls-verify",
            type=click.BOOL,
            default=True,
            metavar="BOOL",
            help=f"Verify the {what} registry's TLS certificate (default true); false: also "
            "plain HTTP for a reference without a scheme.",
        )(command)

    return decorate


def _run_copy(
    command: str, work: Callable[[], Coroutine[Any, Any, SyncSummary]], dry_run: bool = False
) -> None:
    """Run a sync or promote coroutine factory; print its summary, exit with its status."""
    from dockyard.sync_commands import EXIT_PARTIAL, CommandError, summary_line

    try:
        summary = asyncio.run(work())
    except CommandError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.status)
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(summary_line(command, summary, dry_run))
    sys.exit(EXIT_PARTIAL if summary.errors else 0)


@main.command(epilog="Exit status: 0 done, 1 some images failed, 2 bad arguments, "
              "3 a registry unreachable or refusing the credentials.")  # fmt: skip
@click.argument("src")
@click.argument("dest")
@_side_options("src", "source")
@_side_options("dest", "destination")
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Repositories to copy (relative to SRC's prefix; * crosses /). Repeatable.",
)
@click.option("--tags", metavar="REGEX", help="Copy only tags this regex matches in full.")
@click.option(
    "--exclude", metavar="REGEX", help="Skip repositories and REPO:TAG names this regex finds."
)
@click.option("--dry-run", is_flag=True, help="List what would be copied; change nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
def sync(
    src: str, dest: str, src_creds: str | None, src_tls_verify: bool, src_ca_file: str | None,
    dest_creds: str | None, dest_tls_verify: bool, dest_ca_file: str | None,
    include: tuple[str, ...], tags: str | None, exclude: str | None, dry_run: bool,
    quiet: bool,
) -> None:  # fmt: skip
    """Copy repositories from the registry SRC to the registry DEST.

    SRC and DEST are host:port[/prefix] or http(s)://host:port[/prefix]: repositories under
    SRC's prefix land under DEST's. Whole images are copied (indexes with their children,
    referrers such as signatures and SBOMs) with their digests; blobs and manifests DEST
    already has are skipped, blobs it holds in another repository are mounted.
    """
    import re

    from dockyard.sync import SyncRules
    from dockyard.sync_commands import Side, run_sync

    try:
        rules = SyncRules(include=include, tags=tags, exclude=exclude)
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression: {exc}") from None
    _run_copy(
        "sync",
        lambda: run_sync(
            Side(src, src_creds, src_tls_verify, src_ca_file),
            Side(dest, dest_creds, dest_tls_verify, dest_ca_file),
            rules,
            dry_run=dry_run,
            quiet=quiet,
        ),
        dry_run,
    )


@main.command(epilog="Exit status: 0 done, 1 the copy failed, 2 bad arguments, "
              "3 a registry unreachable or refusing the credentials.")  # fmt: skip
@click.argument("src_ref")
@click.argument("dest_ref")
@_side_options("src", "source")
@_side_options("dest", "destination")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
def promote(
    src_ref: str, dest_ref: str, src_creds: str | None, src_tls_verify: bool,
    src_ca_file: str | None, dest_creds: str | None, dest_tls_verify: bool,
    dest_ca_file: str | None, quiet: bool,
) -> None:  # fmt: skip
    """Copy the image SRC_REF to DEST_REF (host:port/repo:tag, or @digest for SRC_REF).

    DEST_REF without a registry (repo:tag) means SRC_REF's registry: blobs are then mounted,
    never downloaded. Across registries only what the destination lacks is moved.
    """
    from dockyard.sync_commands import Side, run_promote

    _run_copy(
        "promote",
        lambda: run_promote(
            Side(src_ref, src_creds, src_tls_verify, src_ca_file),
            Side(dest_ref, dest_creds, dest_tls_verify, dest_ca_file),
            quiet=quiet,
        ),
    )
