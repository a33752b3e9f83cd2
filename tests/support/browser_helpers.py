"""A real headless browser (Debian's chromium, driven by Playwright) on ``serve``.

xterm.js draws the dashboard on a canvas, so what the page shows is read from the websocket
frames it receives: ``BrowserTab.mark()`` and ``wait_for(text, since=mark)`` ask "did this
arrive (escape sequences stripped) after that key press?"; ``screen()`` plays every frame so
far through a terminal emulator (pyte) sized as the page's terminal, so
``wait_for_screen(...)`` asks "is this on the screen now?" (Textual redraws only what changed,
so "not shown" needs the screen, not the stream).

Without chromium or Playwright the browser tests skip, unless CI is set: then they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from etcd_registry_tui.demo.embedded import free_ports
from support.etcdctl import in_ci

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Generous: a busy CI machine must not fail these; nothing here measures speed.
DEADLINE_S = 40.0
VIEWPORT = {"width": 1280, "height": 800}

# CSI (incl. private modes and mouse reports), OSC (to BEL or ST), charset designations, and
# lone two-character escapes.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[@-_]"
)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


FALLBACK_CHROMIUM = "/usr/bin/chromium"


def find_chromium(fallback: str = FALLBACK_CHROMIUM) -> str | None:
    """$CHROMIUM, else chromium on PATH, else Debian's /usr/bin/chromium."""
    for found in (os.environ.get("CHROMIUM"), shutil.which("chromium"), fallback):
        if found and os.access(found, os.X_OK):
            return found
    return None


def require_browser(fallback: str = FALLBACK_CHROMIUM) -> str:
    """chromium's path; skip (fail when CI is set) without chromium or Playwright."""
    problem = None
    chromium = find_chromium(fallback)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if chromium is None:
        problem = (
            "chromium is not installed (./dev test installs it with apt-get install chromium;"
            " or set CHROMIUM to a Chromium executable)"
        )
    if problem is None and chromium is not None:
        return chromium
    if in_ci():
        pytest.fail(f"CI is set but {problem}", pytrace=False)
    pytest.skip(problem)


# --------------------------------------------------------------------------------------------
# the serve process


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    #: the page's URL, with the token serve printed at start
    url: str
    log: Path
    #: http://127.0.0.1:PORT
    base: str = ""
    token: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def dashboards(self) -> list[Any]:
        """The dashboard processes (one per tab) under this serve process."""
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                if "etcd_registry_tui" in child.cmdline() and child.is_running():
                    if child.status() != psutil.STATUS_ZOMBIE:
                        found.append(child)
        return found


def _limit_open_files(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextlib.contextmanager
def serving(
    endpoint: str, *extra: str, tmp: Path, open_files: int | None = None
) -> Iterator[Served]:
    """``etcd-registry-tui serve`` on a free 127.0.0.1 port, stopped afterwards
    (``open_files``: with that hard limit of open files)."""
    port = free_ports(1)[0]
    log = tmp / f"serve-{port}.log"
    argv = [sys.executable, "-m", "etcd_registry_tui", "serve", "--port", str(port)]
    argv += ["--endpoints", endpoint, *extra]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env,
            preexec_fn=None if open_files is None else lambda: _limit_open_files(open_files),
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    served = Served(proc, base, log, base)
    printed = re.compile(r"open \S+/\?token=([\w-]+)")
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited ({proc.returncode}):\n{served.output()}")
            found = printed.search(served.output())
            if found is not None:
                served.token = found.group(1)
                served.url = f"{base}/?token={served.token}"
                try:
                    with urllib.request.urlopen(served.url, timeout=2):
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not answer:\n{served.output()}") from None
            time.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for child in served.dashboards():  # never leave a dashboard behind
            with contextlib.suppress(Exception):
                child.kill()


# --------------------------------------------------------------------------------------------
# the browser


@dataclass
class BrowserTab:
    page: Any
    frames: list[str] = field(default_factory=list)
    sockets: list[Any] = field(default_factory=list)
    #: (frame index from which it applies, columns, rows) of the page's terminal
    sizes: list[tuple[int, int, int]] = field(default_factory=list)
    _emulator: Any = None
    _fed: int = 0

    def _on_websocket(self, ws: Any) -> None:
        self.sockets.append(ws)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.url).query)
        self.sizes.append((len(self.frames), int(query["width"][0]), int(query["height"][0])))

        def received(payload: str | bytes) -> None:
            if isinstance(payload, bytes):
                payload = payload.decode("utf-8", "replace")
            self.frames.append(payload)

        def sent(payload: str | bytes) -> None:
            if isinstance(payload, str) and payload.startswith('["resize"'):
                size = json.loads(payload)[1]
                self.sizes.append((len(self.frames), int(size["width"]), int(size["height"])))

        ws.on("framereceived", received)
        ws.on("framesent", sent)

    def mark(self) -> int:
        return len(self.frames)

    def text(self, since: int = 0) -> str:
        return strip_ansi("".join(self.frames[since:]))

    def screen(self) -> str:
        """The terminal's screen now, as xterm.js shows it: every frame so far, emulated."""
        import pyte

        if self._emulator is None:
            _, columns, rows = self.sizes[0]
            screen = pyte.Screen(columns, rows)
            self._emulator = (screen, pyte.Stream(screen))
        screen, stream = self._emulator
        frames = self.frames[self._fed :]
        for index, chunk in enumerate(frames, start=self._fed):
            for start, columns, rows in self.sizes:
                if start == index and (columns, rows) != (screen.columns, screen.lines):
                    screen.resize(rows, columns)
            stream.feed(chunk)
        self._fed += len(frames)
        return "\n".join(line.rstrip() for line in screen.display)

    def wait_for_screen(self, *texts: str, absent: tuple[str, ...] = ()) -> str:
        """Wait until every text is on the screen and none of ``absent`` is."""
        end = time.monotonic() + DEADLINE_S
        while True:
            shown = self.screen()
            if all(t in shown for t in texts) and not any(t in shown for t in absent):
                return shown
            if time.monotonic() > end:
                raise AssertionError(
                    f"not on screen within {DEADLINE_S}s: {texts} without {absent}; "
                    f"the screen:\n{shown}"
                )
            self.page.wait_for_timeout(100)

    def wait_for(self, *texts: str, since: int = 0, deadline: float = DEADLINE_S) -> str:
        """Wait (letting Playwright deliver frames) until every text has arrived since ``since``."""
        end = time.monotonic() + deadline
        while True:
            shown = self.text(since)
            if all(t in shown for t in texts):
                return shown
            if time.monotonic() > end:
                missing = [t for t in texts if t not in shown]
                raise AssertionError(
                    f"{missing} not shown within {deadline}s; got:\n{shown[-3000:]}"
                )
            self.page.wait_for_timeout(100)

    def settle(self, ms: int = 300) -> None:
        self.page.wait_for_timeout(ms)

    def press(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)


@contextlib.contextmanager
def browser_tab(url: str, chromium: str) -> Iterator[BrowserTab]:
    """A fresh headless chromium (own profile directory) with one tab open at ``url``."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="etcd-registry-tui-chromium-") as profile:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport=VIEWPORT,  # type: ignore[arg-type]
            )
            try:
                # Only the served page: nothing is fetched from anywhere else.
                context.route(
                    re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"),
                    lambda route: route.abort(),
                )
                yield open_tab(context, url)
            finally:
                context.close()


def open_tab(context: Any, url: str) -> BrowserTab:
    """Another tab of the same browser at ``url``."""
    page = context.new_page()
    tab = BrowserTab(page)
    page.on("websocket", tab._on_websocket)
    page.goto(url)
    # Keys go to xterm.js's hidden textarea (a click would also be a mouse event for the
    # dashboard).
    page.wait_for_selector(".xterm-helper-textarea", state="attached")
    page.focus(".xterm-helper-textarea")
    return tab
