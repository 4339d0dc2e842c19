"""Real clients against Dockyard and registry:2: ``make bench BENCH_ARGS=--clients``.

    python -m bench.real_clients [--clients skopeo,podman,ctr,docker] [--images large,small]
                                 [--repeats 3] [--large-mib 256] [--large-layers 3]
                                 [--storage s3 [--deferred-copy] [--copies-before-pull]]

Two images are built locally (bench/client_images.py): ``large``, 3 layers of 256 MiB of
random bytes, and ``small``, 20 layers of 4-200 KiB. Each client pushes each image to a
registry on a fresh store, pulls it into an empty local store right after the push
("first pull": the registry has just written the blobs) and pulls it once more ("again").
Dockyard and registry:2 take turns repetition by repetition, so both meet the same
machine. Each client's ceilings are measured in the same run: for a push, the same push
to the sink registry (bench/sink_registry.py, which reads and discards the bytes), taking
its turn after registry:2; for a pull, the same copy without a registry
(bench/client_tools.py). ``--push-only`` skips the pulls. Rates are the image's bytes
(layers and config) per second of the client command's wall time, medians of ``--repeats``.
``--storage s3``: both registries on one SeaweedFS, with Dockyard's copies after the commit
waited for and reported (bench/real_clients_s3.py). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.client_images import BuiltImage, ImageSpec, build, large_spec, small_spec
from bench.client_tools import (
    CLIENTS,
    BenchClient,
    CtrClient,
    DockerClient,
    PodmanClient,
    SkopeoClient,
    missing_binaries,
)
from bench.real_clients_s3 import S3Stores, render_s3
from bench.servers import (
    DOCKYARD,
    REGISTRY2,
    SINK,
    SINK_HASH,
    TITLES,
    Server,
    dockyard_server,
    registry2_server,
    sink_server,
)
from tests.e2e.clients import ClientEnv, Containerd, remove_tree

REPO = Path(__file__).resolve().parents[1]
IMAGES = ("large", "small")
#: what each client does against a registry, in this order in every repetition
OPERATIONS = ("push", "pull first", "pull again")


@dataclass
class Options:
    clients: list[str]
    images: list[str]
    repeats: int = 3
    targets: list[str] = field(default_factory=lambda: [DOCKYARD, REGISTRY2])
    workers: int | None = None
    large_mib: int = 256
    large_layers: int = 3
    small_layers: int = 20
    driver: str = "overlay"  # podman's and docker's storage, containerd's snapshotter
    registry2: str = "docker-registry"
    pulls: bool = True  # False: pushes only (and no pull ceiling)
    hashing_sink: bool = False  # also push to the sink that hashes: a verifying registry's ceiling
    storage: str = "filesystem"  # or "s3": one SeaweedFS, a new bucket per registry and round
    deferred_copy: bool = False  # on S3: Dockyard's storage.s3.deferredcopy (off by default)
    copies_before_pull: bool = False  # on S3: the first pull waits for Dockyard's copies
    tmpdir: Path | None = None
    out: Path | None = None


@dataclass
class Figures:
    """Seconds per repetition, by (client, image, operation, target or "ceiling")."""

    seconds: dict[tuple[str, str, str, str], list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    loadavg: list[tuple[str, list[float]]] = field(default_factory=list)

    def add(self, key: tuple[str, str, str, str], value: float) -> None:
        self.seconds.setdefault(key, []).append(value)

    def add_delta(
        self, key: tuple[str, str, str, str], before: float | None, after: float | None
    ) -> None:
        """``after - before`` when both are known (CPU counters that may be unreadable)."""
        if before is not None and after is not None:
            self.add(key, after - before)

    def median(self, key: tuple[str, str, str, str]) -> float | None:
        values = self.seconds.get(key)
        return statistics.median(values) if values else None


def log(message: str) -> None:
    print(f"bench clients: {message}", flush=True)


def timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def specs(options: Options) -> list[ImageSpec]:
    made = {
        "large": large_spec(options.large_layers, options.large_mib),
        "small": small_spec(options.small_layers),
    }
    return [made[name] for name in options.images]


def make_clients(options: Options, cenv: ClientEnv, scratch: Path) -> tuple[
    list[BenchClient], Containerd | None
]:  # fmt: skip
    containerd = None
    if {"ctr", "docker"} & set(options.clients):
        containerd = Containerd(cenv)
        containerd.start()
    snapshotter = "overlayfs" if options.driver == "overlay" else "native"
    made: list[BenchClient] = []
    for name in options.clients:
        if name == "skopeo":
            made.append(SkopeoClient(cenv, scratch))
        elif name == "podman":
            made.append(PodmanClient(cenv, scratch, options.driver))
        elif name == "ctr":
            assert containerd is not None
            made.append(CtrClient(cenv, scratch, containerd, snapshotter))
        elif name == "docker":
            assert containerd is not None
            driver = "overlay2" if options.driver == "overlay" else "vfs"
            made.append(DockerClient(cenv, scratch, containerd, driver))
    return made, containerd


def new_server(
    target: str, base: Path, log_path: Path, options: Options, stores: S3Stores | None = None
) -> Server:
    if stores is not None and target in (DOCKYARD, REGISTRY2):
        return stores.server(target, base, log_path)
    shutil.rmtree(base, ignore_errors=True)
    (base / "store").mkdir(parents=True)
    if target == DOCKYARD:
        return dockyard_server(base / "store", base, log_path, options.workers)
    if target in (SINK, SINK_HASH):
        return sink_server(log_path, hashing=target == SINK_HASH)
    return registry2_server(base / "store", base, log_path, options.registry2)


def measure_pull_ceiling(
    client: BenchClient, image: BuiltImage, options: Options, figures: Figures
) -> None:
    before, step, after = client.pull_ceiling(image)
    for _ in range(options.repeats):
        before()
        figures.add((client.name, image.spec.name, "pull", "ceiling"), timed(step))
        after()


def one_round(
    client: BenchClient,
    image: BuiltImage,
    target: str,
    base: Path,
    out: Path,
    options: Options,
    figures: Figures,
    stores: S3Stores | None = None,
) -> None:
    """Push to a registry on a fresh store, pull right after, pull again (the sink: the
    push only). On S3, Dockyard's pending copies are waited for before the second pull
    (``copies_before_pull``: before the first)."""
    server = new_server(target, base, out / f"{target}-server.log", options, stores)
    server.start()
    try:
        ref = f"{server.url.removeprefix('http://')}/bench/{image.spec.name}:{image.tag}"
        key = (client.name, image.spec.name)
        client.before_push(image, ref)
        s3 = stores if target in (DOCKYARD, REGISTRY2) else None
        cpu = s3.store_cpu() if s3 else None
        figures.add((*key, "push", target), timed(lambda: client.push(image, ref)))
        copies = s3.watch_copies(base) if s3 and target == DOCKYARD else None
        if s3:
            figures.add_delta((*key, "store cpu push", target), cpu, s3.store_cpu())
        if copies is not None and (options.copies_before_pull or not options.pulls):
            copies.record(figures, key)
            copies = None
        if target in (SINK, SINK_HASH) or not options.pulls:
            return
        client.clear_pulled(image)  # docker: the pushed image itself
        cpu = s3.store_cpu() if s3 else None
        figures.add((*key, "pull first", target), timed(lambda: client.pull(image, ref)))
        if s3:
            figures.add_delta((*key, "store cpu pull first", target), cpu, s3.store_cpu())
        if copies is not None:  # the pull above ran while they were pending
            copies.record(figures, key)
        client.clear_pulled(image)
        figures.add((*key, "pull again", target), timed(lambda: client.pull(image, ref)))
        if not isinstance(client, DockerClient):  # docker pushes what it pulled next time
            client.clear_pulled(image)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        if stores is not None:
            stores.empty()


def sinks(options: Options, targets: list[str]) -> list[str]:
    """The turns of one repetition: ``targets``, then the hashing sink if asked for."""
    return [*targets, SINK_HASH] if options.hashing_sink else targets


def bench_client(
    client: BenchClient, images: list[BuiltImage], options: Options, tmp: Path, out: Path,
    figures: Figures, stores: S3Stores | None,
) -> None:  # fmt: skip
    for image in images:
        what = f"{client.name} {image.spec.name}"
        try:
            client.prepare(image)
            if options.pulls:
                log(f"{what}: pull ceiling (local copies), {options.repeats} repetitions")
                measure_pull_ceiling(client, image, options, figures)
            for rep in range(options.repeats):
                for target in sinks(options, [*options.targets, SINK]):
                    log(f"{what}: {TITLES.get(target, target)}, repetition {rep + 1}")
                    one_round(client, image, target, tmp / "server", out, options, figures, stores)
        except (AssertionError, OSError, RuntimeError) as exc:
            figures.failures.append(f"{what}: {str(exc)[:1500]}")
            log(f"{what} failed: {str(exc)[:500]}")


def run(options: Options) -> int:
    out = options.out or REPO / "bench-results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    missing = missing_binaries(options.clients)
    if missing:
        raise SystemExit(f"bench clients: missing {', '.join(missing)}; "
                         "run scripts/install-test-deps.sh")  # fmt: skip
    # Short: unix socket paths and podman's runroot have length limits.
    cenv = ClientEnv(Path(tempfile.mkdtemp(prefix="dy-bench-", dir="/tmp")))
    # Hex only: podman names an image pulled from oci:PATH after PATH, and a random
    # mkdtemp suffix such as "-_7x" is not a valid reference.
    tmp = Path(options.tmpdir or tempfile.gettempdir()) / f"dy-clients-{secrets.token_hex(6)}"
    tmp.mkdir(mode=0o700)
    figures = Figures()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    clients: list[BenchClient] = []
    containerd: Containerd | None = None
    stores: S3Stores | None = None
    try:
        if options.storage == "s3":
            stores = S3Stores.start(options.deferred_copy, options.workers, options.registry2)
            log(f"storage: S3, a bucket per registry and round on {stores.seaweedfs.endpoint}")
        log(f"building {', '.join(options.images)} in {tmp}")
        images = [build(spec, tmp / "images" / spec.name) for spec in specs(options)]
        (tmp / "scratch").mkdir()
        clients, containerd = make_clients(options, cenv, tmp / "scratch")
        for client in clients:
            figures.loadavg.append((f"{client.name} start", list(os.getloadavg())))
            bench_client(client, images, options, tmp, out, figures, stores)
            figures.loadavg.append((f"{client.name} end", list(os.getloadavg())))
    finally:
        for client in clients:
            try:
                client.close()
            except (AssertionError, OSError, RuntimeError) as exc:
                log(f"{client.name}: cleanup failed: {exc}")
        if containerd is not None:
            containerd.stop()
        if stores is not None:
            stores.stop()
        remove_tree(cenv.root)
        shutil.rmtree(tmp, ignore_errors=True)
    text = render(options, figures, images, started)
    (out / "clients.md").write_text(text)
    (out / "clients.json").write_text(json.dumps(as_json(options, figures, images), indent=1))
    print()
    print(text, end="")
    log(f"wrote {out / 'clients.md'} and {out / 'clients.json'}")
    return 1 if figures.failures else 0


def _rate(image: BuiltImage, seconds: float | None) -> float | None:
    return image.blob_bytes / seconds / 1e6 if seconds else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or not b else f"{a / b:.2f}"


def rows(options: Options) -> list[tuple[str, str, tuple[str, str]]]:
    """The table's rows for one client and image: (operation, its label, the (operation,
    target) of its ceiling). With the hashing sink the push has a second row against it."""
    made = [("push", "push", ("push", SINK))]
    if options.hashing_sink:
        made.append(("push", "push (hashing sink)", ("push", SINK_HASH)))
    if options.pulls:
        made += [(op, op, ("pull", "ceiling")) for op in OPERATIONS[1:]]
    return made


def render(options: Options, figures: Figures, images: list[BuiltImage], started: str) -> str:
    ours, theirs = options.targets[0], options.targets[-1]
    store = "S3 (one SeaweedFS)" if options.storage == "s3" else "filesystem"
    if options.storage == "s3":
        store += f", Dockyard's deferred copies {'on' if options.deferred_copy else 'off'}"
        if options.deferred_copy and options.copies_before_pull:
            store += ", waited for before the first pull"
    lines = [
        f"# Real clients, {started} ({options.repeats} repetitions, medians; registries on "
        f"{store}; client storage {options.driver})",
        "",
        "MB/s of the image's layers and config (10^6 bytes) over the client command's wall "
        "time. ratio: Dockyard / registry:2. ceiling: for a push, the same push to the sink "
        "registry (bench/sink_registry.py: reads and discards every body; the hashing sink "
        "also computes each blob's sha256); for a pull, the "
        "same client copying the image locally, with no registry (bench/client_tools.py); "
        "of ceiling: each registry's rate against it.",
        "Load average: "
        + "; ".join(
            f"{when} {' '.join(f'{x:.1f}' for x in load)}" for when, load in figures.loadavg
        ),
        "",
        f"| client | image | operation | {TITLES[ours]} | {TITLES[theirs]} | ratio | ceiling "
        f"| {TITLES[ours]} of ceiling | {TITLES[theirs]} of ceiling |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    by_name = {image.spec.name: image for image in images}
    for client in options.clients:
        for name in options.images:
            image = by_name[name]
            for op, label, top in rows(options):
                a = _rate(image, figures.median((client, name, op, ours)))
                b = _rate(image, figures.median((client, name, op, theirs)))
                ceiling = _rate(image, figures.median((client, name, *top)))
                lines.append(
                    f"| {client} | {name} | {label} | {_fmt(a)} | {_fmt(b)} | {_ratio(a, b)} "
                    f"| {_fmt(ceiling)} | {_ratio(a, ceiling)} | {_ratio(b, ceiling)} |"
                )
    sizes = "; ".join(
        f"{i.spec.name}: {len(i.spec.layer_sizes)} layers, {i.blob_bytes / 1e6:,.1f} MB"
        for i in images
    )
    lines += ["", f"Images: {sizes}."]
    if options.storage == "s3":
        lines += ["", *render_s3(options, figures, images)]
    if figures.failures:
        lines += ["", "## Problems", ""] + [f"- {failure}" for failure in figures.failures]
    return "\n".join(lines) + "\n"


def as_json(options: Options, figures: Figures, images: list[BuiltImage]) -> dict[str, Any]:
    return {
        "options": {k: str(v) for k, v in vars(options).items()},
        "images": {
            i.spec.name: {"bytes": i.blob_bytes, "layers": list(i.spec.layer_sizes)} for i in images
        },
        "seconds": [
            {"client": c, "image": i, "operation": op, "target": t, "seconds": values}
            for (c, i, op, t), values in figures.seconds.items()
        ],
        "loadavg": figures.loadavg,
        "failures": figures.failures,
    }


def _list(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = list(allowed) if value == "all" else [v.strip() for v in value.split(",") if v]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        raise SystemExit(f"bench clients: unknown {what} {', '.join(unknown)}; "
                         f"choose from {', '.join(allowed)}")  # fmt: skip
    return chosen


def options_from_run(args: argparse.Namespace) -> Options:
    """The options of ``python -m bench.run --clients [LIST]`` (``--quick``: 64 MiB layers)."""
    if args.storage != "filesystem":
        raise SystemExit(
            "bench clients: on S3 run python -m bench.real_clients --storage s3 (with "
            "--deferred-copy, Dockyard's copies after the PUT are waited for)"
        )
    return Options(
        clients=_list(args.clients, CLIENTS, "client"),
        images=_list(args.client_images, IMAGES, "image"),
        repeats=args.repeats,
        targets=args.targets,
        workers=args.workers,
        large_mib=64 if args.quick else 256,
        registry2=args.registry2,
        tmpdir=args.tmpdir,
        out=args.out,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.real_clients",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", default="all", help=f"comma list of {','.join(CLIENTS)}")
    parser.add_argument("--images", default="all", help="large, small or both (all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--targets", default=f"{DOCKYARD},{REGISTRY2}")
    parser.add_argument("--workers", type=int, default=None, help="Dockyard's workers")
    parser.add_argument("--large-mib", type=int, default=256, help="each large layer's MiB")
    parser.add_argument("--large-layers", type=int, default=3)
    parser.add_argument("--small-layers", type=int, default=20)
    parser.add_argument("--push-only", action="store_true", help="no pulls, no pull ceiling")
    parser.add_argument(
        "--hashing-sink",
        action="store_true",
        help="also push to the sink with --hash (sha256 of every blob): a verifying ceiling",
    )
    parser.add_argument(
        "--driver",
        choices=["overlay", "vfs"],
        default="overlay",
        help="podman's and docker's storage driver, containerd's snapshotter (vfs: native)",
    )
    parser.add_argument(
        "--storage",
        choices=["filesystem", "s3"],
        default="filesystem",
        help="s3: both registries on one SeaweedFS, a new bucket per registry and round",
    )
    parser.add_argument(
        "--deferred-copy",
        action="store_true",
        help="with --storage s3: Dockyard with storage.s3.deferredcopy on (the copy after the "
        "PUT, waited for after each push)",
    )
    parser.add_argument(
        "--copies-before-pull",
        action="store_true",
        help="with --storage s3: the first pull starts once Dockyard's copies are done",
    )
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    options = Options(
        clients=_list(args.clients, CLIENTS, "client"),
        images=_list(args.images, IMAGES, "image"),
        repeats=args.repeats,
        targets=_list(",".join(targets), (DOCKYARD, REGISTRY2), "target"),
        workers=args.workers,
        large_mib=args.large_mib,
        large_layers=args.large_layers,
        small_layers=args.small_layers,
        driver=args.driver,
        pulls=not args.push_only,
        hashing_sink=args.hashing_sink,
        storage=args.storage,
        deferred_copy=args.deferred_copy,
        copies_before_pull=args.copies_before_pull,
        tmpdir=args.tmpdir,
        out=args.out,
    )
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
