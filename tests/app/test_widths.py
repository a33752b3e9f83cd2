"""What each terminal width shows (items 26 and 27): ids told apart, ports kept,
countdowns never cut, the panes' share. Pure UI on the real model (no etcd)."""

from __future__ import annotations

from typing import Any

import pytest
from test_registry_tree import FakeTtl, TreeApp, kv, line_with, make_state, screen_lines

from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.widgets import RegistryTree
from etcd_registry_tui.widgets.event_log import EventLog
from etcd_registry_tui.widgets.fit_text import IdForms, elide_middle, fit_address

DEMO_IDS = ["orders-api-7d9f8-1", "orders-api-7d9f8-2", "orders-api-7d9f8-10"]
LEASE_IDS = ["694d7a3f1b2c3d4e", "694d7a3f1b2c3d50", "694d7a3f1b2c3e01"]
UUIDS = ["5b9e0c1d-7a3f-4e2b-8c6d-0f1e2d3c4b5a", "7f3c2a9e-5d41-4b8e-9c0a-1e2f3a4b5c6d"]


@pytest.mark.parametrize("ids", [DEMO_IDS, LEASE_IDS, UUIDS, ["a", "ab", "abc"]])
def test_id_forms_tell_ids_apart_at_their_shortest(ids: list[str]) -> None:
    forms = IdForms.of(ids)
    for column in range(forms.shortest, forms.longest + 1):
        shown = [forms.form(text, column) for text in ids]
        assert len(set(shown)) == len(ids), (column, shown)
        assert all(len(text) <= column for text in shown), (column, shown)
    # Room for all of it: all of it.
    assert forms.column(200) == forms.longest
    assert [forms.form(text, forms.longest) for text in ids] == ids


def test_id_forms_shortest_is_short() -> None:
    assert IdForms.of(UUIDS).shortest <= 8  # differ at the start: a head is enough
    assert IdForms.of(DEMO_IDS).shortest <= 5  # differ at the end: head…tail
    assert IdForms.of(LEASE_IDS).column(0) == 8  # the usual 8 when there is no room


def test_address_keeps_its_port() -> None:
    address = "http://127.0.0.1:41234"
    assert fit_address(address, 40) == address
    for width in range(8, len(address)):
        text = fit_address(address, width)
        assert len(text) <= width, text
        if width >= 10:
            assert text.endswith(":41234"), (width, text)
    assert fit_address("https://orders.eu-west-1.example.com:8443/health", 30).endswith(":8443…")
    assert fit_address("10.0.0.1:80", 8) == elide_middle("10.0.0.1:80", 8, tail=4)


async def test_ids_told_apart_and_ports_kept_in_a_narrow_tree() -> None:
    kvs = [kv("orders-api", i, f"http://127.0.0.1:{41000 + n}") for n, i in enumerate(DEMO_IDS)]
    app = TreeApp()
    async with app.run_test(size=(48, 10)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        await pilot.pause()
        rows = screen_lines(tree)[1:]
        assert len(rows) == 3
        ids = [row.split()[0] for row in rows]
        assert len(set(ids)) == 3, rows
        for row in rows:
            assert any(f":{41000 + m}" in row for m in range(3)), rows


async def test_whole_ids_when_there_is_room() -> None:
    kvs = [kv("Svc", i, "http://10.0.0.1:80") for i in UUIDS + LEASE_IDS]
    app = TreeApp()
    async with app.run_test(size=(200, 12)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        await pilot.pause()
        for text in UUIDS + LEASE_IDS:
            assert text in line_with(tree, text)


#: Each instance's countdown, in words or short; nothing else (no "14 se", "14 second").
COUNTDOWNS = {
    "i1": ("14 seconds", "14s"),
    "i2": ("1 minute 5 seconds", "1m 5s"),
    "i3": ("1 hour 2 minutes", "1h 2m"),
    "i4": ("expired",),
    "i5": ("no lease", "—"),
}


@pytest.mark.parametrize("width", [24, 30, 36, 44, 60, 80])
@pytest.mark.parametrize("cursor", [False, True])
async def test_countdown_never_cut(width: int, cursor: bool) -> None:
    ttl = FakeTtl({1: (14.0, 30), 2: (65.0, 90), 3: (3725.0, 7200), 4: (-1.0, 30)})
    kvs = [kv("S", f"i{lease}", "http://127.0.0.1:8000", lease=lease) for lease in (1, 2, 3, 4)]
    kvs.append(kv("S", "i5", "http://127.0.0.1:8000"))
    app = TreeApp(ttl)
    async with app.run_test(size=(width, 10)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        await pilot.pause()
        for row_id, forms in COUNTDOWNS.items():
            if cursor:
                tree.select_key(f"/services/S/{row_id}".encode())
                await pilot.pause()
            row = line_with(tree, f" {row_id} ").rstrip()
            assert any(row.endswith(f" {form}") for form in forms), (width, row)


async def test_event_log_keeps_the_end_of_a_long_line() -> None:
    from textual.app import App, ComposeResult

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield EventLog(prefix="/services/")

    entry = LogEntry(
        LogKind.LEADER,
        "/elections/MigrationJob",
        "migration-runner-7f3c2a9e (lease 694d7a3f1b2c3d4e) → migration-runner-a1b2c3d4",
        at=0.0,
    )
    async with LogApp().run_test(size=(80, 5)) as pilot:
        log = pilot.app.query_one(EventLog)
        log.add([entry])
        await pilot.pause()
        line = log.render_line(0).text
        assert len(line.rstrip()) <= 80
        assert line.rstrip().endswith("→ migration-runner-a1b2c3d4"), line
        assert "LEADER       /elections/MigrationJob  migr" in line and "…" in line


PORTS = ("41234", "5000", "8443", "8080", "40001")


async def app_at(size: tuple[int, int]) -> Any:
    from test_snapshots_app import SHARED_KEY, live, make_app

    app = make_app()
    context = app.run_test(size=size)
    pilot = await context.__aenter__()
    live(app)
    assert app.registry_tree.select_key(SHARED_KEY)
    await pilot.pause()
    return app, pilot, context


@pytest.mark.parametrize("size", [(40, 12), (60, 20), (70, 20), (80, 24), (160, 40), (200, 50)])
async def test_each_width_shows_the_services_and_their_ports(size: tuple[int, int]) -> None:
    app, pilot, context = await app_at(size)
    try:
        tree = app.registry_tree
        side = app.query_one("#side")
        # The services box keeps most of the screen; the side pane gives way first.
        events = app.query_one("#events")
        if size[0] < 70:
            assert not side.display and tree.size.width >= size[0] - 2, tree.size
        else:
            assert side.display and side.size.width >= 24, side.size
            assert tree.size.width >= size[0] // 2 - 2, (tree.size, side.size)
            # The event log only where its lines have room for more than their times.
            assert events.display == (size[0] >= 80), size
        rows = [row for row in screen_lines(tree) if row.startswith("  ")]
        shown = [row for row in rows if "(no addr" not in row and "/services/" not in row]
        assert shown, rows
        for row in shown:
            # Every address keeps its port, every countdown its words or short form.
            assert any(f":{port}" in row for port in PORTS), (size, row)
            assert "se…" not in row and "secon…" not in row, row
    finally:
        await context.__aexit__(None, None, None)


async def test_service_header_shortens_its_counts_rather_than_cutting_them() -> None:
    ttl = FakeTtl({1: (2.0, 30)})
    kvs = [kv("OrderShippingService", f"i{n}", "http://127.0.0.1:8000", lease=1) for n in (1, 2)]
    app = TreeApp(ttl)
    async with app.run_test(size=(34, 6)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        await pilot.pause()
        assert screen_lines(tree)[0] == "▾ OrderShippingService  2  2 exp"
    async with TreeApp(ttl).run_test(size=(80, 6)) as pilot:
        tree = pilot.app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        await pilot.pause()
        assert screen_lines(tree)[0] == "▾ OrderShippingService  2 instances  (2 expiring)"


async def test_a_narrow_event_log_writes_its_kinds_short() -> None:
    from textual.app import App, ComposeResult

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield EventLog(prefix="/services/")

    entry = LogEntry(LogKind.DEREGISTERED, "/services/Config/static-02", "deleted", at=0.0)
    async with LogApp().run_test(size=(44, 5)) as pilot:
        log = pilot.app.query_one(EventLog)
        log.add([entry])
        await pilot.pause()
        line = log.render_line(0).text.rstrip()
        assert line[9:] == "DEREG   Config/static-02  deleted", line  # after HH:MM:SS
