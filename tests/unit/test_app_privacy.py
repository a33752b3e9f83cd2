"""The app's parts (``etcd_registry_tui/app/``) own their state: none touches a private
member of another part or of the app.

``RegistryApp`` is put together from plain objects (flush, actions, terminal, elections,
history, probes), each reached through its public methods; what they share is public (the
session, the pending updates, the widgets). A part that reads ``app._quitting`` or calls
``flush._show_detail()`` couples itself to another's insides again, as the mixins did.
Checked statically: in every module of the package, a private name (``_x``, not a dunder)
may follow only ``self.`` (or ``cls.``), and only one that the class itself defines (no
mixin reaching its siblings' members through ``self``); nothing imports a private name
from a part; and outside the package nothing reaches for a private member of an ``app``.
Each hit is named by file, line and expression.
"""

from __future__ import annotations

import ast
from pathlib import Path

import etcd_registry_tui

PACKAGE_DIR = Path(etcd_registry_tui.__file__).parent
APP_DIR = PACKAGE_DIR / "app"
ROOT = PACKAGE_DIR.parent
#: Names the app goes by outside its package (``self.app`` in a screen, ``app`` elsewhere).
APP_NAMES = {"app", "_app"}
#: Private by name only: the standard library's documented exit without clean-up.
ALLOWED = {"os._exit"}
#: Textual's private members the app itself uses (tests/test_private_apis.py checks them).
TEXTUAL_PRIVATE = {"_driver", "_exit_renderables", "_is_mounted", "_print_error_renderables"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def part_private_uses(source: str, filename: str) -> list[str]:
    """In a module of the app's package: private members used on anything but ``self``,
    private names imported, and ``getattr(x, "_y")`` on anything but ``self``."""
    hits: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node.value):
            if ast.unparse(node) in ALLOWED:
                continue
            hits.append((node.lineno, node.col_offset, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom) and (node.level or "app" in (node.module or "")):
            for alias in node.names:
                if _private(alias.name):
                    hits.append((node.lineno, node.col_offset, f"import {alias.name}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
            and not _own(node.args[0])
        ):
            hits.append((node.lineno, node.col_offset, ast.unparse(node)))
    return [f"{filename}:{line}: {text}" for line, _, text in sorted(hits)]


def _assigned_on_self(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Attribute) and _own(target.value):
        return [target.attr]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _assigned_on_self(element)]
    return []


def foreign_self_privates(source: str, filename: str) -> list[str]:
    """``self._x`` that the class using it does not define (a method, a class attribute, or
    an assignment to ``self._x``): state or helpers of another class reached through
    ``self``, which is what mixins of one app do."""
    hits: list[tuple[int, int, str]] = []
    for cls in ast.walk(ast.parse(source, filename)):
        if not isinstance(cls, ast.ClassDef):
            continue
        defined = set(TEXTUAL_PRIVATE)
        for node in ast.walk(cls):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    defined.update(_assigned_on_self(target))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                defined.update(_assigned_on_self(node.target))
                if isinstance(node.target, ast.Name):
                    defined.add(node.target.id)
        for statement in cls.body:
            if isinstance(statement, ast.Assign):
                defined.update(t.id for t in statement.targets if isinstance(t, ast.Name))
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and _own(node.value)
                and _private(node.attr)
                and node.attr not in defined
            ):
                hits.append((node.lineno, node.col_offset, f"{cls.name}: {ast.unparse(node)}"))
    return [f"{filename}:{line}: {text}" for line, _, text in sorted(hits)]


def _names_the_app(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in APP_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in APP_NAMES
    return False


def app_private_uses(source: str, filename: str) -> list[str]:
    """Outside the app's package: private members of something called ``app``."""
    hits = [
        (node.lineno, node.col_offset, ast.unparse(node))
        for node in ast.walk(ast.parse(source, filename))
        if isinstance(node, ast.Attribute) and _private(node.attr) and _names_the_app(node.value)
    ]
    return [f"{filename}:{line}: {text}" for line, _, text in sorted(hits)]


def _part_files() -> list[Path]:
    return sorted(APP_DIR.glob("*.py"))


def _other_files() -> list[Path]:
    return [path for path in sorted(PACKAGE_DIR.rglob("*.py")) if APP_DIR not in path.parents]


def test_the_check_sees_the_parts() -> None:
    names = {path.name for path in _part_files()}
    assert {"__init__.py", "flush.py", "actions.py", "terminal.py"} <= names
    assert {"elections.py", "history.py", "probes.py"} <= names
    assert not list(PACKAGE_DIR.glob("app_*.py")), "the mixins are gone"
    others = {path.relative_to(PACKAGE_DIR).as_posix() for path in _other_files()}
    assert "screens/inspect.py" in others and "app/flush.py" not in others


def test_a_private_use_in_a_part_is_named() -> None:
    source = (
        "from .flush import Flush, _helper\n"
        "class Part:\n"
        "    def f(self, other):\n"
        "        self._own = 1\n"
        "        self._app.notify('x')\n"
        "        self._app._quitting = True\n"
        "        self._flush._show_detail()\n"
        "        other._state\n"
        "        getattr(self._app, '_driver')\n"
        "        getattr(self, '_mine')\n"
        "        self.__dunder\n"
    )
    assert part_private_uses(source, "x.py") == [
        "x.py:1: import _helper",
        "x.py:6: self._app._quitting",
        "x.py:7: self._flush._show_detail",
        "x.py:8: other._state",
        "x.py:9: getattr(self._app, '_driver')",
    ]


def test_a_private_of_another_class_reached_through_self_is_named() -> None:
    source = (
        "class ApplyMixin(AppHost):\n"
        "    _count: int\n"
        "    def _sync_marks(self):\n"
        "        self._refresh_leader_marks()\n"
        "        self._sync_marks()\n"
        "        self._seen, self._count = 1, 2\n"
        "        self._seen += self._count\n"
        "        self._fail(None, 'x')\n"
        "        self._is_mounted\n"
    )
    assert foreign_self_privates(source, "x.py") == [
        "x.py:4: ApplyMixin: self._refresh_leader_marks",
        "x.py:8: ApplyMixin: self._fail",
    ]


def test_a_private_use_of_the_app_elsewhere_is_named() -> None:
    source = "def f(self, app):\n    self.app._fail()\n    app._tick()\n    self.app.notify()\n"
    assert app_private_uses(source, "x.py") == ["x.py:2: self.app._fail", "x.py:3: app._tick"]


def test_no_part_touches_another_part_or_the_app_privately() -> None:
    hits = [
        hit
        for path in _part_files()
        for check in (part_private_uses, foreign_self_privates)
        for hit in check(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    hits += [
        hit
        for path in _other_files()
        for hit in app_private_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not hits, "private members used across the app's parts:\n" + "\n".join(hits)
