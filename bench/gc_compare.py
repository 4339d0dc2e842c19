"""Garbage collection, Dockyard against registry:2, on copies of one large store.

    python -m bench.gc_compare [--manifests 10000] [--blobs 100000] [--garbage 0.01]
                               [--tmpdir DIR] [--keep] [--serving SECONDS]
                               [--prepare-only DIR | --prepared DIR]

A registry:2 store is written directly in Distribution's layout (small blobs, so that a
store of 100,000 blobs takes seconds to make): ``--manifests`` image manifests spread over
100 repositories, each with a config and unique layers so that the store holds ``--blobs``
blobs; a ``--garbage`` fraction of the manifests lose their tag (a tag overwritten by a
later push) and so become collectable with their blobs. The store is copied; one copy is
imported into Dockyard (``dockyard import``, not timed). Then, one after the other (the
machine has two cores), ``docker-registry garbage-collect --delete-untagged`` runs on one
copy and ``dockyard garbage-collect --delete-untagged`` on the other; both are timed from
the outside, and Dockyard's own collection time (its summary line) is read too. Both must
leave the same blobs. The ratio is printed, with the machine's load, since this one is
shared. With ``--serving``, bench/gc_serving.py then measures what collections running
beside pushes and pulls cost them.

Making, copying and importing the store is no part of the measurement, and takes minutes
of disk work: ``--prepare-only DIR`` does only that (run it outside the benchmark lock,
under ``nice``/``ionice``), and ``--prepared DIR`` then runs only the timed part on it
(under the lock; it uses the copies up).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.gc_serving import measure

REPO = Path(__file__).resolve().parents[1]
V2 = Path("docker/registry/v2")
REPOSITORIES = 100
DOCKYARD = [sys.executable, "-m", "dockyard"]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Layout:
    """Writes blobs and link files where Distribution puts them, with plain file calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: set[Path] = set()

    def _write(self, path: Path, data: bytes) -> None:
        if path.parent not in self.made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.made.add(path.parent)
        path.write_bytes(data)

    def blob(self, data: bytes) -> str:
        hexdigest = hashlib.sha256(data).hexdigest()
        self._write(self.root / V2 / "blobs/sha256" / hexdigest[:2] / hexdigest / "data", data)
        return "sha256:" + hexdigest

    def link(self, repository: str, kind: str, digest: str) -> None:
        base = self.root / V2 / "repositories" / repository
        self._write(base / kind / "sha256" / digest[7:] / "link", digest.encode())

    def tag(self, repository: str, tag: str, digest: str) -> None:
        base = self.root / V2 / "repositories" / repository / "_manifests/tags" / tag
        self._write(base / "current/link", digest.encode())
        self._write(base / "index/sha256" / digest[7:] / "link", digest.encode())


def make_store(root: Path, manifests: int, blobs: int, garbage: float) -> int:
    """The store; returns how many blobs (layers and configs) it holds."""
    layout = Layout(root)
    per_image = max(blobs // manifests - 1, 1)  # layers per image, besides its config
    untagged_every = round(1 / garbage) if garbage > 0 else 0
    written = 0
    for number in range(manifests):
        repository = f"bench/repo{number % REPOSITORIES:03d}"
        layers = [os.urandom(32) + number.to_bytes(4, "big") + bytes([i]) for i in range(per_image)]
        config = json.dumps({"os": "linux", "architecture": "amd64", "n": number}).encode()
        descriptors = []
        for data in layers:
            digest = layout.blob(data)
            layout.link(repository, "_layers", digest)
            descriptors.append(
                {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}
            )
        config_digest = layout.blob(config)
        layout.link(repository, "_layers", config_digest)
        written += len(layers) + 1
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": descriptors,
            }
        ).encode()
        digest = layout.blob(manifest)
        layout.link(repository, "_manifests/revisions", digest)
        # Each repository keeps tags (registry:2's -m fails on one without any).
        if not (untagged_every and (number // REPOSITORIES) % untagged_every == 0):
            layout.tag(repository, f"v{number}", digest)
    return written


def config_file(root: Path) -> Path:
    path = root.parent / f"{root.name}.yml"
    path.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root}\ngc:\n  reviewafter: 0s\n"
    )
    return path


def timed(argv: list[str]) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout + done.stderr


def blob_set(root: Path) -> set[str]:
    return {p.parent.name for p in (root / V2 / "blobs").glob("sha256/*/*/data")}


def prepare(work: Path, args: argparse.Namespace) -> None:
    """The two copies of the store in ``work``, one of them imported into Dockyard."""
    started = time.perf_counter()
    count = make_store(work / "registry2", args.manifests, args.blobs, args.garbage)
    made = time.perf_counter() - started
    print(f"store: {args.manifests} manifests, {count} blobs in {made:.1f}s")
    shutil.copytree(work / "registry2", work / "dockyard")
    imported, _ = timed([*DOCKYARD, "import", str(config_file(work / "dockyard"))])
    print(f"dockyard import: {imported:.1f}s (not part of the comparison)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--garbage", type=float, default=0.01, help="fraction of untagged images")
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the stores afterwards")
    parser.add_argument(
        "--serving",
        type=float,
        default=0,
        metavar="SECONDS",
        help="then measure push/pull rates with and without collections running (0: skip)",
    )
    prepared = parser.add_mutually_exclusive_group()
    prepared.add_argument(
        "--prepare-only", type=Path, metavar="DIR", help="make the stores in DIR, then stop"
    )
    prepared.add_argument(
        "--prepared", type=Path, metavar="DIR", help="compare on the stores --prepare-only made"
    )
    args = parser.parse_args()
    registry2 = shutil.which("docker-registry", path="/usr/bin:/usr/sbin")
    if registry2 is None:
        raise SystemExit("docker-registry (Debian package) is not installed")
    if args.prepare_only is not None:
        args.prepare_only.mkdir(parents=True)
        prepare(args.prepare_only, args)
        return
    work = args.prepared or Path(tempfile.mkdtemp(prefix="dockyard-gc-bench-", dir=args.tmpdir))
    try:
        if args.prepared is None:
            prepare(work, args)
        dockyard_config = str(config_file(work / "dockyard"))
        load = os.getloadavg()[0]
        r2_seconds, _ = timed(
            [
                registry2,
                "garbage-collect",
                "--delete-untagged",
                str(config_file(work / "registry2")),
            ]
        )
        dy_seconds, output = timed([*DOCKYARD, "garbage-collect", "-m", "-q", dockyard_config])
        summary = output.strip().splitlines()[-1]
        found = re.search(r"in ([0-9.]+)s\.", summary)
        collection = float(found.group(1)) if found else float("nan")
        same = blob_set(work / "registry2") == blob_set(work / "dockyard")
        print(f"dockyard: {summary}")
        print(
            f"load average before the runs: {load:.2f} (a shared machine: compare within one run)"
        )
        print(f"registry:2 garbage-collect -m: {r2_seconds:.2f}s")
        print(
            f"dockyard garbage-collect -m:   {dy_seconds:.2f}s wall (collection {collection:.2f}s)"
        )
        wall, inside = r2_seconds / dy_seconds, r2_seconds / collection
        print(f"ratio, wall: {wall:.1f}x; collection only: {inside:.1f}x")
        print(f"same blobs left: {same}")
        if args.serving:
            rates = measure(work / "dockyard", work, args.serving)
            (push0, pull0), (push1, pull1) = rates["without"], rates["with"]
            print(f"serving without collections: {push0:.1f} pushes/s, {pull0:.1f} pulls/s")
            print(f"serving while collecting:    {push1:.1f} pushes/s, {pull1:.1f} pulls/s")
            print(f"ratio: pushes {push1 / push0:.2f}x, pulls {pull1 / pull0:.2f}x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
