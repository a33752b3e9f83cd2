"""The dashboard's past on real etcd: history in the log at start, the h view, the alarm."""

from __future__ import annotations

from typing import Any

from test_app_actions import (
    dashboard,
    expect_main_screen,
    put_instance,
    status_text,
    text_of,
    until,
)

from etcd_registry_tui.registry.history.alarms import FlapDetector, MassExpiryAlarm
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.screens.history import HistoryScreen
from etcd_registry_tui.widgets.alarm_banner import AlarmBanner
from etcd_registry_tui.widgets.event_log import EventLog


def revision(etcdctl: Any) -> int:
    _, rev = etcdctl.get_prefix("/services/")
    return int(rev)


async def test_history_before_launch_is_in_the_log_with_revisions(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    gone = put_instance(etcdctl, "Orders", "o-1", lease=lease)
    put_instance(etcdctl, "Orders", "o-2")
    etcdctl.lease_revoke(lease)
    async with dashboard(etcd, rows=2) as (app, pilot):
        log = app.query_one(EventLog)
        await until(pilot, lambda: len(log.entries) == 3)
        kinds = [(e.kind, e.key, e.revision) for e in reversed(log.entries)]
        assert kinds == [
            (LogKind.PUT, gone.decode(), 2),
            (LogKind.PUT, "/services/Orders/o-2", 3),
            (LogKind.LEASE_ENDED, gone.decode(), 4),
        ]
        # LEASE ENDED, written ENDED in a log under 60 columns wide (tests/app/test_widths.py).
        assert "#4" in text_of(log) and "ENDED" in text_of(log)
        await until(pilot, lambda: "history from rev 1" in status_text(app))
        # Live entries come on top with their time.
        etcdctl.run("del", "/services/Orders/o-2")
        await until(pilot, lambda: log.entries[0].kind is LogKind.DEREGISTERED)
        assert not log.entries[0].historic


async def test_history_view_steps_back_and_esc_returns_to_live(etcd: Any, etcdctl: Any) -> None:
    first = put_instance(etcdctl, "Orders", "o-1")
    second = put_instance(etcdctl, "Orders", "o-2", port=5001)
    etcdctl.run("del", first.decode())
    live = revision(etcdctl)
    async with dashboard(etcd, rows=2) as (app, pilot):
        await until(pilot, lambda: app.session.history.loaded)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        assert (
            screen.banner_text() == f"viewing revision {live} (live: {live}) — Esc returns to live"
        )
        await pilot.press("left")
        await pilot.pause()
        assert screen.view.revision == live - 1
        assert set(screen.view.state.instances) == {first, second}
        assert screen.registry_tree.row_count == 3  # the deleted instance is back, as it was
        assert "DEREGISTERED" not in text_of(screen.query_one("#history-changes"))
        await pilot.press("right")
        assert "DEREGISTERED" in text_of(screen.query_one("#history-changes"))
        await pilot.press("home")
        assert screen.view.revision == 1 and screen.registry_tree.row_count == 0
        await pilot.press("g", "3", "enter")
        assert screen.view.revision == 3 and set(screen.view.state.instances) == {first, second}
        # The change of that revision is marked in the tree: o-2 was put at revision 3.
        tree = screen.registry_tree
        lines = [tree.render_line(y).text for y in range(tree.row_count)]
        assert [line.split()[0] for line in lines if "◆ PUT" in line] == ["o-2"], lines
        # Live updates keep arriving underneath; writing actions are off meanwhile.
        put_instance(etcdctl, "Billing", "b-1")
        await until(pilot, lambda: screen.live == live + 1)
        assert "live: " + str(live + 1) in screen.banner_text()
        assert app.check_action("delete", ()) is False
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HistoryScreen))
        expect_main_screen(app)
        assert app.registry_tree.row_count == 4


async def test_mass_expiry_raises_the_banner_and_logs_it(etcd: Any, etcdctl: Any) -> None:
    put_instance(etcdctl, "Orders", "kept", port=6000)
    alarm = MassExpiryAlarm(quiet=600)
    async with dashboard(etcd, rows=2, alarm=alarm) as (app, pilot):
        # The short lease starts once the dashboard is up (only expiries seen live count).
        short = etcdctl.lease_grant(2)
        for i in range(3):
            put_instance(etcdctl, "Orders", f"o-{i}", lease=short, port=5000 + i)
        banner = app.query_one(AlarmBanner)
        log = app.query_one(EventLog)
        keys = {f"/services/Orders/o-{i}" for i in range(3)}

        def judged() -> list[LogEntry]:
            removals = (LogKind.EXPIRED, LogKind.LEASE_ENDED, LogKind.REVOKED, LogKind.DEREGISTERED)
            return [e for e in log.entries if e.key in keys and e.kind in removals]

        await until(pilot, lambda: len(judged()) == 3, timeout=15, message=lambda: repr(judged()))
        await pilot.pause()
        # Only certain expiries count. Each is certain when a reading of the lease came
        # within FRESH seconds of its end, as on any machine that keeps up; a loaded one may
        # read it too late, and then the alarm rightly says nothing (LEASE ENDED).
        expired = [e for e in judged() if e.kind is LogKind.EXPIRED]
        assert not any(e.kind in (LogKind.REVOKED, LogKind.DEREGISTERED) for e in judged())
        if len(expired) == 3:
            await until(pilot, lambda: banner.display, timeout=5)
            assert banner.text == (
                "MASS EXPIRY: 3 of 4 instances expired in the last 60 s — Orders 3/4"
            )
            assert [e.kind for e in log.entries].count(LogKind.ALARM) == 1
        else:
            # Not certain: the alarm says so (POSSIBLE), or nothing when a lease may have
            # been revoked with time left.
            await pilot.pause()
            assert not banner.display or banner.text.startswith("POSSIBLE MASS EXPIRY: ")


async def test_no_alarm_for_clean_deregistrations(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    keys = [put_instance(etcdctl, "Orders", f"o-{i}", lease=lease, port=5000 + i) for i in range(4)]
    async with dashboard(etcd, rows=5) as (app, pilot):
        for key in keys:
            etcdctl.run("del", key.decode())
        await until(pilot, lambda: app.registry_tree.row_count == 0)
        log = app.query_one(EventLog)
        await until(pilot, lambda: sum(e.kind is LogKind.DEREGISTERED for e in log.entries) == 4)
        assert not app.query_one(AlarmBanner).display
        assert not app.alarm.active


async def test_flapping_instance_is_marked_with_its_count(etcd: Any, etcdctl: Any) -> None:
    async with dashboard(etcd, flapping=FlapDetector(threshold=3)) as (app, pilot):
        for i in range(3):
            key = put_instance(etcdctl, "Orders", f"restart-{i}", port=7000)
            await until(pilot, lambda key=key: key in app.session.state)
            if i < 2:
                etcdctl.run("del", key.decode())
        put_instance(etcdctl, "Orders", "steady", port=7001)
        await until(pilot, lambda: app.registry_tree.flapping == {key: 3})
        await until(pilot, lambda: "↻ 1 flapping" in text_of(app.registry_tree))
        assert text_of(app.registry_tree).count("↻ flapping") == 1  # not the steady instance


async def test_inspect_lists_the_keys_versions_and_earlier_registrations(
    etcd: Any, etcdctl: Any
) -> None:
    lease = etcdctl.lease_grant(60)
    earlier = put_instance(etcdctl, "Orders", "first-id", lease=lease, port=5000)
    etcdctl.lease_revoke(lease)  # the instance restarts with a new id at the same address
    key = put_instance(etcdctl, "Orders", "second-id", port=5000)
    etcdctl.put(key.decode(), '{"Id": "second-id", "Address": "http://10.0.0.1:5000", "V": 2}')
    async with dashboard(etcd, rows=2) as (app, pilot):
        await until(pilot, lambda: app.session.history.loaded)
        await pilot.pause()
        app.registry_tree.select_key(key)
        await pilot.press("i")
        await until(
            pilot, lambda: "History of this key" in text_of(app.screen.query_one("#timeline"))
        )
        text = text_of(app.screen.query_one("#timeline"))
        assert "PUT" in text and "registered, version 1" in text
        assert "V +2" in text  # what changed in the value
        assert "Earlier registrations at this address" in text
        assert "first-id" in text and "LEASE ENDED" in text
        assert earlier.decode() not in text  # ids are shown, not whole keys
        etcdctl.run("del", key.decode())
        await until(pilot, lambda: "DEREGISTERED" in text_of(app.screen.query_one("#timeline")))
