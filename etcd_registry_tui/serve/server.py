"""``serve``: the dashboard in a browser, through textual-serve.

Every browser tab gets its own dashboard process (``python -m etcd_registry_tui ...``), ended
when the tab closes (see :mod:`.tab`). Safe by default: it binds 127.0.0.1, the served
dashboard runs with ``--read-only`` unless ``--allow-writes`` is given, and nothing is served
without the random token of the start-up URL, to the served Host and Origin only (see
:mod:`.guard`). The password never goes on a command line: the served processes take it
from ``ETCDCTL_PASSWORD`` in their environment.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import logging
import math
import os
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..cli.args import AddOptions, add_elections_prefix
from ..registry.etcd.aio import within
from ..registry.etcd.config import ConnectionConfig, format_host_port
from ..registry.etcd.errors import ConfigError
from ..registry.sanitize import safe_line
from .guard import is_loopback
from .net import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_TABS = 8
DEFAULT_MAX_TABS_PER_CLIENT = 3
#: Seconds between websocket pings; a browser that has not answered one within half of
#: this (a frozen link, a sleeping laptop) loses its tab.
DEFAULT_HEARTBEAT_S = 15.0
#: Largest websocket message from a browser (keys, pastes, resizes); larger closes the tab.
MAX_MESSAGE_BYTES = 64 * 1024


def add_parser(sub: Any, add_connection_options: AddOptions) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the dashboard in a browser (read-only, on 127.0.0.1, unless told otherwise)",
        description="Serve the dashboard to web browsers: each tab runs its own dashboard, "
        "ended when the tab closes. Open the URL it prints at start: it carries a random token "
        "made at each launch, without which nothing is served (as Jupyter does). Only that "
        "Host and Origin are served; every answer carries Content-Security-Policy: "
        "frame-ancestors 'none', X-Frame-Options: DENY and X-Content-Type-Options: nosniff.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8000)")
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL browsers use, when behind a proxy (e.g. https://example.org/etcd);"
        " needed when --host is a wildcard such as 0.0.0.0",
    )
    p.add_argument(
        "--max-tabs",
        type=int,
        default=DEFAULT_MAX_TABS,
        metavar="N",
        help=f"most tabs (dashboard processes) at once; more are refused with HTTP 503"
        f" (default {DEFAULT_MAX_TABS})",
    )
    p.add_argument(
        "--max-tabs-per-client",
        type=int,
        default=DEFAULT_MAX_TABS_PER_CLIENT,
        metavar="N",
        help="most tabs from one client address (behind a proxy: the proxy's);"
        f" more are refused with HTTP 503 (default {DEFAULT_MAX_TABS_PER_CLIENT})",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="most open connections at once; more are closed on accept"
        f" (default {DEFAULT_MAX_CONNECTIONS})",
    )
    p.add_argument(
        "--max-connections-per-client",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        metavar="N",
        help="most open connections from one client address; more are closed on accept"
        f" (default {DEFAULT_MAX_CONNECTIONS_PER_CLIENT})",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT_S,
        metavar="S",
        help="seconds a connection has to send its request line and headers (and to stay"
        f" idle between requests) before it is closed (default {DEFAULT_HEADER_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=DEFAULT_HEARTBEAT_S,
        metavar="S",
        help="seconds between pings to each tab's browser; one that does not answer within"
        " half of that (a frozen link), or takes no output for 2*S (at least 5 s), loses"
        " its tab, whose process ends and whose place is freed within about 2*S+10 s"
        f" (default {DEFAULT_HEARTBEAT_S:g})",
    )
    p.add_argument(
        "--allow-writes",
        action="store_true",
        help="let browsers register, renew and delete (default: read-only)",
    )
    add_elections_prefix(p)
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
    token: str = ""
    max_tabs: int = DEFAULT_MAX_TABS
    max_tabs_per_client: int = DEFAULT_MAX_TABS_PER_CLIENT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT_S
    heartbeat: float = DEFAULT_HEARTBEAT_S

    @property
    def open_url(self) -> str:
        """The URL to open: the page, with this launch's token."""
        return f"{self.public_url}/?token={self.token}"


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
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
    # A tab never switches profile: that would start another dashboard with the other
    # profile's credentials (and, before the fix, with writes on).
    argv = [python, "-m", "etcd_registry_tui", "--no-profile-switch"]
    if read_only:
        argv.append("--read-only")
    argv += ["--endpoints", ",".join(config.endpoints)]
    for prefix in config.prefixes:
        argv.append(f"--prefix={prefix}")  # '=': a prefix may start with '-'
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
    token: str | None = None,
    max_tabs: int = DEFAULT_MAX_TABS,
    max_tabs_per_client: int = DEFAULT_MAX_TABS_PER_CLIENT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT_S,
    heartbeat: float = DEFAULT_HEARTBEAT_S,
) -> ServePlan:
    from .guard import new_token

    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is out of range (1-65535)")
    if not host.strip():
        raise ConfigError("--host is empty", "give an address to bind, e.g. 127.0.0.1")
    if _is_wildcard(host) and public_url is None:
        raise ConfigError(
            f"--host {host} binds every address but names none browsers can use",
            "give --public-url, e.g. --public-url http://dash.example.org:8000",
        )
    if max_tabs < 1:
        raise ConfigError(f"--max-tabs {max_tabs} must be at least 1")
    if max_tabs_per_client < 1:
        raise ConfigError(f"--max-tabs-per-client {max_tabs_per_client} must be at least 1")
    for option, value in (
        ("--max-connections", max_connections),
        ("--max-connections-per-client", max_connections_per_client),
    ):
        if value < 1:
            raise ConfigError(f"{option} {value} must be at least 1")
    if not 0 < header_timeout <= 3600:  # also refuses nan
        raise ConfigError(f"--header-timeout {header_timeout:g} must be in (0, 3600] seconds")
    if not 0.2 <= heartbeat <= 3600:  # also refuses nan
        raise ConfigError(f"--heartbeat {heartbeat:g} must be in [0.2, 3600] seconds")
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
    title = safe_line(
        f"etcd-registry-tui · {config.label}{' '.join(config.watched_prefixes)}{mode}"
    )
    return ServePlan(
        command, env, host, port, url, title, not writes,
        token=token if token is not None else new_token(),
        max_tabs=max_tabs, max_tabs_per_client=max_tabs_per_client,
        max_connections=max_connections, max_connections_per_client=max_connections_per_client,
        header_timeout=header_timeout, heartbeat=heartbeat,
    )  # fmt: skip


def _page_template(source: str, title_expr: str = "{{ application.name }}") -> str:
    """textual-serve's page with a ``<title>`` (the endpoint), loading nothing from outside.

    The stock page has no ``<title>`` and fetches a web font from fonts.googleapis.com; a
    dashboard of an internal registry should neither show as a bare URL nor call out.
    """
    cleaned = re.sub(r"<link[^>]*fonts\.googleapis\.com[^>]*>", "", source)
    return cleaned.replace("<head>", f"<head>\n    <title>{title_expr}</title>", 1)


#: Where textual.js builds a download's URL (``${window.location.origin}/download/KEY``,
#: with no token and no path prefix).
_STOCK_DOWNLOAD_URL = "/download/${"


def _script_with_token(source: str, token: str, public_url: str = "") -> str:
    """textual.js, opening downloads at ``/download/TOKEN/KEY`` under the public URL's
    path (behind a proxy serving ``https://example.org/etcd``: ``/etcd/download/...``,
    not the origin's root, where the token would go to whatever else is served there).
    If a textual-serve release spells the URL otherwise, the script is served as it is and
    downloads are refused (403), never served without the token."""
    if source.count(_STOCK_DOWNLOAD_URL) != 1:
        return source
    # in a JavaScript template literal: nothing that could end it or interpolate
    prefix = quote(urlsplit(public_url).path.rstrip("/"), safe="/%:@!&'()*+,;=-._~")
    return source.replace(_STOCK_DOWNLOAD_URL, f"{prefix}/download/{token}/${{")


def _static_file(root: Path, path: str) -> Path | None:
    """The file ``path`` names under ``root``; None if none, or if it leads outside."""
    try:
        wanted = (root / path).resolve()
        if not wanted.is_relative_to(root) or not wanted.is_file():
            return None
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        return None
    return wanted


class ConsoleLogFilter(logging.Filter):
    """What serve's console shows of a request: one line, without the token, with every
    character a client chose made visible (a request line or header can carry escapes), and
    no traceback for a malformed request (aiohttp logs one, with its locals). At most
    ``per_window`` lines every ``window`` seconds: a client pipelining requests cannot flood
    the console; the next line says how many were left out."""

    def __init__(
        self,
        token: str,
        per_window: int = 30,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.token = token
        self.per_window, self.window, self.clock = per_window, window, clock
        self._started, self._count, self._left_out = -math.inf, 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        if now - self._started >= self.window:
            self._started, self._count = now, 0
        self._count += 1
        if self._count > self.per_window:
            self._left_out += 1
            return False
        text = record.getMessage()
        if self._left_out:
            text = f"({self._left_out:,} log lines left out) {text}"
            self._left_out = 0
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{text}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        text = " ".join(text.replace(self.token, "<token>").split())
        record.msg, record.args = safe_line(text, limit=400), ()
        return True


#: A page (its request, its scripts and styles in parallel) and a tab's websocket: fewer
#: connections than this and the browser view cannot open at all.
MIN_USABLE_CONNECTIONS = 8


def send_timeout_for(heartbeat: float) -> float:
    """How long a browser may take no output before its tab ends."""
    return max(2 * heartbeat, 5.0)


def make_server(p: ServePlan) -> Any:
    import asyncio
    import json

    import aiohttp_jinja2
    import jinja2
    from aiohttp import WSCloseCode, WSMsgType, web

    # log, to_int and Server._make_app (overridden below) are textual-serve's undocumented
    # names (tests/unit/test_private_apis.py checks them, and that Server.serve calls _make_app).
    from textual_serve.server import Server, log, to_int

    from .guard import DEFAULT_SIZE, SECURITY_HEADERS, Gate, TabLimits, parse_size
    from .net import keep
    from .tab import TabService, quiet_ended_tabs

    gate = Gate.for_serving(p.token, p.public_url, p.host, p.port)
    send_timeout = send_timeout_for(p.heartbeat)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        """Every answer: the Host check first, and the framing/sniffing headers."""
        try:
            if not gate.host_ok(request.headers.get("Host")):
                raise web.HTTPForbidden(text="etcd-registry-tui: this Host is not served here\n")
            response = await handler(request)
        except web.HTTPException as refused:
            refused.headers.update(SECURITY_HEADERS)
            raise
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
        """Also on answers a handler streams itself (a download): the same headers, and a
        download is sandboxed (an inline SVG runs no script on the served origin)."""
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/download/"):
            csp = f"{SECURITY_HEADERS['Content-Security-Policy']}; sandbox"
            response.headers["Content-Security-Policy"] = csp

    def refuse(status: type[web.HTTPException], reason: str) -> web.HTTPException:
        return status(text=f"etcd-registry-tui: {safe_line(reason)}\n")

    class DashboardServer(Server):
        """textual-serve's server behind the token, Host and Origin checks and the tab
        limits, with a titled page and an end to every tab's process.

        Stock textual-serve waits for open tabs on Ctrl-C / SIGTERM (up to a minute) and can
        leave their dashboards running; here shutting down closes every tab's socket, which
        quits its dashboard, and whatever is still running at the very end is killed.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tabs: dict[web.WebSocketResponse, TabService] = {}
            self.limits = TabLimits(p.max_tabs, p.max_tabs_per_client)

        async def _make_app(self) -> web.Application:
            app = web.Application(middlewares=[guard])
            aiohttp_jinja2.setup(app, loader=jinja2.DictLoader({"app_index.html": page}))
            app.add_routes(
                [
                    web.get("/", self.handle_index, name="index"),
                    web.get("/ws", self.handle_websocket_without_token),
                    web.get("/ws/{token}", self.handle_websocket, name="websocket"),
                    # Every route below carries the token in its path: the page's assets
                    # and downloads too (the stock /static and /download have none).
                    web.get("/static/{token}/{path:.+}", self.handle_static),
                    web.get("/download/{token}/{key}", self.handle_download, name="download"),
                ]
            )
            app.on_response_prepare.append(secure_headers)
            app.on_startup.append(self.on_startup)
            app.on_shutdown.append(self.on_shutdown)
            return app

        def initialize_logging(self) -> None:
            super().initialize_logging()
            quiet_ended_tabs()
            for handler in logging.getLogger().handlers:
                handler.addFilter(ConsoleLogFilter(p.token))

        async def on_startup(self, app: web.Application) -> None:
            pass  # run_serve has said where to go (the stock banner prints the command)

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            refusal = gate.refusal(
                request.headers.get("Host"), request.query.get("token"), None, websocket=False
            )
            if refusal is not None:
                raise refuse(web.HTTPForbidden, refusal)
            font_size = to_int(request.query.get("fontsize", "16")[:3], 16)
            scheme, rest = p.public_url.split(":", 1)
            context = {
                "font_size": min(max(font_size, 8), 48),
                "app_websocket_url": f"{'wss' if scheme == 'https' else 'ws'}:{rest}/ws/{p.token}",
                "config": {"static": {"url": f"{p.public_url}/static/{p.token}/"}},
                "application": {"name": self.title},
            }
            return aiohttp_jinja2.render_template("app_index.html", request, context)

        def _check_token_in_path(self, request: web.Request) -> None:
            if not gate.token_ok(request.match_info.get("token")):
                raise refuse(web.HTTPForbidden, "a valid token is needed")

        async def handle_static(self, request: web.Request) -> web.StreamResponse:
            """textual-serve's own script, style, font or image, under the token; nothing
            outside its static folder. textual.js opens downloads under the token."""
            self._check_token_in_path(request)
            wanted = await asyncio.to_thread(_static_file, static_root, request.match_info["path"])
            if wanted is None:
                raise refuse(web.HTTPNotFound, "no such file")
            if wanted == static_root / "js" / "textual.js":
                return web.Response(text=script, content_type="application/javascript")
            return web.FileResponse(wanted)

        async def handle_download(self, request: web.Request) -> web.StreamResponse:
            self._check_token_in_path(request)
            return await super().handle_download(request)

        async def handle_websocket_without_token(self, request: web.Request) -> web.StreamResponse:
            if not web.WebSocketResponse().can_prepare(request).ok:
                raise refuse(web.HTTPBadRequest, "/ws is a websocket: open the page instead")
            raise refuse(web.HTTPForbidden, "a valid token is needed")

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """A tab: every check passes before its process starts."""
            # autoping=False: aiohttp would answer a browser's PING itself inside receive(),
            # with no deadline; one that floods PINGs and reads nothing would park it there
            # for ever, its tab never ended. _process_messages answers under send_timeout.
            websocket = web.WebSocketResponse(
                heartbeat=p.heartbeat, max_msg_size=MAX_MESSAGE_BYTES, autoping=False
            )
            if not websocket.can_prepare(request).ok:
                raise refuse(web.HTTPBadRequest, "/ws is a websocket: open the page instead")
            refusal = gate.refusal(
                request.headers.get("Host"),
                request.match_info.get("token"),
                request.headers.get("Origin"),
                websocket=True,
            )
            if refusal is not None:
                raise refuse(web.HTTPForbidden, refusal)
            size = parse_size(
                request.query.get("width", str(DEFAULT_SIZE[0])),
                request.query.get("height", str(DEFAULT_SIZE[1])),
            )
            if size is None:
                raise refuse(web.HTTPBadRequest, "width and height must be integers")
            client = request.remote or "?"
            refusal = self.limits.take(client)
            if refusal is not None:
                raise refuse(web.HTTPServiceUnavailable, refusal)
            service: TabService | None = None
            stalled = asyncio.Event()

            async def send(sender: Callable[[Any], Awaitable[None]], data: Any) -> None:
                """To the browser, which must take it within the send timeout: one that
                reads nothing but keeps sending (so the heartbeat never pings) loses its
                tab all the same."""
                try:
                    await within(sender(data), send_timeout)
                except TimeoutError:
                    stalled.set()
                    raise ConnectionError("the browser takes no output") from None

            try:
                await websocket.prepare(request)
                keep(request.transport)  # a tab: never dropped for a newcomer
                service = TabService(
                    self.command,
                    write_bytes=lambda data: send(websocket.send_bytes, data),
                    write_str=lambda data: send(websocket.send_str, data),
                    close=websocket.close,
                    download_manager=self.download_manager,
                    debug=self.debug,
                )
                self.tabs[websocket] = service
                await service.start(*size)
                await self._process_messages(websocket, service)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await websocket.close()
            except Exception as error:
                if isinstance(error, ConnectionError):
                    stalled.set()
                log.warning("tab ended on %s", safe_line(repr(error)))
            finally:
                if service is not None:
                    await service.end()
                self.tabs.pop(websocket, None)
                self.limits.give_back(client)
                if (stalled.is_set() or websocket.exception() is not None) and (
                    request.transport is not None
                ):
                    # a browser that reads nothing: closing would wait for ever to flush
                    request.transport.abort()
                with contextlib.suppress(Exception):
                    await websocket.close()
            return websocket

        async def _process_messages(self, websocket: web.WebSocketResponse, tab: Any) -> None:
            """The browser's messages until the socket closes or the dashboard ends; anything
            malformed is dropped."""
            service: TabService = tab
            gone = asyncio.ensure_future(service.gone.wait())
            try:
                while not websocket.closed:
                    receive = asyncio.ensure_future(websocket.receive())
                    await asyncio.wait({receive, gone}, return_when=asyncio.FIRST_COMPLETED)
                    if not receive.done():
                        receive.cancel()
                        with contextlib.suppress(BaseException):
                            await receive
                        return
                    message = receive.result()
                    if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                        return
                    if message.type is WSMsgType.ERROR:
                        return
                    if message.type is WSMsgType.TEXT:
                        await self._handle_message(websocket, service, message.data)
                    elif message.type is WSMsgType.PING:
                        await self._deliver(websocket.pong(message.data))
            finally:
                gone.cancel()

        async def _handle_message(
            self, websocket: web.WebSocketResponse, service: TabService, text: str
        ) -> None:
            try:
                envelope = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: "[" * 30000 and the like
                return
            if not isinstance(envelope, list) or not envelope:
                return
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await service.send_bytes(data.encode("utf-8", "replace"))
            elif kind == "resize" and isinstance(data, dict):
                size = parse_size(data.get("width"), data.get("height"))
                if size is not None:
                    await service.set_terminal_size(*size)
            elif kind == "ping" and isinstance(data, str) and len(data) <= 64:
                await self._deliver(websocket.send_json(["pong", data]))
            elif kind == "blur":
                await service.blur()
            elif kind == "focus":
                await service.focus()

        async def _deliver(self, sending: Awaitable[None]) -> None:
            """An answer to the browser (a PONG, a pong message), taken within the send
            timeout or the tab ends."""
            try:
                await within(sending, send_timeout)
            except TimeoutError:
                raise ConnectionError("the browser takes no output") from None

        async def on_shutdown(self, app: web.Application) -> None:
            await asyncio.gather(
                *(ws.close(code=WSCloseCode.GOING_AWAY) for ws in list(self.tabs)),
                return_exceptions=True,
            )

        def serve(self, debug: bool = False) -> None:
            """As textual-serve's, on a :class:`~.serve_net.GatedSite`: the connection caps
            and the request-head deadline (aiohttp's keep-alive timer runs from accept)."""
            import signal

            from aiohttp.web_runner import GracefulExit

            from .net import ConnectionLimits, ExhaustionLog, GatedSite

            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(ExhaustionLog())
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signal.SIGINT, self.request_exit)
                loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            limits = ConnectionLimits(p.max_connections, p.max_connections_per_client)

            async def run() -> None:
                runner = web.AppRunner(
                    await self._make_app(),
                    keepalive_timeout=p.header_timeout,
                    shutdown_timeout=5.0,
                )
                await runner.setup()
                try:
                    await GatedSite(runner, p.host, p.port, limits).start()
                    await asyncio.Event().wait()
                finally:
                    await runner.cleanup()

            main = loop.create_task(run())
            try:
                loop.run_until_complete(main)
            except (GracefulExit, KeyboardInterrupt):
                pass
            finally:
                main.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(main)
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        def end_tabs(self) -> None:
            for service in list(self.tabs.values()):
                service.kill_now()

    server = DashboardServer(
        p.command, host=p.host, port=p.port, title=p.title, public_url=p.public_url
    )
    stock = Path(server.templates_path, "app_index.html").read_text(encoding="utf-8")
    page = _page_template(stock)
    static_root = Path(server.statics_path).resolve()
    script = _script_with_token(
        (static_root / "js" / "textual.js").read_text(encoding="utf-8"), p.token, p.public_url
    )
    return server


def password_on_command_line(args: argparse.Namespace) -> bool:
    """The etcd password was given as ``--user name:password`` or ``--password``."""
    user = getattr(args, "user", None)
    return bool(user and ":" in user) or getattr(args, "password", None) is not None


def notice(
    p: ServePlan, password_in_argv: bool = False, connections_lowered: bool = False
) -> list[str]:
    lines = [
        f"etcd-registry-tui: serving {p.title}",
        f"  open {p.open_url}",
        "  (the token is made at each launch; without it nothing is served)",
        f"  at most {p.max_tabs} tabs, {p.max_tabs_per_client} per client address"
        " (--max-tabs, --max-tabs-per-client)",
        f"  at most {p.max_connections} connections, {p.max_connections_per_client} per client"
        " address (--max-connections, --max-connections-per-client"
        + ("; lowered to fit the open-files limit, ulimit -n)" if connections_lowered else ")"),
    ]
    if p.read_only:
        lines.append("  read-only: browsers cannot register, renew or delete (--allow-writes)")
    else:
        lines.append("  WRITES ALLOWED: every browser with the URL can change the registry")
    if not is_loopback(p.host):
        lines.append(
            f"  bound to {p.host}: whoever can reach port {p.port} and has the token gets the"
            " dashboard; over plain http the token travels in clear (use https in front)"
        )
    if password_in_argv:
        lines.append(
            "  warning: the etcd password is on this command line, which every local user"
            " can read with ps; set ETCDCTL_PASSWORD or give --user NAME alone to be asked"
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
        max_tabs=args.max_tabs,
        max_tabs_per_client=args.max_tabs_per_client,
        max_connections=args.max_connections,
        max_connections_per_client=args.max_connections_per_client,
        header_timeout=args.header_timeout,
        heartbeat=args.heartbeat,
    )
    from .net import fit_connections, handles_reserved

    fitted = fit_connections(p.max_connections, handles_reserved(p.max_tabs))
    if fitted < MIN_USABLE_CONNECTIONS:
        print(
            f"etcd-registry-tui serve: error: the open-files limit leaves room for only {fitted}"
            f" connection(s) beside {max(p.max_tabs, 1)} tab(s); a browser needs at least"
            f" {MIN_USABLE_CONNECTIONS} (raise it with ulimit -n, or lower --max-tabs)",
            file=sys.stderr,
        )
        return 1
    lowered = fitted < p.max_connections
    if lowered:
        p = dataclasses.replace(p, max_connections=fitted)
    for line in notice(p, password_on_command_line(args), connections_lowered=lowered):
        print(line, file=sys.stderr, flush=True)
    # textual-serve hands its own environment to every tab's process.
    os.environ.update(p.env)
    server = make_server(p)
    try:
        server.serve()
    finally:
        server.end_tabs()
    return 0
