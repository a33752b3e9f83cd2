"""``serve``: the dashboard in a browser, through textual-serve.

Every browser tab gets its own dashboard process (``python -m etcd_registry_tui ...``), ended
when the tab closes. Safe by default: it binds 127.0.0.1 and the served dashboard runs with
``--read-only`` unless ``--allow-writes`` is given. The password never goes on a command line:
the served processes take it from ``ETCDCTL_PASSWORD`` in their environment.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .registry.config import ConnectionConfig, format_host_port
from .registry.errors import ConfigError
from .registry.sanitize import safe_line

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

AddOptions = Callable[[argparse.ArgumentParser, bool], None]


def add_parser(sub: Any, add_connection_options: AddOptions) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the dashboard in a browser (read-only, on 127.0.0.1, unless told otherwise)",
        description="Serve the dashboard to web browsers: each tab runs its own dashboard, "
        "ended when the tab closes. There is no login: whoever reaches the address sees it.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8000)")
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL browsers use, when behind a proxy (e.g. https://example.org/etcd)",
    )
    p.add_argument(
        "--allow-writes",
        action="store_true",
        help="let browsers register, renew and delete (default: read-only)",
    )
    p.add_argument(
        "--elections-prefix",
        action="append",
        default=argparse.SUPPRESS,
        metavar="P",
        help="look for elections and locks only under P (repeatable)",
    )
    add_connection_options(p, True)


@dataclass(frozen=True, slots=True)
class ServePlan:
    """What ``serve`` runs: the command per tab, its extra environment, where it listens."""

    command: str
    env: dict[str, str]
    host: str
    port: int
    public_url: str
    title: str
    read_only: bool


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"--public-url {url!r} is not an http:// or https:// URL",
            "give the address browsers use, e.g. https://example.org/etcd",
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"--public-url {url!r} must not have a query or fragment")
    return url.rstrip("/")


def served_argv(
    config: ConnectionConfig,
    read_only: bool,
    elections_prefixes: Iterable[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The dashboard command each tab runs: the resolved connection, never the password."""
    argv = [python, "-m", "etcd_registry_tui"]
    if read_only:
        argv.append("--read-only")
    argv += ["--endpoints", ",".join(config.endpoints), "--prefix", config.prefix]
    argv += ["--dial-timeout", f"{config.dial_timeout:g}s"]
    argv += ["--command-timeout", f"{config.command_timeout:g}s"]
    if config.user is not None:
        argv += ["--user", config.user]
    for option, path in (("--cacert", config.cacert), ("--cert", config.cert)):
        if path:
            argv += [option, os.path.abspath(path)]
    if config.key:
        argv += ["--key", os.path.abspath(config.key)]
    for prefix in elections_prefixes:
        argv += ["--elections-prefix", prefix]
    return argv


def plan(
    config: ConnectionConfig,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    public_url: str | None = None,
    allow_writes: bool = False,
    read_only: bool = False,
    elections_prefixes: Iterable[str] = (),
    python: str = sys.executable,
) -> ServePlan:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is out of range (1-65535)")
    if not host.strip():
        raise ConfigError("--host is empty", "give an address to bind, e.g. 127.0.0.1")
    writes = allow_writes and not read_only
    argv = served_argv(config, not writes, elections_prefixes, python)
    # ``exec``: the tab's process is the dashboard itself, not a shell waiting for it.
    command = "exec " + shlex.join(argv)
    env = {}
    if config.password is not None:
        env["ETCDCTL_PASSWORD"] = config.password
    if public_url is not None:
        url = check_public_url(public_url)
    else:
        url = f"http://{format_host_port(host, port)}"
    mode = "" if writes else " (read-only)"
    title = safe_line(f"etcd-registry-tui · {config.label}{config.prefix}{mode}")
    return ServePlan(command, env, host, port, url, title, not writes)


def _page_template(source: str, title_expr: str = "{{ application.name }}") -> str:
    """textual-serve's page with a ``<title>`` (the endpoint), loading nothing from outside.

    The stock page has no ``<title>`` and fetches a web font from fonts.googleapis.com; a
    dashboard of an internal registry should neither show as a bare URL nor call out.
    """
    cleaned = re.sub(r"<link[^>]*fonts\.googleapis\.com[^>]*>", "", source)
    return cleaned.replace("<head>", f"<head>\n    <title>{title_expr}</title>", 1)


def make_server(p: ServePlan) -> Any:
    import asyncio
    import signal

    import aiohttp_jinja2
    import jinja2
    from aiohttp import WSCloseCode, web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, log, to_int

    class DashboardServer(Server):
        """textual-serve's server, plus a titled page and an end to every tab's process.

        Stock textual-serve waits for open tabs on Ctrl-C / SIGTERM (up to a minute) and can
        leave their dashboards running; here shutting down closes every tab's socket, which
        quits its dashboard, and whatever is still running at the very end is terminated.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tabs: dict[web.WebSocketResponse, AppService] = {}

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            aiohttp_jinja2.setup(app, loader=jinja2.DictLoader({"app_index.html": page}))
            return app

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            # As textual-serve's, keeping each tab's socket and dashboard in ``tabs``.
            websocket = web.WebSocketResponse(heartbeat=15)
            width = to_int(request.query.get("width", "80"), 80)
            height = to_int(request.query.get("height", "24"), 24)
            service: AppService | None = None

            async def close() -> None:
                await websocket.close()

            try:
                await websocket.prepare(request)
                service = AppService(
                    self.command,
                    write_bytes=websocket.send_bytes,
                    write_str=websocket.send_str,
                    close=close,
                    download_manager=self.download_manager,
                    debug=self.debug,
                )
                self.tabs[websocket] = service
                await service.start(width, height)
                await self._process_messages(websocket, service)
            except asyncio.CancelledError:
                await websocket.close()
            except Exception as error:
                log.exception(error)
            finally:
                if service is not None:
                    await service.stop()
                self.tabs.pop(websocket, None)
            return websocket

        async def on_shutdown(self, app: web.Application) -> None:
            await asyncio.gather(
                *(ws.close(code=WSCloseCode.GOING_AWAY) for ws in list(self.tabs)),
                return_exceptions=True,
            )

        def end_tabs(self) -> None:
            for service in list(self.tabs.values()):
                process = service._process
                if process is not None and process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGTERM)

    server = DashboardServer(
        p.command, host=p.host, port=p.port, title=p.title, public_url=p.public_url
    )
    stock = Path(server.templates_path, "app_index.html").read_text(encoding="utf-8")
    page = _page_template(stock)
    return server


def notice(p: ServePlan) -> list[str]:
    lines = [f"etcd-registry-tui: serving {p.title} on {p.public_url}"]
    if p.read_only:
        lines.append("  read-only: browsers cannot register, renew or delete (--allow-writes)")
    else:
        lines.append("  WRITES ALLOWED: every browser that reaches it can change the registry")
    if not _is_loopback(p.host):
        lines.append(
            f"  bound to {p.host}: anyone who can reach port {p.port} gets the dashboard,"
            " without a login; put it behind an authenticating proxy"
        )
    return lines


def run_serve(args: argparse.Namespace, config: ConnectionConfig) -> int:
    p = plan(
        config,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        allow_writes=args.allow_writes,
        read_only=getattr(args, "read_only", False),
        elections_prefixes=getattr(args, "elections_prefix", None) or (),
    )
    for line in notice(p):
        print(line, file=sys.stderr, flush=True)
    # textual-serve hands its own environment to every tab's process.
    os.environ.update(p.env)
    server = make_server(p)
    try:
        server.serve()
    finally:
        server.end_tabs()
    return 0
