"""``dockyard sync`` and ``dockyard promote``: registry endpoints and credentials from the
command line, the copy engine, rich progress on a terminal, and a one-line summary."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.oci.names import is_valid_name, is_valid_tag
from dockyard.remote import RemoteError, RemoteRegistry
from dockyard.sync import PrefixMap, SyncRules
from dockyard.sync.engine import Progress, ProgressEvent, SyncSummary, copy_image
from dockyard.sync.engine import sync_registries as run_engine

EXIT_PARTIAL = 1  # some images failed, the rest was copied
EXIT_UNREACHABLE = 3  # a registry did not answer or refused our credentials


class CommandError(Exception):
    """A one-line error for the user; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """A registry (``base_url``) and a repository path under it (``path``, may be empty)."""

    base_url: str
    path: str

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[1]


def looks_like_registry(component: str) -> bool:
    """Docker's rule: a first path component with a '.' or ':', or localhost, is a host."""
    return "." in component or ":" in component or component == "localhost"


def parse_endpoint(text: str, tls_verify: bool) -> Endpoint:
    """``host:port[/path]`` or ``http(s)://host:port[/path]``; without a scheme HTTPS, or
    plain HTTP when TLS verification is off."""
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme not in ("http", "https"):
            raise CommandError(f"{text}: the scheme must be http or https")
    else:
        scheme, rest = ("https" if tls_verify else "http"), text
    host, _, path = rest.partition("/")
    path = path.strip("/")
    if not host or (path and not is_valid_name(path)):
        raise CommandError(f"{text}: expected host[:port][/repository-prefix]")
    return Endpoint(f"{scheme}://{host}", path)


@dataclass(frozen=True)
class ImageRef:
    registry: Endpoint | None  # None: the other side's registry
    repository: str
    reference: str  # a tag or a digest

    def __str__(self) -> str:
        sep = "@" if ":" in self.reference else ":"
        where = f"{self.registry.host}/" if self.registry else ""
        return f"{where}{self.repository}{sep}{self.reference}"


def parse_image_ref(text: str, tls_verify: bool, *, registry_required: bool) -> ImageRef:
    """``[http(s)://]host:port/repo:tag`` or ``...@sha256:...``."""
    scheme = ""
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme += "://"
    first, _, remainder = rest.partition("/")
    registry: Endpoint | None = None
    if scheme or (remainder and looks_like_registry(first)):
        registry = parse_endpoint(scheme + first, tls_verify)
        rest = remainder
    elif registry_required:
        raise CommandError(f"{text}: expected host[:port]/repository:tag")
    if "@" in rest:
        repository, reference = rest.split("@", 1)
        valid = reference.startswith("sha256:") and len(reference) == 71
    else:
        repository, _, reference = rest.rpartition(":")
        if not repository or "/" in reference:
            repository, reference = rest, "latest"
        valid = is_valid_tag(reference)
    if not is_valid_name(repository) or not valid:
        raise CommandError(f"{text}: not a valid image reference (repository:tag or @digest)")
    return ImageRef(registry, repository, reference)


# ---------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Side:
    """One end as the command line gives it."""

    text: str
    creds: str | None
    tls_verify: bool
    ca_file: str | None = None


def docker_config_credentials(host: str) -> tuple[str, str] | None:
    """``auths[host].auth`` of Docker's config.json ($DOCKER_CONFIG, else ~/.docker)."""
    directory = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    try:
        auths = json.loads((Path(directory) / "config.json").read_text()).get("auths", {})
        encoded = auths.get(host, {}).get("auth") or auths.get(f"https://{host}", {}).get("auth")
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return (user, password) if user else None


def credentials(creds: str | None, host: str) -> tuple[str | None, str | None]:
    if creds:
        user, sep, password = creds.partition(":")
        if not sep or not user:
            raise CommandError("credentials must be USER:PASSWORD")
        return user, password
    found = docker_config_credentials(host)
    return found if found else (None, None)


def open_registry(endpoint: Endpoint, side: Side, creds: str | None = None) -> RemoteRegistry:
    user, password = credentials(creds or side.creds, endpoint.host)
    return RemoteRegistry(
        endpoint.base_url,
        username=user,
        password=password,
        tls_verify=side.tls_verify,
        ca_file=side.ca_file,
    )


async def _reachable(registry: RemoteRegistry, role: str) -> None:
    try:
        await registry.ping()
    except RemoteError as exc:
        raise CommandError(
            f"{role} registry {registry.base_url}: {exc}", EXIT_UNREACHABLE
        ) from None


# ---------------------------------------------------------------------- progress


@contextlib.contextmanager
def progress_display(quiet: bool, verb: str) -> Iterator[Progress]:
    """A rich bar of images and bytes on a terminal; one line per image elsewhere."""
    if quiet:
        yield lambda event: None
        return
    if not sys.stderr.isatty():

        def line(event: ProgressEvent) -> None:
            if event.kind == "image":
                print(f"{event.status}: {event.name}", flush=True)

        yield line
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(verb, total=None)
        moved = 0

        def update(event: ProgressEvent) -> None:
            nonlocal moved
            if event.kind == "plan":
                bar.update(task, total=event.total)
            elif event.kind == "bytes":
                moved += event.amount
                bar.update(task, description=f"{verb} ({human_bytes(moved)} moved)")
            elif event.kind == "image":
                bar.advance(task)
                if event.status == "failed":
                    console.print(f"failed: {event.name}")

        yield update


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def summary_line(command: str, summary: SyncSummary, dry_run: bool = False) -> str:
    images = summary.images_copied + summary.images_skipped + len(summary.errors)
    verb = "to copy" if dry_run else "copied"
    text = (
        f"{command}{' (dry run)' if dry_run else ''}: {images} images, "
        f"{summary.images_copied} {verb}, {summary.images_skipped} up to date"
    )
    if not dry_run:
        text += (
            f"; manifests {summary.manifests_copied} copied, {summary.manifests_skipped} "
            f"skipped; blobs {summary.blobs_copied} copied, {summary.blobs_mounted} mounted, "
            f"{summary.blobs_skipped} skipped; {human_bytes(summary.bytes_copied)} moved"
        )
        if summary.referrers_copied:
            text += f"; {summary.referrers_copied} referrers"
    return text + f"; {len(summary.errors)} errors"


# ---------------------------------------------------------------------- the commands


async def run_sync(
    src: Side, dest: Side, rules: SyncRules, *, dry_run: bool, quiet: bool
) -> SyncSummary:
    src_end = parse_endpoint(src.text, src.tls_verify)
    dest_end = parse_endpoint(dest.text, dest.tls_verify)
    prefixes = PrefixMap(src_end.path, dest_end.path)
    async with (
        open_registry(src_end, src) as source,
        open_registry(dest_end, dest) as target,
    ):
        await _reachable(source, "source")
        await _reachable(target, "destination")
        with progress_display(quiet, "images") as progress:
            try:
                return await run_engine(
                    source, target, rules, prefixes=prefixes, dry_run=dry_run, progress=progress
                )
            except RemoteError as exc:  # listing the source failed
                raise CommandError(f"sync stopped: {exc}", EXIT_UNREACHABLE) from None


async def run_promote(src: Side, dest: Side, *, quiet: bool) -> SyncSummary:
    src_ref = parse_image_ref(src.text, src.tls_verify, registry_required=True)
    dest_ref = parse_image_ref(dest.text, dest.tls_verify, registry_required=False)
    assert src_ref.registry is not None
    dest_end = dest_ref.registry or src_ref.registry
    same = dest_end.base_url == src_ref.registry.base_url
    async with (
        open_registry(src_ref.registry, src) as source,
        open_registry(dest_end, dest, None if dest.creds or not same else src.creds) as target,
    ):
        await _reachable(source, "source")
        await _reachable(target, "destination")
        with progress_display(quiet, "promoting") as progress:
            try:
                summary = await copy_image(
                    source, src_ref.repository, src_ref.reference,
                    target, dest_ref.repository, dest_ref.reference,
                    same_registry=same, progress=progress,
                )  # fmt: skip
            except RemoteError as exc:
                raise CommandError(f"promote {src_ref} -> {dest_ref}: {exc}", 1) from None
    return summary
