"""docs/garbage-collection.md cannot drift: its configuration examples load, its command
line is the command's, and it points at the retention helper's page."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from dockyard.cli import main
from dockyard.config import load_config

DOC = (Path(__file__).parents[2] / "docs" / "garbage-collection.md").read_text()


def test_every_yaml_example_loads_without_warnings(tmp_path: Path) -> None:
    examples = re.findall(r"```yaml\n(.*?)```", DOC, re.S)
    assert examples
    for number, example in enumerate(examples):
        path = tmp_path / f"example{number}.yml"
        path.write_text(example)
        loaded = load_config(path)
        assert loaded.warnings == [], example
        assert loaded.config.gc.enabled


def test_every_option_of_the_command_is_documented() -> None:
    usage = CliRunner().invoke(main, ["garbage-collect", "--help"]).output
    for option in re.findall(r"(-\w), (--[\w-]+)", usage.replace("-h, --help", "")):
        assert f"[{option[1]}|{option[0]}]" in DOC, option


def test_the_retention_headings_point_at_its_page() -> None:
    for heading in ("## Retention and immutable tags", "## du and fsck"):
        section = DOC[DOC.index(heading) :]
        assert "(retention.md)" in section.split("\n## ")[0], heading
