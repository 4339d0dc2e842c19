"""The ``dockyard`` command: serve, import a registry:2 store, check a configuration."""

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


def _load(path: Path | None) -> LoadedConfig:
    try:
        loaded = load_config(path)
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
    run(config, workers or config.worker_count())


@main.command(name="import")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would be imported; change nothing.")
def import_store(config_path: Path, dry_run: bool) -> None:
    """Take over, in place, a store written by registry:2.

    Reads Distribution's link files (repositories, tags, manifest revisions, layer links)
    under the configured storage root into Dockyard's database. Blobs are not copied.
    """
    from dockyard.importer import run_import

    config = _load(config_path).config
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
    """Validate CONFIG (with REGISTRY_* overrides) and print the effective configuration."""
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(render_effective(loaded.config), nl=False)
    click.echo(f"# metadata database: {loaded.config.database_url()}", err=True)
    click.echo("configuration is valid", err=True)
