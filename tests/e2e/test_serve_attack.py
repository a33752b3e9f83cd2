"""``serve`` attacked: other origins and Host names in real Chromium, raw websocket clients
with forged headers, bad tokens, oversize and invalid sizes, abrupt disconnects and floods.

A real etcd, the real ``serve`` process, etcdctl as the witness that nothing was written,
and psutil counting the tab processes (system-wide, by this serve's own etcd endpoint, so an
orphan re-parented to PID 1 counts too) before and after: none may be left.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import json
import os
import re
import signal
import socket
import struct
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from support.browser_helpers import CHROMIUM_ARGS, DEADLINE_S, Served, require_browser, serving
from support.etcdctl import Etcdctl
from support.helpers import slack

from etcd_registry_tui.demo.embedded import free_ports
from etcd_registry_tui.serve.guard import MAX_COLUMNS, MAX_ROWS, MIN_COLUMNS, MIN_ROWS

KEY = "/services/OrderService/order-1"
VALUE = json.dumps({"Name": "OrderService", "Id": "order-1", "Address": "http://10.0.0.1:5001"})


# --------------------------------------------------------------------------------------------
# helpers


def tab_processes(endpoint: str) -> list[psutil.Process]:
    """Every running dashboard process (anywhere, orphans too) dialling ``endpoint``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] == psutil.STATUS_ZOMBIE or "etcd_registry_tui" not in cmdline:
                continue
            if "serve" not in cmdline and endpoint in cmdline:
                found.append(proc)
    return found


def wait_until(check: Any, what: str, deadline: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        time.sleep(0.1)


def port_of(served: Served) -> int:
    return int(served.base.rsplit(":", 1)[1])


def origin_of(served: Served) -> str:
    return served.base


async def handshake(
    served: Served,
    path: str | None = None,
    *,
    origin: str | None = "",
    host: str | None = None,
    query: str = "width=80&height=24",
    local: str | None = None,
) -> Any:
    """A websocket handshake: the open ``ClientWebSocketResponse`` (with its session) or
    the HTTP status of the refusal."""
    path = f"/ws/{served.token}" if path is None else path
    headers = {"Host": host} if host is not None else {}
    connector = aiohttp.TCPConnector(local_addr=(local, 0) if local else None, force_close=True)
    session = aiohttp.ClientSession(connector=connector)
    try:
        ws = await session.ws_connect(
            f"{served.base}{path}?{query}",
            origin=origin_of(served) if origin == "" else origin,
            headers=headers,
            max_msg_size=0,
            autoping=True,
        )
    except aiohttp.WSServerHandshakeError as refused:
        await session.close()
        return refused.status
    except BaseException:
        await session.close()
        raise
    ws.session = session  # type: ignore[attr-defined]
    return ws


async def close(ws: Any) -> None:
    with contextlib.suppress(Exception):
        await ws.close()
    await ws.session.close()


async def read_output(ws: Any, seconds: float, least: int = 1) -> str:
    """What the tab sends for ``seconds`` (at least ``least`` bytes, within the deadline)."""
    got: list[str] = []
    size = 0
    end = time.monotonic() + seconds
    hard_end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end or size < least:
        if time.monotonic() > hard_end:
            raise AssertionError(f"the tab sent {size} bytes; wanted {least}")
        try:
            message = await ws.receive(timeout=0.2)
        except TimeoutError:
            continue
        if message.type == aiohttp.WSMsgType.BINARY:
            got.append(message.data.decode("utf-8", "replace"))
            size += len(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            got.append(message.data)
            size += len(message.data)
        else:
            break
    return "".join(got)


async def read_until(ws: Any, needle: str) -> str:
    """What the tab sends until its output shows ``needle`` (within the deadline): a key
    sent before the screen it is meant for is up would go elsewhere on a loaded machine."""
    got = ""
    hard_end = time.monotonic() + DEADLINE_S
    while needle not in got:
        if time.monotonic() > hard_end:
            raise AssertionError(f"the tab never showed {needle!r}")
        got += await read_output(ws, 0.2)
    return got


def http_get(url: str, host: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode(errors="replace")
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read().decode(errors="replace")


@pytest.fixture
def served(etcd: Any, etcdctl: Etcdctl, tmp_path: Path) -> Iterator[Served]:
    """serve with writes allowed (the worst case), small limits, one instance in etcd."""
    etcdctl.put(KEY, VALUE)
    assert tab_processes(etcd.endpoint) == []
    with serving(
        etcd.endpoint, "--allow-writes", "--max-tabs", "3", "--max-tabs-per-client", "2",
        tmp=tmp_path,
    ) as s:  # fmt: skip
        yield s
    wait_until(lambda: tab_processes(etcd.endpoint) == [], "no tab process left")
    assert etcdctl.get(KEY) == VALUE.encode()  # nothing was written
    assert "Traceback" not in s.output(), s.output()


# --------------------------------------------------------------------------------------------
# raw clients: nothing starts before the checks pass


def test_forged_handshakes_are_refused_before_any_process_starts(served: Served, etcd: Any):
    port = port_of(served)
    other = free_ports(1)[0]
    wrong = "A" * len(served.token)
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("no token", {"path": "/ws"}, 403),
        ("bad token", {"path": f"/ws/{wrong}"}, 403),
        ("token prefix", {"path": f"/ws/{served.token[:-1]}"}, 403),
        ("another origin", {"origin": f"http://127.0.0.1:{other}"}, 403),
        ("localhost, another port", {"origin": f"http://localhost:{other}"}, 403),
        ("another site", {"origin": "http://evil.example"}, 403),
        ("null origin", {"origin": "null"}, 403),
        ("no origin", {"origin": None}, 403),
        (
            "DNS rebinding",
            {"origin": f"http://evil.example:{port}", "host": f"evil.example:{port}"},
            403,
        ),
        ("forged Host", {"host": "evil.example"}, 403),
        ("Host with userinfo", {"host": f"x@127.0.0.1:{port}"}, 403),
        ("width not a number", {"query": "width=x&height=24"}, 400),
        ("height not a number", {"query": "width=80&height=x"}, 400),
        ("empty height", {"query": "width=80&height="}, 400),
        ("float width", {"query": "width=1e9&height=24"}, 400),
    ]

    async def attempts() -> list[tuple[str, Any]]:
        results = []
        for what, kwargs, _ in cases:
            outcome = await handshake(served, **kwargs)
            if not isinstance(outcome, int):
                await close(outcome)
            results.append((what, outcome))
            assert tab_processes(etcd.endpoint) == [], f"{what}: a tab process started"
        return results

    results = asyncio.run(attempts())
    assert [(what, status) for what, _, status in cases] == results
    time.sleep(0.5)
    assert tab_processes(etcd.endpoint) == []


def test_the_page_needs_the_token_and_a_served_host(served: Served):
    port = port_of(served)
    status, _, page = http_get(served.url)
    assert status == 200 and f"/ws/{served.token}" in page
    for url, host in [
        (f"{served.base}/", None),
        (f"{served.base}/?token=", None),
        (f"{served.base}/?token={'x' * len(served.token)}", None),
        (served.url, f"evil.example:{port}"),  # DNS rebinding: the right token, another name
        (served.url, "evil.example"),
        (f"{served.base}/static/js/textual.js", "evil.example"),
    ]:
        status, _, body = http_get(url, host)
        assert status == 403, (url, host, status)
        assert served.token not in body and "xterm" not in body
    # the other loopback names of the bound port are served (a browser's "localhost")
    assert http_get(served.url, f"localhost:{port}")[0] == 200


def test_every_answer_refuses_framing_and_sniffing(served: Served):
    for url in (served.url, f"{served.base}/static/js/textual.js", f"{served.base}/nowhere"):
        _, headers, _ = http_get(url)
        assert headers.get("Content-Security-Policy") == "frame-ancestors 'none'", url
        assert headers.get("X-Frame-Options") == "DENY", url
        assert headers.get("X-Content-Type-Options") == "nosniff", url


def test_get_ws_without_an_upgrade_is_a_400_not_a_traceback(served: Served):
    for path in ("/ws", f"/ws/{served.token}"):
        status, _, body = http_get(served.base + path)
        assert status == 400 and "websocket" in body, (path, status, body)
    time.sleep(0.3)
    assert "Traceback" not in served.output()


def test_the_console_log_shows_neither_the_token_nor_a_client_s_escapes(served: Served):
    port = port_of(served)
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
        sock.sendall(
            (
                f"GET /?token={served.token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "User-Agent: \x1b]0;pwned\x07\x1b[2J\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        while sock.recv(65536):
            pass
    # a C1 CSI (U+009B) in UTF-8 is a valid header byte sequence: it reaches the access log
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
        sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n".encode()
            + "User-Agent: \u009b2J\u009d0;pwned\u009c\r\n\r\n".encode()
        )
        while sock.recv(65536):
            pass
    http_get(f"{served.base}/ws/{served.token}")
    time.sleep(0.5)
    _, log = served.output().split("the token is made at each launch", 1)
    assert "GET" in log  # requests are logged ...
    assert served.token not in log  # ... without the token
    for control in ("\x1b", "\x07", "\x9b", "\x9d"):  # ... nor the client's escapes
        assert control not in log, repr(control)


def test_huge_sizes_are_clamped_and_malformed_messages_dropped(served: Served, etcd: Any):
    async def attack() -> None:
        ws = await handshake(served, query="width=20000&height=20000")
        assert not isinstance(ws, int), ws
        try:
            await read_output(ws, 0.5, least=200)
            (tab,) = tab_processes(etcd.endpoint)
            env = tab.environ()
            assert (int(env["COLUMNS"]), int(env["ROWS"])) == (MAX_COLUMNS, MAX_ROWS)
            for junk in [
                "not json", "[]", "{}", '"resize"', "[5]", '["stdin", 5]', '["stdin"]',
                '["resize", "x"]', '["resize", {"width": "x", "height": 24}]',
                '["resize", {"width": -5, "height": -5}]', '["resize", {"width": true}]',
                '["resize", {"width": 1e308, "height": 24}]', '["ping", {"a": 1}]',
                '["ping", "' + "p" * 1000 + '"]', '["stdin", "\\ud800"]',
            ]:  # fmt: skip
                await ws.send_str(junk)
            await ws.send_bytes(b"\x00" * 100)
            await ws.send_str(json.dumps(["resize", {"width": 1000, "height": 1000}]))
            output = await read_output(ws, 2.0, least=1000)
            await ws.send_str('["ping", "alive"]')
            pong = ""
            while '["pong", "alive"]' not in pong:
                pong += await read_output(ws, 0.3)
            assert tab.is_running() and tab_processes(etcd.endpoint) == [tab]
            assert tab.memory_info().rss < 600 * 2**20
            # the dashboard redrew at the clamped size: cursor moves past row 24, none past
            # the limits
            moves = [(int(r), int(c)) for r, c in re.findall(r"\x1b\[(\d+);(\d+)H", output)]
            assert moves and max(r for r, _ in moves) > 24
            assert max(r for r, _ in moves) <= MAX_ROWS
            assert max(c for _, c in moves) <= MAX_COLUMNS
            # negative sizes are clamped to the smallest, not a crash
            small = await handshake(served, query="width=-5&height=-5")
            assert not isinstance(small, int), small
            await read_output(small, 1.0, least=100)
            (other,) = [p for p in tab_processes(etcd.endpoint) if p.pid != tab.pid]
            env = other.environ()
            assert (int(env["COLUMNS"]), int(env["ROWS"])) == (MIN_COLUMNS, MIN_ROWS)
            assert other.is_running()
            await close(small)
            # an oversize message closes the tab, and its process ends
            await ws.send_str(json.dumps(["stdin", "x" * 200_000]))
            while not ws.closed:
                if (await ws.receive(timeout=DEADLINE_S)).type in (
                    aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR,
                ):  # fmt: skip
                    break
        finally:
            await close(ws)

    asyncio.run(attack())
    wait_until(lambda: tab_processes(etcd.endpoint) == [], "the oversized tab's process ended")


def _raw_handshake(served: Served, rcvbuf: int | None = None) -> socket.socket:
    """A websocket handshake by hand (``rcvbuf``: a receive buffer that small)."""
    port = port_of(served)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connecting, so that the window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(DEADLINE_S)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/{served.token}?width=120&height=40 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nOrigin: {served.base}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return sock


def _masked_text(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


def test_an_abrupt_tcp_abort_mid_output_ends_the_tab(served: Served, etcd: Any):
    socks = [_raw_handshake(served) for _ in range(2)]
    wait_until(lambda: len(tab_processes(etcd.endpoint)) == 2, "two tabs running")
    for sock in socks:
        got = 0
        while got < 2000:  # the dashboard is drawing
            got += len(sock.recv(65536))
        # Much more output on its way than the socket buffers and the process's pipe hold
        # (full redraws at the largest size), and this client reads none of it: the server
        # is stuck sending when the connection is reset.
        for i in range(20):
            columns, rows = (MAX_COLUMNS, MAX_ROWS) if i % 2 else (MAX_COLUMNS - 1, MAX_ROWS - 1)
            sock.sendall(_masked_text(json.dumps(["resize", {"width": columns, "height": rows}])))
    time.sleep(1.5)
    for sock in socks:
        # RST, not FIN: the server's next send fails with ConnectionResetError
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    wait_until(lambda: tab_processes(etcd.endpoint) == [], "the aborted tabs' processes ended")
    assert served.proc.poll() is None  # serve itself goes on


def test_a_flood_beyond_the_limits_is_refused_and_leaves_nothing(served: Served, etcd: Any):
    async def flood() -> None:
        first = [await handshake(served) for _ in range(2)]
        assert all(not isinstance(ws, int) for ws in first), first
        # per client: a third from the same address is refused
        assert await handshake(served) == 503
        # another client gets the last of --max-tabs 3 ...
        third = await handshake(served, local="127.0.0.2")
        assert not isinstance(third, int), third
        # ... and then everyone is refused, however many at once
        flood = await asyncio.gather(*(handshake(served, local="127.0.0.3") for _ in range(30)))
        assert flood == [503] * 30
        # each accepted tab's process starts just after its handshake (later under load)
        wait_until(lambda: len(tab_processes(etcd.endpoint)) >= 3, "three tab processes")
        assert len(tab_processes(etcd.endpoint)) == 3  # and none for the refused
        for ws in [*first, third]:
            await close(ws)
        wait_until(lambda: tab_processes(etcd.endpoint) == [], "the closed tabs ended")
        # the places were given back
        again = await handshake(served)
        assert not isinstance(again, int), again
        await read_output(again, 0.2, least=100)
        await close(again)

    asyncio.run(flood())


def test_killing_serve_ends_its_tabs(served: Served, etcd: Any):
    sock = _raw_handshake(served)
    try:
        wait_until(lambda: len(tab_processes(etcd.endpoint)) == 1, "a tab running")
        (tab,) = tab_processes(etcd.endpoint)
        os.kill(served.proc.pid, signal.SIGKILL)  # no handler, no cleanup: the kernel's job
        served.proc.wait(timeout=10)
        wait_until(lambda: not tab.is_running() or tab.status() == psutil.STATUS_ZOMBIE, "gone")
    finally:
        sock.close()


def test_a_tab_process_that_ignores_quit_and_sigterm_is_killed_with_its_group():
    from textual_serve.download_manager import DownloadManager

    from etcd_registry_tui.serve.tab import TabService

    async def nothing(*_: Any) -> None:
        pass

    async def run() -> list[psutil.Process]:
        service = TabService(
            "trap '' TERM; sleep 60 & exec sleep 61",
            write_bytes=nothing, write_str=nothing, close=nothing,
            download_manager=DownloadManager(),
        )  # fmt: skip
        await service.start(80, 24)
        assert service.pid is not None
        leader = psutil.Process(service.pid)
        wait_until(lambda: len(leader.children()) == 1 or leader.name() == "sleep", "started")
        group = [p for p in psutil.process_iter() if _pgid(p) == service.pid]
        assert len(group) == 2, group
        started = time.monotonic()
        await service.end(quit_grace=0.3, term_grace=0.3)
        assert time.monotonic() - started < 10
        return group

    for proc in asyncio.run(run()):
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE


def _pgid(proc: psutil.Process) -> int | None:
    with contextlib.suppress(psutil.Error, OSError):
        return os.getpgid(proc.pid)
    return None


# --------------------------------------------------------------------------------------------
# real Chromium on another origin


ATTACK_PAGE = """<!DOCTYPE html><html><head><title>attacker</title></head><body>
<iframe id="frame" src="__PAGE__" width="800" height="400"></iframe>
<script>
function attempt(url) {
  return new Promise(resolve => {
    const r = {url: url, opened: false, messages: 0, code: null};
    let ws;
    try { ws = new WebSocket(url); } catch (e) { r.error = String(e); resolve(r); return; }
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      r.opened = true;
      for (const key of ["\\u001b[B", "\\u001b[B", "d", "y", "r"]) {
        ws.send(JSON.stringify(["stdin", key]));
      }
    };
    ws.onmessage = () => { r.messages += 1; };
    ws.onclose = (e) => { r.code = e.code; resolve(r); };
    setTimeout(() => resolve(r), 4000);
  });
}
async function readPage(url) {
  try {
    const res = await fetch(url, {credentials: "include"});
    return {url: url, status: res.status, text: (await res.text()).slice(0, 200)};
  } catch (e) { return {url: url, error: String(e)}; }
}
window.attack = () => Promise.all([
  attempt("__WS__/ws/__TOKEN__?width=80&height=24"),
  attempt("__WS__/ws?width=80&height=24"),
  readPage("__PAGE__"),
]);
</script></body></html>"""


def wait_until_in(page: Any, check: Any, what: str) -> None:
    """As ``wait_until``, letting Playwright deliver its events meanwhile."""
    end = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE_S}s: {what}")
        page.wait_for_timeout(100)


@contextlib.contextmanager
def attacker_site(page: str) -> Iterator[int]:
    """A page served on another loopback port: the attacker's origin."""
    body = page.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_another_origin_in_chromium_cannot_read_type_or_write(
    served: Served, etcd: Any, etcdctl: Etcdctl
):
    chromium = require_browser()
    from playwright.sync_api import sync_playwright

    port = port_of(served)
    page_source = (
        ATTACK_PAGE.replace("__PAGE__", served.url)
        .replace("__WS__", f"ws://127.0.0.1:{port}")
        .replace("__TOKEN__", served.token)  # even the token does not help another origin
    )
    resolver = "--host-resolver-rules=MAP evil.example 127.0.0.1, EXCLUDE localhost"
    with attacker_site(page_source) as other, tempfile.TemporaryDirectory() as profile:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=chromium, args=[*CHROMIUM_ARGS, resolver],
                headless=True,
            )  # fmt: skip
            try:
                frames_received: list[Any] = []

                def watch(ws: Any) -> None:
                    def received(payload: Any) -> None:
                        frames_received.append(payload)

                    ws.on("framereceived", received)

                for origin in (f"http://127.0.0.1:{other}", f"http://localhost:{other}"):
                    page = context.new_page()
                    page.on("websocket", watch)
                    page.goto(f"{origin}/attack.html")
                    results = page.evaluate("window.attack()")
                    sockets, no_token, fetched = results
                    for attempt in (sockets, no_token):
                        assert not attempt["opened"] and attempt["messages"] == 0, attempt
                    # the page may not be read from another origin (no CORS)
                    assert "error" in fetched, fetched
                    # the framed page is refused (frame-ancestors 'none' / DENY)
                    (framed,) = page.main_frame.child_frames
                    wait_until_in(page, lambda f=framed: f.url != "about:blank", "the frame loaded")
                    assert framed.url.startswith("chrome-error:"), framed.url
                    assert tab_processes(etcd.endpoint) == [], origin
                    page.close()
                assert frames_received == []

                # DNS rebinding: evil.example resolves to 127.0.0.1; the right token, a
                # foreign name
                page = context.new_page()
                response = page.goto(f"http://evil.example:{port}/?token={served.token}")
                assert response is not None and response.status == 403
                assert page.locator(".xterm-helper-textarea").count() == 0
                page.wait_for_timeout(500)
                assert tab_processes(etcd.endpoint) == []
            finally:
                context.close()
    assert etcdctl.get(KEY) == VALUE.encode()


# --------------------------------------------------------------------------------------------
# review-serve-hostile: nested JSON, silent connections


def test_deeply_nested_json_is_dropped_and_the_tab_stays_open(served: Served, etcd: Any):
    async def attack() -> None:
        ws = await handshake(served)
        assert not isinstance(ws, int), ws
        try:
            await read_output(ws, 0.3, least=100)
            await ws.send_str("[" * 30000 + "]" * 30000)
            await ws.send_str('["ping", "still-here"]')
            pong = ""
            while '["pong", "still-here"]' not in pong:
                if ws.closed:
                    raise AssertionError("the tab was closed by nested JSON")
                pong += await read_output(ws, 0.3)
        finally:
            await close(ws)

    asyncio.run(attack())
    assert "RecursionError" not in served.output(), served.output()


# --------------------------------------------------------------------------------------------
# fserve: a hostile network (slowloris, handles, frozen links)


def _silent(port: int, local: str, head: bytes = b"GET / HTTP/1.1\r\n") -> socket.socket:
    """A connection from ``local`` that sends ``head`` and then nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((local, 0))
    sock.settimeout(DEADLINE_S)
    sock.connect(("127.0.0.1", port))
    with contextlib.suppress(OSError):
        sock.sendall(head)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    """The other end has closed (EOF or reset) by now; False while it holds it open."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(DEADLINE_S)


def test_silent_connections_are_capped_and_closed_after_the_header_deadline(
    etcd: Any, tmp_path: Path
):
    deadline = 3.0
    with serving(
        etcd.endpoint, "--max-connections", "40", "--max-connections-per-client", "4",
        "--header-timeout", str(deadline), tmp=tmp_path,
    ) as served:  # fmt: skip
        port = port_of(served)
        # 50 silent half-requests from 8 addresses: 4 of each address are held, the rest
        # (18) are closed at once, before the token is even looked at
        socks = [_silent(port, f"127.0.0.{2 + i % 8}") for i in range(50)]
        started = time.monotonic()
        wait_until(lambda: sum(map(_closed_by_peer, socks)) >= 18, "the excess closed", 2.0)
        # the operator's own request is served at once
        status, _, page = http_get(served.url)
        assert status == 200 and served.token in page
        assert time.monotonic() - started < deadline, "the excess was not closed at once"
        held = [s for s in socks if not _closed_by_peer(s)]
        assert len(held) == 32, len(held)
        # the total cap: 8 more fill it to 40; the next takes the place of one of the
        # address holding the most (4), never of one holding fewer than 4
        more = [_silent(port, f"127.0.0.{20 + i % 4}") for i in range(8)]
        over = _silent(port, "127.0.0.30")
        wait_until(lambda: sum(map(_closed_by_peer, held)) == 1, "one of 4 dropped", 2.0)
        assert not any(_closed_by_peer(s) for s in [*more, over])
        held = [s for s in held if not _closed_by_peer(s)] + [over]
        # after the deadline every silent one is closed
        wait_until(lambda: all(map(_closed_by_peer, held + more)), "closed", deadline + 10)
        assert time.monotonic() - started > deadline * 0.8
        # and the places are given back
        assert http_get(served.url)[0] == 200
        for sock in [*socks, *more, over]:
            sock.close()
        assert "Traceback" not in served.output()


def _downloads(served: Served, paths: list[str]) -> list[tuple[int, dict[str, str], str]]:
    """A real download: the dashboard's own "Screenshot" command, delivered through serve;
    then GET each of ``paths`` (``KEY`` replaced by the download's key) while the tab is open
    (its process streams the file)."""

    async def deliver() -> list[tuple[int, dict[str, str], str]]:
        ws = await handshake(served)
        assert not isinstance(ws, int), ws
        try:
            await read_output(ws, 0.5, least=100)
            await ws.send_str(json.dumps(["stdin", "\x10"]))  # ctrl+p: the command palette
            await read_until(ws, "Search for commands")
            await ws.send_str(json.dumps(["stdin", "Screenshot"]))
            await read_until(ws, "Screenshot")
            await read_output(ws, 0.5)  # the palette's list follows what was typed
            await ws.send_str(json.dumps(["stdin", "\r"]))
            end = time.monotonic() + DEADLINE_S
            texts = []
            while time.monotonic() < end:
                try:
                    message = await ws.receive(timeout=0.5)
                except TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.TEXT:
                    texts.append(message.data)
                    envelope = json.loads(message.data)
                    if envelope[0] == "deliver_file_start":
                        key = str(envelope[1])
                        return [
                            await asyncio.to_thread(
                                http_get, served.base + path.replace("KEY", key)
                            )
                            for path in paths
                        ]
                elif message.type != aiohttp.WSMsgType.BINARY:
                    break
            raise AssertionError(f"no file was delivered; messages: {texts}")
        finally:
            await close(ws)

    return asyncio.run(deliver())


def test_every_route_needs_the_token(served: Served):
    token, wrong = served.token, "B" * len(served.token)
    status, _, page = http_get(served.url)
    assert status == 200
    # the page loads its assets under the token
    assert f"/static/{token}/js/textual.js" in page and f"/static/{token}/css/xterm.css" in page
    for path in ("js/textual.js", "css/xterm.css", "images/background.png"):
        assert http_get(f"{served.base}/static/{token}/{path}")[0] == 200, path
        for refused in (f"/static/{path}", f"/static/{wrong}/{path}", f"/static//{path}"):
            status, _, body = http_get(served.base + refused)
            assert status in (403, 404), (refused, status)
            assert token not in body
    # nothing outside the static folder, however spelled
    for sneaky in ("../serve.py", "..%2f..%2fserver.py", "%2e%2e/%2e%2e/server.py", "js"):
        assert http_get(f"{served.base}/static/{token}/{sneaky}")[0] in (403, 404), sneaky
    # textual.js opens downloads under the token (its stock URL has none)
    _, _, script = http_get(f"{served.base}/static/{token}/js/textual.js")
    assert f"/download/{token}/" in script
    wrong_path, no_token, right = _downloads(
        served, [f"/download/{wrong}/KEY", "/download/KEY", f"/download/{token}/KEY"]
    )
    for status, _, body in (wrong_path, no_token):
        assert status in (403, 404) and "<svg" not in body, status
    status, headers, body = right
    assert status == 200 and "<svg" in body, (status, body[:200])
    # a streamed answer carries the headers too, and an inline SVG runs no script
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert "sandbox" in headers.get("Content-Security-Policy", "")


@contextlib.contextmanager
def path_prefix_proxy(prefix: str) -> Iterator[tuple[int, list[str], list[str]]]:
    """A reverse proxy on a loopback port serving ``prefix``/... from the serve set in the
    yielded list (``[base]``, filled in once serve runs); (port, that list, every path it
    was asked for)."""
    target: list[str] = []
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            asked.append(self.path)
            if not self.path.startswith(prefix + "/"):
                status, headers, body = 404, {}, b"not proxied\n"
            else:
                upstream = urllib.request.Request(
                    target[0] + self.path[len(prefix) :], headers={"Host": self.headers["Host"]}
                )
                try:
                    with urllib.request.urlopen(upstream, timeout=DEADLINE_S) as answer:
                        status, headers, body = answer.status, dict(answer.headers), answer.read()
                except urllib.error.HTTPError as refused:
                    status, headers, body = refused.code, dict(refused.headers), refused.read()
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], target, asked
    finally:
        server.shutdown()
        server.server_close()


def test_behind_a_proxy_with_a_path_downloads_stay_under_that_path(
    etcd: Any, etcdctl: Etcdctl, tmp_path: Path
):
    """--public-url http://HOST/etcd: the page, its script and the download URL it builds all
    go through /etcd/...; none sends the token to the origin's root."""
    etcdctl.put(KEY, VALUE)
    with path_prefix_proxy("/etcd") as (proxy_port, target, asked):
        public = f"http://127.0.0.1:{proxy_port}/etcd"
        with serving(
            etcd.endpoint, "--allow-writes", "--public-url", public, tmp=tmp_path
        ) as served:
            target.append(served.base)
            token = served.token
            status, _, page = http_get(f"{public}/?token={token}")
            assert status == 200 and f"{public}/static/{token}/js/textual.js" in page
            status, _, script = http_get(f"{public}/static/{token}/js/textual.js")
            assert status == 200
            assert "${window.location.origin}/etcd/download/" + token + "/${" in script
            assert "${window.location.origin}/download/" not in script
            # through the proxy, a download's URL reaches serve's own route (a wrong key:
            # serve's 404, not the proxy's "not proxied")
            status, _, body = http_get(f"{public}/download/{token}/no-such-key")
            assert status == 404 and "not proxied" not in body, (status, body)
            outside = [path for path in asked if not path.startswith("/etcd/")]
            assert not any(token in path for path in outside), outside
            assert "Traceback" not in served.output()


def test_a_frozen_browser_s_tab_ends_and_frees_its_place(etcd: Any, tmp_path: Path):
    from support.tcp_proxy import tcp_proxy

    heartbeat = 1.0
    with serving(
        etcd.endpoint, "--max-tabs-per-client", "1", "--heartbeat", str(heartbeat),
        tmp=tmp_path,
    ) as served, tcp_proxy(port_of(served)) as proxy:  # fmt: skip
        headers = {"Host": f"127.0.0.1:{port_of(served)}"}

        async def freeze() -> None:
            session = aiohttp.ClientSession()
            try:
                ws = await session.ws_connect(
                    f"http://{proxy.endpoint}/ws/{served.token}?width=80&height=24",
                    origin=served.base, headers=headers, autoping=True,
                )  # fmt: skip
                ws.session = session  # type: ignore[attr-defined]
                await read_output(ws, 0.3, least=100)
                assert len(tab_processes(etcd.endpoint)) == 1
                # the one place of this address is taken
                assert await handshake(served) == 503
                proxy.freeze()  # the browser's link: open, silent, reading nothing
                started = time.monotonic()
                while tab_processes(etcd.endpoint):
                    assert time.monotonic() - started < 20, "the frozen tab kept running"
                    await asyncio.sleep(0.2)
                # the place is free again: a new tab opens where it was refused (the tab's
                # process may end a moment before serve frees its connection's place)
                freed_by = time.monotonic() + slack(2 * heartbeat + 10)
                again = await handshake(served)
                while isinstance(again, int) and time.monotonic() < freed_by:
                    await asyncio.sleep(0.2)
                    again = await handshake(served)
                assert not isinstance(again, int), again
                await read_output(again, 0.2, least=100)
                await close(again)
            finally:
                proxy.heal()
                await session.close()

        asyncio.run(freeze())
        wait_until(lambda: tab_processes(etcd.endpoint) == [], "no tab left")
        assert "Traceback" not in served.output()


def _serve_holds(served: Served, client: socket.socket) -> bool:
    """serve still holds its end of ``client``'s connection."""
    here = client.getsockname()[1]
    for conn in psutil.Process(served.proc.pid).net_connections(kind="tcp"):
        if conn.raddr and conn.raddr.port == here and conn.laddr.port == port_of(served):
            return True
    return False


def test_a_client_that_never_reads_loses_its_tab_and_its_socket(etcd: Any, tmp_path: Path):
    """Full redraws asked for and none read: serve's send buffer is full when the heartbeat
    gives up, and closing would wait for ever to flush it; the socket is dropped instead."""
    with serving(
        etcd.endpoint, "--max-tabs-per-client", "1", "--heartbeat", "1", tmp=tmp_path
    ) as served:  # fmt: skip
        sock = _raw_handshake(served, rcvbuf=1024)
        try:
            wait_until(lambda: len(tab_processes(etcd.endpoint)) == 1, "a tab running")
            for i in range(40):
                columns, rows = (MAX_COLUMNS, MAX_ROWS) if i % 2 else (MAX_COLUMNS - 1, MAX_ROWS)
                message = json.dumps(["resize", {"width": columns, "height": rows}])
                sock.sendall(_masked_text(message))
            # ... and nothing more: no pong, no read
            wait_until(lambda: tab_processes(etcd.endpoint) == [], "the tab ended", 20)
            wait_until(lambda: not _serve_holds(served, sock), "serve let go of the socket", 10)

            async def reopen() -> None:
                again = await handshake(served)
                assert not isinstance(again, int), again
                await close(again)

            asyncio.run(reopen())
        finally:
            sock.close()
        assert "Traceback" not in served.output()


def test_a_flood_from_many_addresses_does_not_lock_out_the_operator_or_an_open_tab(
    etcd: Any, tmp_path: Path
):
    """When --max-connections is full, a newcomer takes the place of the oldest idle
    connection of the address holding the most; a tab's websocket is never taken."""
    with serving(
        etcd.endpoint, "--max-connections", "20", "--max-connections-per-client", "8",
        "--header-timeout", "30", tmp=tmp_path,
    ) as served:  # fmt: skip
        port = port_of(served)

        async def attack() -> None:
            tab = await handshake(served, local="127.0.0.40")
            assert not isinstance(tab, int), tab
            try:
                await read_output(tab, 0.2, least=100)
                # 60 silent connections from 30 addresses fill the other 19 places
                socks = [_silent(port, f"127.0.0.{50 + i % 30}") for i in range(60)]
                await asyncio.sleep(0.5)
                held = [s for s in socks if not _closed_by_peer(s)]
                assert len(held) == 19, len(held)
                # the operator gets in at once, again and again
                for _ in range(3):
                    status, _, page = await asyncio.to_thread(http_get, served.url)
                    assert status == 200 and served.token in page
                # and the tab is still open and drawing
                await tab.send_str('["ping", "still-here"]')
                assert '["pong", "still-here"]' in await read_output(tab, 0.5)
                assert not tab.closed
                for sock in socks:
                    sock.close()
            finally:
                await close(tab)

        asyncio.run(attack())
        assert "Traceback" not in served.output()


def _start_download(port: int, path: str) -> socket.socket:
    """A GET of ``path`` that reads only the answer's first bytes: mid-answer from then on
    (a small receive buffer, nothing read), as a browser loading a page on a slow link."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(DEADLINE_S)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert sock.recv(12).startswith(b"HTTP/1.1 200"), "the download did not start"
    return sock


def _finish_download(sock: socket.socket) -> tuple[int, int]:
    """(Content-Length, bytes of body received) once serve is done with ``sock``."""
    answer = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
        return length, len(body)
    return -1, len(answer)


def test_a_flood_of_silent_sockets_never_cuts_the_operator_s_downloads(etcd: Any, tmp_path: Path):
    """--max-connections full of silent sockets, one from each of 18 addresses, and the
    operator's two downloads in flight: a newcomer takes a silent socket's place, not a
    download's (the operator's address holds the most connections, but none idle)."""
    with serving(
        etcd.endpoint, "--max-connections", "20", "--header-timeout", "60", tmp=tmp_path
    ) as served:  # fmt: skip
        port = port_of(served)
        silent = [_silent(port, f"127.0.3.{1 + i}", b"") for i in range(18)]
        path = f"/static/{served.token}/js/textual.js"
        downloads = [_start_download(port, path) for _ in range(2)]
        newcomer = _silent(port, "127.0.3.100", b"")
        wait_until(lambda: sum(map(_closed_by_peer, silent)) == 1, "a silent socket dropped")
        for sock in downloads:
            length, received = _finish_download(sock)
            assert length > 100_000 and received == length, (length, received)
        assert not _closed_by_peer(newcomer)
        for sock in [*silent, *downloads, newcomer]:
            sock.close()
        assert "Traceback" not in served.output()


def test_dripped_oversized_and_half_open_heads_are_closed(etcd: Any, tmp_path: Path):
    deadline = 2.0
    with serving(etcd.endpoint, "--header-timeout", str(deadline), tmp=tmp_path) as served:
        port = port_of(served)
        started = time.monotonic()
        # a head dripped a byte at a time: the deadline runs from accept, not from the last byte
        drip = _silent(port, "127.0.0.2", b"GET / HTTP/1.1\r\n")
        # a head sent and the sending side shut: half-open, waiting for the rest
        half = _silent(port, "127.0.0.3", b"GET / HTTP/1.1\r\nHost: x\r\n")
        half.shutdown(socket.SHUT_WR)
        while not _closed_by_peer(drip):
            assert time.monotonic() - started < deadline + 5, "the drip was kept open"
            with contextlib.suppress(OSError):
                drip.send(b"X")
            time.sleep(0.2)
        wait_until(lambda: _closed_by_peer(half), "the half-open head closed", deadline + 5)
        # oversized: a header line of 100 kB, and 1000 headers; refused, not kept
        for head in (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: {'a' * 100_000}\r\n\r\n",
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "X-A: b\r\n" * 1000 + "\r\n",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(head.encode())
                answer = b""
                with contextlib.suppress(OSError):
                    while chunk := sock.recv(65536):
                        answer += chunk
                assert answer.split(b" ", 2)[1:2] in ([b"400"], [b"431"], []), answer[:100]
        assert http_get(served.url)[0] == 200
        drip.close()
        half.close()
        assert "Traceback" not in served.output()


def test_connections_reset_during_the_upgrade_leave_no_tab_and_no_place_taken(
    served: Served, etcd: Any
):
    port = port_of(served)
    for i in range(20):
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws/{served.token}?width=80&height=24 HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nOrigin: {served.base}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        if i % 2:
            time.sleep(0.05)  # some mid-start, some before the handler ran
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    wait_until(lambda: tab_processes(etcd.endpoint) == [], "no tab left")

    async def both_places() -> None:  # --max-tabs-per-client 2: both are free again
        tabs = [await handshake(served), await handshake(served)]
        assert not any(isinstance(t, int) for t in tabs), tabs
        for tab in tabs:
            await close(tab)

    asyncio.run(both_places())


def test_with_few_file_handles_a_flood_neither_locks_out_the_operator_nor_floods_the_log(
    etcd: Any, tmp_path: Path
):
    """serve fits --max-connections to its open-files limit: the handles never run out, so
    the operator's connection is still accepted (and takes an idle one's place)."""
    with serving(
        etcd.endpoint, "--max-tabs", "3", "--header-timeout", "30", tmp=tmp_path,
        open_files=160,
    ) as served:  # fmt: skip
        port = port_of(served)
        socks = []
        for i in range(200):
            with contextlib.suppress(OSError):
                socks.append(_silent(port, f"127.0.0.{2 + i % 10}"))
        time.sleep(1.5)
        for _ in range(3):
            status, _, page = http_get(served.url)
            assert status == 200 and served.token in page
        time.sleep(1.5)
        for sock in socks:
            sock.close()
        output = served.output()
        assert output.count("Too many open files") + output.count("out of system") <= 1, output
        assert "lowered to fit" in output  # the start-up notice says what it serves


def test_an_open_tab_outlives_the_header_deadline(etcd: Any, tmp_path: Path):
    with serving(etcd.endpoint, "--header-timeout", "0.5", tmp=tmp_path) as served:

        async def quiet_tab() -> None:
            tab = await handshake(served)
            assert not isinstance(tab, int), tab
            try:
                await read_output(tab, 0.2, least=100)
                await asyncio.sleep(2.0)  # four deadlines, the browser sending nothing
                await tab.send_str('["ping", "still-here"]')
                assert '["pong", "still-here"]' in await read_output(tab, 0.5)
            finally:
                await close(tab)

        asyncio.run(quiet_tab())


def test_a_client_that_keeps_sending_but_never_reads_loses_its_tab(etcd: Any, tmp_path: Path):
    """Messages in keep the heartbeat from pinging; serve stuck sending ends the tab all
    the same."""
    with serving(
        etcd.endpoint, "--max-tabs-per-client", "1", "--heartbeat", "1", tmp=tmp_path
    ) as served:  # fmt: skip
        sock = _raw_handshake(served, rcvbuf=1024)
        try:
            wait_until(lambda: len(tab_processes(etcd.endpoint)) == 1, "a tab running")
            started = time.monotonic()
            i = 0
            while tab_processes(etcd.endpoint):
                assert time.monotonic() - started < 20, "the tab kept running"
                columns, rows = (MAX_COLUMNS, MAX_ROWS) if i % 2 else (MAX_COLUMNS - 1, MAX_ROWS)
                message = json.dumps(["resize", {"width": columns, "height": rows}])
                sock.settimeout(0.2)
                with contextlib.suppress(OSError):
                    sock.sendall(_masked_text(message))
                i += 1
                time.sleep(0.1)
            wait_until(lambda: not _serve_holds(served, sock), "serve let go of the socket", 10)
        finally:
            sock.close()
        assert "Traceback" not in served.output()


def _masked_ping(payload: bytes) -> bytes:
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + body


def test_a_client_that_floods_pings_and_never_reads_loses_its_tab(etcd: Any, tmp_path: Path):
    """Each PING is owed a PONG that a client reading nothing never takes: the PONG is sent
    under serve's send deadline like any output, and the tab ends and frees its place
    (before, aiohttp answered it itself, without a deadline, and the tab lived for ever)."""
    with serving(
        etcd.endpoint, "--max-tabs-per-client", "1", "--heartbeat", "1", tmp=tmp_path
    ) as served:  # fmt: skip
        sock = _raw_handshake(served, rcvbuf=1024)
        try:
            wait_until(lambda: len(tab_processes(etcd.endpoint)) == 1, "a tab running")
            ping = _masked_ping(b"p" * 125)
            sock.settimeout(0.2)
            end = time.monotonic() + 3 * DEADLINE_S
            while tab_processes(etcd.endpoint):
                assert time.monotonic() < end, "the pinging tab kept running"
                for _ in range(50):
                    try:
                        sock.sendall(ping)
                    except OSError:  # serve reads no more: it is stuck sending a PONG
                        break
                time.sleep(0.05)
            wait_until(lambda: not _serve_holds(served, sock), "serve let go of the socket")

            async def reopen() -> None:  # its one place is free again
                again = await handshake(served)
                assert not isinstance(again, int), again
                await close(again)

            asyncio.run(reopen())
        finally:
            sock.close()
        assert "Traceback" not in served.output()


def test_shutting_down_with_tabs_open_logs_no_false_start_up_failure(etcd: Any, tmp_path: Path):
    """SIGTERM with one tab drawing and two whose dashboards are still starting: serve ends
    them all, and its console does not say any of them failed to start."""
    with serving(etcd.endpoint, "--max-tabs-per-client", "3", tmp=tmp_path) as served:
        drawing = _raw_handshake(served)
        wait_until(lambda: len(tab_processes(etcd.endpoint)) == 1, "a tab running")
        got = 0
        while got < 2000:  # its dashboard is up and drawing
            got += len(drawing.recv(65536))
        starting = [_raw_handshake(served) for _ in range(2)]
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=3 * DEADLINE_S) == 0
        wait_until(lambda: tab_processes(etcd.endpoint) == [], "no tab left")
        for sock in [drawing, *starting]:
            sock.close()
        output = served.output()
        assert "failed to start" not in output, output
        assert "Traceback" not in output, output


def test_too_few_file_handles_for_a_browser_is_a_one_line_error(etcd: Any, tmp_path: Path):
    """Under an open-files limit that leaves no room for a page and a tab, serve says so and
    exits instead of serving a page whose scripts can never load."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = (
        "ulimit -n 100 && exec "
        f"{sys.executable} -m etcd_registry_tui serve --endpoints {etcd.endpoint} --port {port}"
    )
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "open-files limit" in lines[0] and "ulimit -n" in lines[0]
    assert "Traceback" not in done.stderr
