"""A fresh server per extra benchmark mode (``--mixed``, ``--many-uploads``): started on an
empty store, stopped and its store deleted afterwards, whatever happens in between."""

from __future__ import annotations

import argparse
import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.servers import Server

MakeServer = Callable[[str, Path, Path, argparse.Namespace], Server]


@dataclass
class Harness:
    """What bench.run hands a mode: its options, directories and how it starts servers."""

    args: argparse.Namespace
    tmp: Path  # the run's temporary directory (stores)
    out: Path  # the results directory
    live: list[Server]  # servers to stop if the run is interrupted
    make_server: MakeServer
    start: Callable[[Server], None]
    env: dict[str, str]  # the environment for client processes
    repo_root: Path

    @contextlib.contextmanager
    def server(self, target: str, mode: str) -> Iterator[Server]:
        base = self.tmp / f"{target}-{mode}"
        base.mkdir()
        server = self.make_server(target, base, self.out / f"{target}-{mode}-server.log", self.args)
        self.live.append(server)
        try:
            self.start(server)
            yield server
        finally:
            server.stop()
            self.live.remove(server)
            shutil.rmtree(base, ignore_errors=True)
