"""The dependency rule of docs DESIGN.md: imports point inward, towards ``dockyard.oci``.

Every module under ``dockyard/`` is parsed (not imported) and each ``dockyard`` import it
makes, at any depth (functions, ``TYPE_CHECKING`` blocks, ``importlib.import_module``), is
checked against the table below. A module in no package of the table may not import
anything of dockyard until it is placed there.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dockyard

PACKAGE_ROOT = Path(dockyard.__file__).parent

# What each inner package may import besides itself (DESIGN.md, "The shape").
ALLOWED = {
    "oci": set(),
    "storage": {"oci"},
    "metadata": {"oci"},
    "auth": {"oci"},
    "remote": {"oci"},
    "registry": {"oci", "storage", "metadata"},
    "api": {"registry", "auth", "oci"},
}
# api may also catch the exceptions of storage and metadata, and nothing else of them.
EXCEPTIONS_ONLY = {"api": {"storage", "metadata"}}
# One capability each, "inward only": the core, never the wiring or the HTTP layer.
CAPABILITIES = {
    "gc",
    "proxy",
    "notify",
    "sync",
    "ui",
    "observability",
    "registry2",
    "retention",
    "fsck",
    "letsencrypt",
    "replication",
}
CAPABILITY_MAY_IMPORT = {
    "oci",
    "storage",
    "metadata",
    "registry",
    "auth",
    "observability",
    "remote",
}
# Capabilities built on another one: replication runs the sync engine.
BUILT_ON = {"replication": {"sync"}}
# The configuration model, the commands and the wiring may import everything.
WIRING = {
    "__init__",
    "allocator",
    "__main__",
    "app",
    "cli",
    "config",
    "database",
    "letsencrypt_setup",
    "notify_setup",
    "proxy_setup",
    "replication_setup",
    "replication_commands",
    "monitoring",
    "gc_command",
    "registry2_commands",
    "store_commands",
    "store_views",
    "sync_commands",
    "security",
    "startup",
    "migrate_apart",
    "storage_setup",
    "supervisor",
    "token_setup",
}

# Violations found and reported, kept visible here until they are fixed (strict xfail: the
# test fails once the module complies, so that the entry is removed).
KNOWN_VIOLATIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the dockyard module imported ("dockyard.storage.driver")
    names: tuple[str, ...]  # the names taken from it (from-imports), else ()
    line: int


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def modules() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def dockyard_imports(path: Path) -> list[Import]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, name: str, is_package: bool) -> list[Import]:
    """The dockyard imports of module ``name``, whose source is ``source``."""
    tree = ast.parse(source, name)
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            if target == "dockyard":
                # "from dockyard import oci" imports the subpackage.
                found += [Import(f"dockyard.{n}", (), node.lineno) for n in names]
            else:
                found.append(Import(target, names, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in ("import_module", "__import__")
                )
            )
        ):
            found.append(Import(node.args[0].value, (), node.lineno))
    return [i for i in found if i.module == "dockyard" or i.module.startswith("dockyard.")]


def layer_of(module: str) -> str:
    """The package (or top-level module) a dockyard module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_exception(module: str, name: str) -> bool:
    value = getattr(importlib.import_module(module), name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def violations(name: str, imports: list[Import]) -> list[str]:
    own = layer_of(name)
    if own in WIRING:
        return []
    if own in ALLOWED:
        allowed = ALLOWED[own]
    elif own in CAPABILITIES:
        allowed = CAPABILITY_MAY_IMPORT | BUILT_ON.get(own, set())
    elif imports:
        return [f"{name} is in no package of the dependency table: place it there"]
    else:
        return []
    found = []
    for imported in imports:
        target = layer_of(imported.module)
        if target in (own, *allowed):
            continue
        if (
            target in EXCEPTIONS_ONLY.get(own, set())
            and imported.names
            and all(is_exception(imported.module, n) for n in imported.names)
        ):
            continue
        what = imported.module
        if imported.names:
            what += f" ({', '.join(imported.names)})"
        found.append(f"{name}:{imported.line} imports {what}")
    return found


def _params() -> list[Any]:
    params = []
    for path in modules():
        name = module_name(path)
        marks = []
        if name in KNOWN_VIOLATIONS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[name]))
        params.append(pytest.param(path, id=name, marks=marks))
    return params


@pytest.mark.parametrize("path", _params())
def test_module_imports_point_inward(path: Path) -> None:
    assert violations(module_name(path), dockyard_imports(path)) == []


def test_the_parser_sees_every_kind_of_import() -> None:
    """The check is only as good as its parser: feed it each form once."""
    found = dockyard_imports(PACKAGE_ROOT / "oci" / "digest.py")
    assert [(i.module, i.names) for i in found] == [("dockyard.oci", ("errors",))]
    source = (
        "import os\n"
        "import dockyard.storage.driver\n"
        "from dockyard import metadata\n"
        "from . import sibling\n"
        "from ..registry.service import Registry\n"
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from dockyard.gc import Collector\n"
        "def late():\n"
        "    from dockyard.api.app import build_app\n"
        "    importlib.import_module('dockyard.cli')\n"
    )
    found = imports_in(source, "dockyard.oci.probe", is_package=False)
    assert [i.module for i in found] == [
        "dockyard.storage.driver",
        "dockyard.metadata",
        "dockyard.oci",
        "dockyard.registry.service",
        "dockyard.gc",
        "dockyard.api.app",
        "dockyard.cli",
    ]
    assert len(violations("dockyard.oci.probe", found)) == 6  # all but the sibling
    assert violations("dockyard.registry.probe", found[:4]) == []
    assert violations("dockyard.newthing", []) == []
    assert violations("dockyard.newthing", found[:1]) == [
        "dockyard.newthing is in no package of the dependency table: place it there"
    ]


def test_api_may_take_exceptions_only() -> None:
    exception = Import("dockyard.storage.driver", ("InvalidPathError",), 1)
    driver = Import("dockyard.storage.driver", ("StorageDriver",), 2)
    assert violations("dockyard.api.probe", [exception]) == []
    assert violations("dockyard.api.probe", [driver]) == [
        "dockyard.api.probe:2 imports dockyard.storage.driver (StorageDriver)"
    ]
    module = Import("dockyard.storage.driver", (), 3)
    assert len(violations("dockyard.api.probe", [module])) == 1


def test_every_package_of_the_table_exists() -> None:
    for package in ALLOWED:
        assert (PACKAGE_ROOT / package / "__init__.py").exists() or (
            PACKAGE_ROOT / package
        ).is_dir(), package


def test_api_takes_only_exceptions_from_storage_and_metadata() -> None:
    """Listed so that the report names them: each is a candidate for mapping in registry."""
    taken = sorted(
        f"{module_name(path)} <- {imported.module}.{name}"
        for path in (PACKAGE_ROOT / "api").rglob("*.py")
        for imported in dockyard_imports(path)
        if layer_of(imported.module) in ("storage", "metadata")
        for name in imported.names
    )
    for entry in taken:
        module, _, name = entry.split(" <- ")[1].rpartition(".")
        assert is_exception(module, name), entry
