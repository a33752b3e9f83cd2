"""Every private (or undocumented) name of a library that etcd_registry_tui touches still
exists on the installed version.

pyproject.toml bounds these libraries below their next minor version, and
requirements/dev.lock pins what was tested; this module is what fails, loudly and naming
the name, when an upgrade (``./dev lock --upgrade``, or a user's wider environment) removes
or renames one of them. Each use in the package has a comment pointing here; a new use of
a private name gets a line in ``USES`` below.

Overridden hooks are checked twice: the library still has the name, and the library still
calls it (an override the library no longer calls would be skipped silently, and for
``Server._make_app`` that would mean serving without the token and Origin checks).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pytest


@dataclass(frozen=True, slots=True)
class Use:
    """``owner.name`` as ``used_in`` uses it; ``owner`` is ``module:Class`` or ``module``."""

    owner: str
    name: str
    used_in: str
    #: Which installed distribution provides it (named in the failure message).
    dist: str
    #: Builds an instance when ``name`` is an attribute set in ``__init__`` (not on the class).
    instance: Callable[[type], Any] | None = None
    #: ``module:Class.method`` of the library that must still call ``name`` (an override).
    called_by: str | None = None


def _app(cls: type) -> Any:
    return cls()


def _aetcd_client(cls: type) -> Any:
    return cls(host="127.0.0.1", port=2379, username="u", password="p")


def _app_service(cls: type) -> Any:
    from textual_serve.download_manager import DownloadManager

    async def write(_: object) -> None:
        return None

    async def close() -> None:
        return None

    return cls(
        "true", write_bytes=write, write_str=write, close=close, download_manager=DownloadManager()
    )


USES = [
    # Textual
    Use("textual.app:App", "_driver", "app/__init__.py _restore_terminal", "textual", _app),
    Use(
        "textual.app:App", "_exit_renderables", "app/__init__.py _print_error_renderables",
        "textual", _app,
    ),
    Use(
        "textual.app:App", "_print_error_renderables", "app/__init__.py (overridden)", "textual",
        called_by="textual.app:App._print_error_renderables",
    ),
    Use("textual.app:App", "_is_mounted", "app/__init__.py check_action", "textual", _app),
    Use(
        "textual.widget:Widget", "_on_click", "registry_tree.py, elections_view.py (overridden)",
        "textual",
    ),
    Use("textual.cache:LRUCache", "grow", "tree_render.py _fit_caches", "textual"),
    # aetcd
    Use("aetcd:Client", "_host", "registry/registration.py", "aetcd", _aetcd_client),
    Use("aetcd:Client", "_port", "registry/registration.py", "aetcd", _aetcd_client),
    Use("aetcd:Client", "_username", "registry/registration.py", "aetcd", _aetcd_client),
    Use("aetcd:Client", "_password", "registry/registration.py", "aetcd", _aetcd_client),
    # textual-serve
    Use(
        "textual_serve.server:Server", "_make_app", "serve.py DashboardServer (overridden)",
        "textual-serve", called_by="textual_serve.server:Server.serve",
    ),
    Use("textual_serve.server", "log", "serve.py", "textual-serve"),
    Use("textual_serve.server", "to_int", "serve.py", "textual-serve"),
    Use(
        "textual_serve.app_service:AppService", "_open_app_process",
        "serve/tab.py TabService (overridden)", "textual-serve",
        called_by="textual_serve.app_service:AppService.start",
    ),
    Use(
        "textual_serve.app_service:AppService", "_build_environment", "serve/tab.py",
        "textual-serve",
    ),
    Use("textual_serve.app_service:AppService", "_process", "serve/tab.py", "textual-serve",
        _app_service),
    Use("textual_serve.app_service:AppService", "_stdin", "serve/tab.py", "textual-serve",
        _app_service),
    Use("textual_serve.app_service:AppService", "_task", "serve/tab.py", "textual-serve",
        _app_service),
    Use(
        "textual_serve.app_service:AppService", "_download_manager", "serve/tab.py",
        "textual-serve", _app_service,
    ),
    Use("textual_serve.app_service:AppService", "run", "serve/tab.py TabService (overridden)",
        "textual-serve", called_by="textual_serve.app_service:AppService.start"),
    # aiohttp (__slots__ of RequestHandler: on the class)
    Use("aiohttp.web_protocol:RequestHandler", "_waiter", "serve/net.py GatedProtocol.idle",
        "aiohttp"),
    Use("aiohttp.web_protocol:RequestHandler", "_messages", "serve/net.py GatedProtocol.idle",
        "aiohttp"),
]  # fmt: skip


def _resolve(owner: str) -> Any:
    module_name, _, attr = owner.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        target = getattr(target, part)
    return target


def _what(use: Use) -> str:
    return (
        f"{use.owner.replace(':', '.')}.{use.name} (used in etcd_registry_tui/{use.used_in}) "
        f"is gone from {use.dist} {version(use.dist)}"
    )


def check_use(use: Use) -> None:
    """Raise AssertionError naming ``use`` when the installed library no longer has it."""
    owner = _resolve(use.owner)
    if use.instance is not None:
        present = hasattr(use.instance(owner), use.name)
    else:
        present = hasattr(owner, use.name)
    assert present, _what(use)
    if use.called_by is not None:
        source = inspect.getsource(_resolve_callable(use.called_by))
        called = f".{use.name}(" in source
        assert called, (
            f"{use.called_by.replace(':', '.')} of {use.dist} {version(use.dist)} no longer "
            f"calls {use.name}, which etcd_registry_tui/{use.used_in} overrides"
        )


def _resolve_callable(spec: str) -> Any:
    # App._print_error_renderables is called from elsewhere in textual/app.py: the module.
    target = _resolve(spec)
    if spec == "textual.app:App._print_error_renderables":
        return inspect.getmodule(target)
    return target


@pytest.mark.parametrize("use", USES, ids=lambda u: f"{u.owner.rsplit(':', 1)[-1]}.{u.name}")
async def test_private_name_still_exists(use: Use) -> None:
    # async: App() and AppService() may want a running event loop
    check_use(use)


def test_a_missing_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail, and says which name, where it is used and which version lacks it."""
    from textual.cache import LRUCache

    monkeypatch.delattr(LRUCache, "grow")
    with pytest.raises(AssertionError) as failure:
        check_use(Use("textual.cache:LRUCache", "grow", "registry_tree.py", "textual"))
    message = str(failure.value)
    assert "textual.cache.LRUCache.grow" in message
    assert "registry_tree.py" in message
    assert f"textual {version('textual')}" in message


def test_an_override_no_longer_called_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An override the library has stopped calling fails too, naming the caller."""
    from textual_serve.server import Server

    async def serve(self: Server, debug: bool = False) -> None:
        return None  # a version whose serve() builds its app some other way

    monkeypatch.setattr(Server, "serve", serve)
    (use,) = [u for u in USES if u.name == "_make_app"]
    with pytest.raises(AssertionError, match=r"Server\.serve of textual-serve \S+ no longer calls"):
        check_use(use)
