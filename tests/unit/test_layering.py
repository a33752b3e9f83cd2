"""The data layer (``etcd_registry_tui.registry``) never imports Textual (or Rich), nor
the demo (``etcd_registry_tui.demo``: the private etcd launcher and the simulated fleet).

It is shared by the dashboard, the headless CLI and anything that wants to register a
service from Python; pulling a UI toolkit into those would be wrong. Checked twice: at
run time (import every module in a fresh interpreter, look at ``sys.modules``) and
statically (every ``import`` statement in every file of the package).
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import etcd_registry_tui.registry as registry_package

PACKAGE = registry_package.__name__
PACKAGE_DIR = Path(registry_package.__file__).parent
FORBIDDEN = ("textual", "rich")
DEMO = "etcd_registry_tui.demo"


def registry_modules() -> list[str]:
    """Every module of the package, found by pkgutil (sub-packages included)."""
    names = [PACKAGE]
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix=f"{PACKAGE}."):
        names.append(info.name)
    return sorted(names)


def registry_files() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_discovery_finds_the_known_modules() -> None:
    # Guards the other tests against silently checking nothing.
    modules = registry_modules()
    for expected in ("session", "leases", "model", "watcher", "etcd.connection", "registration"):
        assert f"{PACKAGE}.{expected}" in modules
    for moved in ("fleet", "embedded"):  # they belong to the demo package
        assert f"{PACKAGE}.{moved}" not in modules
    assert len(registry_files()) == len(modules)


def test_importing_every_registry_module_loads_no_textual() -> None:
    modules = registry_modules()
    code = "\n".join(
        [
            "import sys",
            *(f"import {name}" for name in modules),
            "bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.')"
            f" for f in {FORBIDDEN!r}))",
            "assert not bad, f'the data layer imported {bad}'",
            f"demo = sorted(m for m in sys.modules if (m + '.').startswith({DEMO + '.'!r}))",
            "assert not demo, f'the data layer imported the demo: {demo}'",
            "print(len([m for m in sys.modules if m.startswith('etcd_registry_tui.')]))",
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE_DIR.parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    # Every module (the package itself included) was really imported.
    assert int(proc.stdout.strip()) >= len(modules)


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module name) of every import, relative ones resolved to 'etcd_...'."""
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                continue  # relative: inside the package (or its parent, checked below)
            assert node.module is not None
            names.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            # importlib.import_module("textual") / __import__("textual")
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.append((node.lineno, arg.value))
    return names


def _relative_escapes(tree: ast.AST, path: Path | None = None) -> list[tuple[int, str]]:
    """Relative imports that leave the registry package (``from ..app import …``), for a
    file at ``path`` (default: a module directly in the package); each named as written."""
    depth = len(path.relative_to(PACKAGE_DIR).parts) - 1 if path is not None else 0
    found = []
    for node in ast.walk(tree):
        # level 1 is the file's own package; each level above climbs one sub-package
        if isinstance(node, ast.ImportFrom) and node.level - 1 > depth:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


@pytest.mark.parametrize("path", registry_files(), ids=lambda p: p.name)
def test_no_registry_file_imports_textual_or_rich(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [
        f"{path.name}:{line}: {name}"
        for line, name in _imported_names(tree)
        if name.split(".")[0] in FORBIDDEN
    ]
    assert not bad, f"the data layer imports a UI toolkit: {bad}"
    # Nor may it reach out of the package into the UI modules (app, widgets, screens).
    escapes = [f"{path.name}:{line}: from {name}" for line, name in _relative_escapes(tree, path)]
    ui = [
        f"{path.name}:{line}: {name}"
        for line, name in _imported_names(tree)
        if name.startswith("etcd_registry_tui.")
        and not name.startswith(f"{PACKAGE}.")
        and name != PACKAGE
    ]
    assert not escapes and not ui, f"the data layer imports the UI: {escapes + ui}"


def test_the_static_check_would_catch_ui_imports() -> None:
    sample = ast.parse(
        "import textual\n"
        "import rich.text as t\n"
        "from textual.app import App\n"
        "import importlib\n"
        "importlib.import_module('textual.widgets')\n"
        "from ..widgets import DetailPane\n"
        "def f():\n"
        "    from rich.console import Console\n"
    )
    found = {name for _, name in _imported_names(sample)}
    assert {"textual", "rich.text", "textual.app", "textual.widgets", "rich.console"} <= found
    assert _relative_escapes(sample) == [(6, "..widgets")]
    # From a sub-package (registry/history/), ``..`` is the registry, ``...`` leaves it.
    nested = ast.parse("from ..model import Instance\nfrom ...widgets import DetailPane\n")
    inside = PACKAGE_DIR / "history" / "store.py"
    assert _relative_escapes(nested, inside) == [(2, "...widgets")]


@pytest.mark.parametrize("path", registry_files(), ids=lambda p: p.name)
def test_no_registry_file_imports_the_demo(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    absolute = [
        f"{path.name}:{line}: {name}"
        for line, name in _imported_names(tree)
        if name == DEMO or name.startswith(f"{DEMO}.")
    ]
    relative = [
        f"{path.name}:{line}: from {name}"
        for line, name in _relative_escapes(tree, path)
        if name.lstrip(".").split(".")[0] == "demo"
    ]
    assert not absolute and not relative, f"the data layer imports the demo: {absolute + relative}"


def test_the_demo_package_holds_the_launcher_and_the_fleet() -> None:
    import etcd_registry_tui.demo as demo
    from etcd_registry_tui.demo.embedded import EmbeddedEtcd
    from etcd_registry_tui.demo.fleet import Fleet

    assert callable(demo.run_demo)
    assert EmbeddedEtcd.__module__ == f"{DEMO}.embedded" and Fleet.__module__ == f"{DEMO}.fleet"
    assert not (PACKAGE_DIR / "embedded.py").exists() and not (PACKAGE_DIR / "fleet.py").exists()
