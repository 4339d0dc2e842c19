"""The real-client benchmark's hashing sink: ``--hashing-sink`` adds a push turn against the
sink that computes every blob's sha256, and a table row measured against it. It runs with
the suite's REGISTRY_AUTH_FILE set, which registry:2 must not read as its configuration."""

from __future__ import annotations

import json
from pathlib import Path

from bench import real_clients
from bench.servers import SINK, SINK_HASH


def test_skopeo_push_has_a_row_against_the_hashing_sink(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--clients", "skopeo", "--images", "small", "--small-layers", "3",
            "--repeats", "1", "--push-only", "--hashing-sink",
            "--tmpdir", str(tmp_path), "--out", str(out)]  # fmt: skip
    assert real_clients.main(argv) == 0
    figures = json.loads((out / "clients.json").read_text())
    pushed = {entry["target"]: entry["seconds"] for entry in figures["seconds"]}
    assert set(pushed) == {"dockyard", "registry2", SINK, SINK_HASH}
    assert all(len(seconds) == 1 and seconds[0] > 0 for seconds in pushed.values())
    rows = [line.split(" | ") for line in (out / "clients.md").read_text().splitlines()
            if line.startswith("| skopeo | small |")]  # fmt: skip
    assert [row[2] for row in rows] == ["push", "push (hashing sink)"]
    assert all(cell.strip() not in ("", "-") for row in rows for cell in row[3:])
