"""``serve`` in a real headless browser: Debian's chromium driven by Playwright.

A real etcd (the ``etcd`` fixture), etcdctl as the independent writer, the real ``serve``
process on a free 127.0.0.1 port, and chromium loading its page. What the page shows is read
from the websocket frames it receives (ANSI stripped); a screenshot of each test's page is
kept under the pytest temporary directory (``--basetemp`` to choose where).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.browser_helpers import (
    DEADLINE_S,
    Served,
    browser_tab,
    open_tab,
    require_browser,
    serving,
)
from support.etcdctl import Etcdctl, require_etcd


@pytest.fixture
def chromium() -> str:
    return require_browser()


def put_instance(
    etcdctl: Etcdctl, name: str, instance_id: str, port: int, lease: int | None = None
):
    value = {"Name": name, "Id": instance_id, "Address": f"http://10.0.0.1:{port}"}
    etcdctl.put(f"/services/{name}/{instance_id}", json.dumps(value), lease=lease)


def eventually_true(tab: Any, check: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE_S}s: {what}")
        tab.page.wait_for_timeout(100)


def test_the_browser_shows_the_registry_follows_keys_and_follows_etcd(
    etcd: Any, etcdctl: Etcdctl, chromium: str, tmp_path: Path
):
    put_instance(etcdctl, "OrderService", "order-1", 5001)
    put_instance(etcdctl, "PaymentService", "pay-1", 6001)
    with serving(etcd.endpoint, tmp=tmp_path) as served:
        with browser_tab(served.url, chromium) as tab:
            # the page is titled with the endpoint, and it is read-only by default
            assert tab.page.title() == f"etcd-registry-tui · {etcd.endpoint}/services/ (read-only)"
            tab.wait_for("OrderService", "order-1", "PaymentService", "READ-ONLY")
            tab.page.screenshot(path=str(tmp_path / "browser-main.png"))

            # ? opens the help in the page
            mark = tab.mark()
            tab.press("?")
            tab.wait_for("Keys", "Colours and marks", since=mark)
            # ? closes it again (an Escape straight before / would read as alt+/), and the
            # instance pane it covered is drawn again
            mark = tab.mark()
            tab.press("?")
            tab.wait_for("/services/OrderService/order-1", since=mark)

            # / and a filter: only PaymentService is left, and the status line says so
            mark = tab.mark()
            tab.press("/")
            # typed only once the filter box is up: a key before it goes to the tree (P: probes)
            tab.wait_for("service name, id or address", since=mark)
            mark = tab.mark()
            tab.type("Pay")
            tab.wait_for("filter: 'Pay'", since=mark)
            tab.press("Enter")
            tab.wait_for_screen(  # the tree's OrderService line is gone (the log still has it)
                "filter: 'Pay'", "PaymentService", "pay-1", absent=("OrderService  1 instance",)
            )
            tab.page.screenshot(path=str(tmp_path / "browser-filtered.png"))

            # an instance put with etcdctl appears (the filter matches it)
            mark = tab.mark()
            put_instance(etcdctl, "PaymentService", "pay-2", 6002)
            tab.wait_for("pay-2", "http://10.0.0.1:6002", since=mark)
            tab.wait_for_screen("PaymentService  2 instances", "pay-1", "pay-2")

            # Escape clears the filter: OrderService is back
            mark = tab.mark()
            tab.press("Escape")
            tab.wait_for("OrderService", since=mark)
            tab.wait_for_screen("OrderService", "order-1", "pay-2", absent=("filter:",))
            tab.page.screenshot(path=str(tmp_path / "browser-after.png"))


def _dashboards_eventually(tab: Any, served: Served, count: int) -> list[Any]:
    eventually_true(tab, lambda: len(served.dashboards()) == count, f"{count} dashboard(s)")
    return served.dashboards()


def test_write_keys_do_nothing_in_the_default_read_only_mode(
    etcd: Any, etcdctl: Etcdctl, chromium: str, tmp_path: Path
):
    lease = etcdctl.lease_grant(600)
    put_instance(etcdctl, "OrderService", "order-1", 5001, lease=lease)
    before = etcdctl.get_prefix("/services/")
    with serving(etcd.endpoint, tmp=tmp_path) as served:
        with browser_tab(served.url, chromium) as tab:
            tab.wait_for("OrderService", "order-1", "READ-ONLY")
            # the tab's own dashboard process runs --read-only
            (dashboard,) = _dashboards_eventually(tab, served, 1)
            assert "--read-only" in dashboard.cmdline()

            mark = tab.mark()
            # each followed by y, which would answer yes to a confirmation
            tab.press("r", "x", "y", "d", "y")
            # Keys are handled in order: once ? has opened the help, r x y d y were seen.
            tab.press("?")
            shown = tab.wait_for("Colours and marks", since=mark)
            tab.page.screenshot(path=str(tmp_path / "browser-read-only.png"))
            for dialog in ("Register a test instance", "Revoke lease", "Delete key"):
                assert dialog not in shown, shown

            after = etcdctl.get_prefix("/services/")
            assert after.kvs == before.kvs
            assert etcdctl.lease_timetolive(lease)[0] > 0  # not revoked

            # each tab has its own dashboard; closing a tab ends its dashboard
            second = open_tab(tab.page.context, served.url)
            second.wait_for("OrderService", "READ-ONLY")
            two = _dashboards_eventually(second, served, 2)
            assert dashboard in two
            tab.page.close()
            (left,) = _dashboards_eventually(second, served, 1)
            assert left.pid != dashboard.pid


def test_allow_writes_lets_the_page_open_the_register_dialog(
    etcd: Any, etcdctl: Etcdctl, chromium: str, tmp_path: Path
):
    put_instance(etcdctl, "OrderService", "order-1", 5001)
    with serving(etcd.endpoint, "--allow-writes", tmp=tmp_path) as served:
        assert "WRITES ALLOWED" in served.output()
        with browser_tab(served.url, chromium) as tab:
            assert "(read-only)" not in tab.page.title()
            shown = tab.wait_for("OrderService", "order-1")
            assert "READ-ONLY" not in shown
            (dashboard,) = _dashboards_eventually(tab, served, 1)
            assert "--read-only" not in dashboard.cmdline()

            mark = tab.mark()
            tab.press("r")
            tab.wait_for("Register a test instance", since=mark)

            # Stopping serve with the tab still open ends the tab's dashboard too (stock
            # textual-serve waits up to a minute for open tabs and may leave them running).
            served.proc.terminate()
            assert served.proc.wait(timeout=30) == 0
            eventually_true(tab, lambda: not dashboard.is_running(), "the dashboard ended")


def test_the_browser_screenshot_script_photographs_the_served_page(chromium: str, tmp_path: Path):
    require_etcd()
    script = Path(__file__).resolve().parents[2] / "scripts" / "browser_screenshot.py"
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--chromium", chromium],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "(read-only)" in result.stdout  # the page's title: served with the safe default
    png = (tmp_path / "browser.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
