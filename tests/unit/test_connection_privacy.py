"""Nothing outside ``registry/etcd/connection.py`` uses a private member of the connection.

The connection's retry policy (stale token, fail-over, our own cancellation) lives in one
place; a caller that reaches for ``conn._call`` / ``conn._opts`` (or any other private
member) bypasses or duplicates it. Checked statically, on every ``.py`` file of the
package and of ``bench/``: each hit is named by file, line and expression.
"""

from __future__ import annotations

import ast
from pathlib import Path

import etcd_registry_tui

PACKAGE_DIR = Path(etcd_registry_tui.__file__).parent
ROOT = PACKAGE_DIR.parent
CONNECTION = PACKAGE_DIR / "registry" / "etcd" / "connection.py"
#: Names a connection goes by in the code base (``self.conn``, ``conn``, ``self._conn``...).
CONN_NAMES = {"conn", "connection", "_conn", "_connection"}
#: Private methods of the connection, whatever the object is called.
CONN_METHODS = {"_call", "_opts"}


def _names_a_connection(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in CONN_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in CONN_NAMES
    return False


def private_uses(source: str, filename: str) -> list[str]:
    """``file:line: expression`` of every private member of a connection used in ``source``."""
    hits: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__"):
            continue
        if _names_a_connection(node.value) or node.attr in CONN_METHODS:
            hits.append((node.lineno, node.col_offset, ast.unparse(node)))
    return [f"{filename}:{line}: {text}" for line, _, text in sorted(hits)]


def _files() -> list[Path]:
    files = sorted(PACKAGE_DIR.rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    return [path for path in files if path != CONNECTION]


def test_the_check_sees_the_files() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in _files()}
    assert "etcd_registry_tui/registry/elections/campaign.py" in names
    assert "etcd_registry_tui/registry/elections/watch.py" in names
    assert "etcd_registry_tui/registry/etcd/connection.py" not in names


def test_a_private_use_is_named() -> None:
    source = (
        "async def f(self, conn):\n"
        "    await self.conn._call(run)\n"
        "    conn._opts(client)\n"
        "    self._conn._token\n"
        "    other._call()\n"
        "    self.conn.range(request)\n"
        "    self._private\n"
    )
    assert private_uses(source, "x.py") == [
        "x.py:2: self.conn._call",
        "x.py:3: conn._opts",
        "x.py:4: self._conn._token",
        "x.py:5: other._call",
    ]


def test_no_caller_outside_the_connection_uses_its_private_members() -> None:
    hits = [
        hit
        for path in _files()
        for hit in private_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not hits, "private members of the connection used outside connection.py:\n" + "\n".join(
        hits
    )
