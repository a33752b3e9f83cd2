"""Make ``screenshots/browser.png``: the dashboard served by ``serve``, in a real browser.

A private EmbeddedEtcd gets the same deterministic fleet as ``scripts/screenshots.py``
(``Fleet`` with a fixed seed, heartbeats running, no churn); ``etcd-registry-tui serve`` runs
on a free 127.0.0.1 port with its safe defaults (read-only); Debian's chromium, headless and
driven by Playwright, opens the page and is photographed once the dashboard is live and shows
every service. Everything is stopped at the end.

Usage: ``python scripts/browser_screenshot.py [--out DIR] [--chromium PATH]``
(default: the repository's ``screenshots/``, ``/usr/bin/chromium``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from etcd_registry_tui.demo.embedded import EmbeddedEtcd, free_ports  # noqa: E402
from etcd_registry_tui.demo.fleet import Fleet  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402

SEED = 20240611
NAME = "browser.png"
VIEWPORT = {"width": 1280, "height": 760}
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
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]")


async def wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            await asyncio.to_thread(urllib.request.urlopen, url, None, 2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s") from None
            await asyncio.sleep(0.1)


async def token_url(serve: asyncio.subprocess.Process, port: int, timeout: float = 30) -> str:
    """The page's URL with the token serve prints at start (stderr drained afterwards)."""
    assert serve.stderr is not None
    stderr = serve.stderr
    printed = re.compile(rb"open \S+/\?token=([\w-]+)")
    async with asyncio.timeout(timeout):
        while line := await stderr.readline():
            if found := printed.search(line):
                token = found.group(1).decode()
                break
        else:
            raise RuntimeError(f"serve exited without printing its URL ({serve.returncode})")

    async def drain() -> None:
        while await stderr.read(65536):
            pass

    _DRAIN.add(asyncio.create_task(drain()))
    return f"http://127.0.0.1:{port}/?token={token}"


_DRAIN: set[asyncio.Task[None]] = set()


async def photograph(url: str, names: list[str], out: Path, chromium: str) -> Path:
    from playwright.async_api import async_playwright

    frames: list[str] = []

    def on_websocket(ws: object) -> None:
        def received(payload: str | bytes) -> None:
            frames.append(
                payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            )

        ws.on("framereceived", received)  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory(prefix="etcd-registry-tui-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=chromium, args=CHROMIUM_ARGS, headless=True,
                viewport=VIEWPORT,  # type: ignore[arg-type]
            )  # fmt: skip
            try:
                await context.route(
                    re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"), lambda route: route.abort()
                )
                page = await context.new_page()
                page.on("websocket", on_websocket)
                await page.goto(url)
                deadline = time.monotonic() + 40
                while True:
                    shown = _ANSI.sub("", "".join(frames))
                    if " live " in shown and all(name in shown for name in names):
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the page never showed {names} live:\n{shown[-2000:]}")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.5)  # every countdown ticked at least once
                path = out / NAME
                await page.screenshot(path=str(path))
                print(f"wrote {path} ({await page.title()})", flush=True)
                return path
            finally:
                await context.close()


async def run(out: Path, chromium: str) -> Path:
    etcd = EmbeddedEtcd()
    etcd.start()
    serve: asyncio.subprocess.Process | None = None
    fleet: Fleet | None = None
    try:
        config = ConnectionConfig(endpoints=(etcd.endpoint,))
        fleet = Fleet(config, services=5, max_instances=4, seed=SEED)
        await fleet.start()
        names = sorted(fleet.plan.services)
        port = free_ports(1)[0]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        serve = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "etcd_registry_tui", "serve", "--port", str(port),
            "--endpoints", etcd.endpoint,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        url = await token_url(serve, port)
        await wait_http(url, serve)
        return await photograph(url, names, out, chromium)
    finally:
        if serve is not None and serve.returncode is None:
            serve.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(serve.wait(), 15)
            if serve.returncode is None:
                serve.kill()
                await serve.wait()
        if fleet is not None:
            with contextlib.suppress(Exception):
                await fleet.stop()
        etcd.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args.out, args.chromium))
    return 0


if __name__ == "__main__":
    sys.exit(main())
