"""The dashboard driven with Pilot against a real etcd, checked afterwards with etcdctl.

Every test starts its own private etcd (the ``etcd`` fixture), runs the full app on it,
presses keys like a user would and then asks etcdctl what etcd really holds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from support.helpers import etcdctl_view, eventually
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, Static

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.log_entries import LogKind
from etcd_registry_tui.registry.model import UNRECOGNISED
from etcd_registry_tui.registry.session import ReadOnlyError
from etcd_registry_tui.screens import ConfirmScreen, HelpScreen, InspectScreen, RegisterScreen
from etcd_registry_tui.widgets.detail_pane import DetailPane
from etcd_registry_tui.widgets.event_log import EventLog
from etcd_registry_tui.widgets.status_bar import StatusBar

SIZE = (120, 40)
PREFIX = "/services/"


# --------------------------------------------------------------------------------------------
# helpers


async def until(
    pilot: Pilot[Any],
    cond: Callable[[], Any],
    timeout: float = 10.0,
    message: str | Callable[[], str] = "",
) -> Any:
    """Poll ``cond`` between short Pilot pauses (the app keeps running) until it is truthy."""

    async def check() -> Any:
        await pilot.pause(0.05)
        return cond()

    return await eventually(check, timeout=timeout, interval=0.0, message=message)


def text_of(widget: Widget) -> str:
    """What ``widget`` draws on screen, as plain text (trailing blanks dropped)."""
    width, height = widget.size
    strips = widget.render_lines(Region(0, 0, width, height))
    return "\n".join(strip.text.rstrip() for strip in strips).rstrip()


def detail_text(app: RegistryApp) -> str:
    detail = app.query_one(DetailPane)
    meta = text_of(detail.query_one("#detail-meta", Static))
    live = [text_of(detail.query_one(f"#detail-{name}")) for name in ("ttl", "seen")]
    value = text_of(detail.query_one("#detail-value", Static))
    return flat("\n".join([meta, *live, value]))


def flat(text: str) -> str:
    """``text`` with every run of whitespace (line breaks of a narrow pane) as one space."""
    return " ".join(text.split())


def tree_lines(app: RegistryApp) -> list[str]:
    """The tree's rows as drawn (it is tall enough for every row in these tests)."""
    tree = app.registry_tree
    return [tree.render_line(y).text.rstrip() for y in range(tree.row_count)]


def tree_text(app: RegistryApp) -> str:
    return "\n".join(tree_lines(app))


def status_text(app: RegistryApp) -> str:
    return text_of(app.query_one(StatusBar))


def notifications(app: RegistryApp) -> list[str]:
    return [n.message for n in app._notifications]


def log_entries(app: RegistryApp) -> list[tuple[LogKind, str]]:
    return [(e.kind, e.key) for e in app.query_one(EventLog).entries]


def value_json(name: str, instance_id: str, address: str) -> str:
    return json.dumps({"Id": instance_id, "Name": name, "Address": address})


def put_instance(
    etcdctl: Any, name: str, instance_id: str, lease: int | None = None, port: int = 5000
) -> bytes:
    key = f"{PREFIX}{name}/{instance_id}"
    etcdctl.put(key, value_json(name, instance_id, f"http://10.0.0.1:{port}"), lease=lease)
    return key.encode()


def expect_main_screen(app: RegistryApp) -> None:
    assert app.is_running
    assert len(app.screen_stack) == 1, app.screen_stack
    assert not isinstance(app.screen, ConfirmScreen | RegisterScreen | InspectScreen | HelpScreen)


@contextlib.asynccontextmanager
async def dashboard(
    etcd: Any, rows: int | None = None, **kwargs: Any
) -> AsyncIterator[tuple[RegistryApp, Pilot[Any]]]:
    """The app on ``etcd``, live (and showing ``rows`` rows when given).

    On the way out the session is shut down (own instances unregistered, connection
    closed), as quitting would, so no heartbeat task outlives the test.
    """
    app = RegistryApp(ConnectionConfig(endpoints=(etcd.endpoint,)), **kwargs)
    async with app.run_test(size=SIZE) as pilot:
        try:
            await until(
                pilot,
                lambda: app.session.status.state is ConnState.LIVE,
                message="the dashboard never went live",
            )
            if rows is not None:
                await until(
                    pilot,
                    lambda: app.registry_tree.row_count == rows,
                    message=lambda: f"{app.registry_tree.row_count} rows, wanted {rows}",
                )
            # The past read back at launch lands in the event log after the first
            # snapshot; a test that counts log entries starts after it.
            await until(
                pilot,
                lambda: app.session.history.loaded and not app.pending.holds_history,
                message="the history read at launch never reached the screen",
            )
            yield app, pilot
        finally:
            with contextlib.suppress(Exception):
                await app.session.shutdown()


async def highlight(pilot: Pilot[Any], app: RegistryApp, raw_key: bytes) -> None:
    app.registry_tree.select_key(raw_key)
    await until(
        pilot,
        lambda: (
            app.query_one(DetailPane).instance is not None
            and app.query_one(DetailPane).instance.raw_key == raw_key
        ),
        message=f"the detail pane never showed {raw_key!r}",
    )


async def highlight_service(pilot: Pilot[Any], app: RegistryApp, service: str) -> None:
    group = app.session.state.groups[service]
    await highlight(pilot, app, group.sorted_instances()[0].raw_key)
    await pilot.press("left")  # from an instance to its service row
    assert app.registry_tree.highlighted_instance is None
    assert app.registry_tree.highlighted_service == service


async def register_via_form(pilot: Pilot[Any], app: RegistryApp, ttl: int | None = None) -> bytes:
    """``r``, optionally a TTL, Enter; returns the key the dashboard registered."""
    before = set(app.session.own)
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, RegisterScreen))
    if ttl is not None:
        app.screen.query_one("#ttl", Input).value = str(ttl)
    await pilot.press("enter")
    new = await until(
        pilot,
        lambda: set(app.session.own) - before,
        message="the registration did not happen",
    )
    (key,) = new
    await until(pilot, lambda: key in app.session.state, message="own key never seen")
    return key


# --------------------------------------------------------------------------------------------
# showing what etcd holds


async def test_keys_written_by_etcdctl_appear_and_detail_follows_cursor(
    etcd: Any, etcdctl: Any
) -> None:
    permanent = put_instance(etcdctl, "Orders", "a-permanent")
    lease = etcdctl.lease_grant(30)
    leased = put_instance(etcdctl, "Orders", "b-leased", lease=lease, port=5001)

    async with dashboard(etcd, rows=3) as (app, pilot):
        assert app.session.state.as_dict() == etcdctl_view(etcdctl, PREFIX)
        assert app.session.state.service_count == 1
        assert "1 service · 2 instances" in status_text(app)
        assert "live" in status_text(app)
        tree = tree_text(app)
        assert "Orders  2 instances" in tree
        assert "a-perman" in tree and "b-leased" in tree and "no lease" in tree

        # The first instance is highlighted at start and shown in the detail pane.
        assert app.registry_tree.highlighted_instance == permanent
        await until(pilot, lambda: "a-permanent" in detail_text(app))
        text = detail_text(app)
        assert "none — permanent key" in text
        assert "http://10.0.0.1:5000" in text

        await pilot.press("down")
        assert app.registry_tree.highlighted_instance == leased
        await until(pilot, lambda: "of 30s" in detail_text(app), message=lambda: detail_text(app))
        text = detail_text(app)
        assert f"{PREFIX}Orders/b-leased" in text
        assert f"{lease:016x} (no other key on it)" in text

        # A key written while the dashboard runs arrives through the watch.
        late = put_instance(etcdctl, "Billing", "c-late", port=5002)
        await until(pilot, lambda: app.registry_tree.row_count == 5)
        assert late in app.session.state
        assert app.session.state.as_dict() == etcdctl_view(etcdctl, PREFIX)
        assert any(kind is LogKind.PUT and "c-late" in key for kind, key in log_entries(app))
        assert app.registry_tree.highlighted_instance == leased  # the cursor stayed on its key


# --------------------------------------------------------------------------------------------
# register


async def test_register_with_defaults_writes_pascal_case_json_on_a_lease(
    etcd: Any, etcdctl: Any
) -> None:
    async with dashboard(etcd, rows=0) as (app, pilot):
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RegisterScreen))
        form = app.screen
        assert form.query_one("#name", Input).value == "TestService"
        assert form.query_one("#ttl", Input).value == "30"
        address = form.query_one("#address", Input).value
        assert address.startswith("http://localhost:")
        await pilot.press("enter")

        key = await until(pilot, lambda: next(iter(app.session.own), None))
        await until(pilot, lambda: key in app.session.state and app.registry_tree.row_count == 2)
        expect_main_screen(app)

        kvs, _ = etcdctl.get_prefix(PREFIX)
        assert list(kvs) == [key]
        stored = kvs[key]
        value = json.loads(stored.value)
        assert list(value) == ["Id", "Name", "Address"]
        assert value["Name"] == "TestService"
        assert value["Address"] == address
        assert key == f"{PREFIX}TestService/{value['Id']}".encode()
        assert stored.lease != 0
        remaining, granted = etcdctl.lease_timetolive(stored.lease)
        assert granted == 30
        assert 25 <= remaining <= 30

        # Marked as our own: in the tree (★), the detail pane and the notification.
        assert key in app.registry_tree.own_keys
        assert app.registry_tree.highlighted_instance == key
        assert "★" in tree_text(app)
        await until(pilot, lambda: "registered by this dashboard" in detail_text(app))
        assert any("Registered" in n and f"{stored.lease:016x}" in n for n in notifications(app))


async def test_own_mark_reaches_the_detail_pane_when_the_watch_was_first(
    etcd: Any, monkeypatch: Any
) -> None:
    """The watch can bring a new key (and the pane draw it) before the registration call
    has returned and the key is known as ours: the pane still gets its owner line."""
    from etcd_registry_tui.registry.registration import ServiceRegistration

    async with dashboard(etcd, rows=0) as (app, pilot):
        real = ServiceRegistration.register

        async def watch_first(reg: ServiceRegistration) -> None:
            await real(reg)
            key = reg.key.encode()
            await eventually(
                lambda: (
                    (shown := app.query_one(DetailPane).instance) is not None
                    and shown.raw_key == key
                ),
                timeout=10,
                message="the watch never brought the new key to the pane",
            )

        monkeypatch.setattr(ServiceRegistration, "register", watch_first)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RegisterScreen))
        await pilot.press("enter")
        key = await until(pilot, lambda: next(iter(app.session.own), None))
        await until(
            pilot,
            lambda: "registered by this dashboard" in detail_text(app),
            message=lambda: detail_text(app),
        )
        assert app.query_one(DetailPane).instance.raw_key == key


async def test_register_with_invalid_input_stays_in_the_form(etcd: Any, etcdctl: Any) -> None:
    async with dashboard(etcd, rows=0) as (app, pilot):
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RegisterScreen))
        form = app.screen
        assert isinstance(form, RegisterScreen)

        for field, bad, expected in [
            ("name", "Order/Service", "must not contain '/'"),
            ("address", "localhost:5000", "not an http:// or https:// URL"),
            ("ttl", "soon", "TTL must be a positive whole number"),
            ("extra", "[1, 2]", "must be a JSON object"),
        ]:
            good = form.query_one(f"#{field}", Input).value
            form.query_one(f"#{field}", Input).value = bad
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is form, f"{field}={bad!r} was accepted"
            assert expected in form.error
            assert form.focused is form.query_one(f"#{field}", Input)
            form.query_one(f"#{field}", Input).value = good

        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1)
        expect_main_screen(app)
        await pilot.pause(0.2)
        assert app.session.own == {}
        assert etcdctl_view(etcdctl, PREFIX) == {}


# --------------------------------------------------------------------------------------------
# revoke


async def test_revoke_instance_after_confirming_removes_key_and_lease(
    etcd: Any, etcdctl: Any
) -> None:
    lease = etcdctl.lease_grant(60)
    target = put_instance(etcdctl, "Orders", "victim", lease=lease)
    sibling = f"{PREFIX}Orders/victim-sidecar".encode()  # a second key on the same lease
    etcdctl.put(sibling, "sidecar", lease=lease)
    bystander = put_instance(etcdctl, "Orders", "bystander", lease=etcdctl.lease_grant(60))

    async with dashboard(etcd, rows=4) as (app, pilot):
        await highlight(pilot, app, target)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        message = app.screen.message
        assert f"Revoke lease {lease:016x}?" in message and "2 keys go with it" in message
        await pilot.press("y")

        await until(pilot, lambda: target not in app.session.state)
        await until(pilot, lambda: sibling not in app.session.state)
        expect_main_screen(app)
        assert etcdctl.get(target) is None
        assert etcdctl.get(sibling) is None
        assert etcdctl.get(bystander) is not None
        assert etcdctl.lease_timetolive(lease)[0] == -1  # etcd: lease not found
        assert app.registry_tree.row_count == 2
        await until(pilot, lambda: (LogKind.REVOKED, target.decode()) in log_entries(app))
        assert any("Revoked 1 lease; 2 keys went with it" in n for n in notifications(app))


async def test_revoking_an_own_instance_stops_its_heartbeats(etcd: Any, etcdctl: Any) -> None:
    async with dashboard(etcd, rows=0) as (app, pilot):
        key = await register_via_form(pilot, app, ttl=3)
        lease = app.session.own[key].lease_id
        await highlight(pilot, app, key)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")

        await until(pilot, lambda: key not in app.session.state)
        assert app.session.own == {}
        assert etcdctl.lease_timetolive(lease)[0] == -1
        # A heartbeat still running would find its lease lost and register again.
        await pilot.pause(1.5)  # more than the heartbeat interval (TTL / 3)
        assert etcdctl_view(etcdctl, PREFIX) == {}
        assert key not in app.session.state
        assert any("Revoked 1 lease; 1 key went with it" in n for n in notifications(app))


async def test_revoke_cancelled_with_n_keeps_everything(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    target = put_instance(etcdctl, "Orders", "keeper", lease=lease)

    async with dashboard(etcd, rows=2) as (app, pilot):
        await highlight(pilot, app, target)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: len(app.screen_stack) == 1)
        expect_main_screen(app)
        await pilot.pause(0.3)
        assert etcdctl.get(target) is not None
        remaining, granted = etcdctl.lease_timetolive(lease)
        assert granted == 60 and remaining > 50
        assert target in app.session.state


async def test_revoke_on_a_service_row_revokes_every_lease_of_that_service(
    etcd: Any, etcdctl: Any
) -> None:
    shared = etcdctl.lease_grant(60)
    single = etcdctl.lease_grant(60)
    keys = [
        put_instance(etcdctl, "Orders", "o1", lease=shared),
        put_instance(etcdctl, "Orders", "o2", lease=shared, port=5001),
        put_instance(etcdctl, "Orders", "o3", lease=single, port=5002),
    ]
    permanent = put_instance(etcdctl, "Orders", "o4-permanent", port=5003)
    other_lease = etcdctl.lease_grant(60)
    other = put_instance(etcdctl, "Payments", "p1", lease=other_lease)

    async with dashboard(etcd, rows=7) as (app, pilot):
        await highlight_service(pilot, app, "Orders")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Revoke all 2 leases of Orders?" in app.screen.message
        assert "3 keys go with them" in app.screen.message
        await pilot.press("y")

        await until(pilot, lambda: not any(k in app.session.state for k in keys))
        expect_main_screen(app)
        view = etcdctl_view(etcdctl, PREFIX)
        assert set(view) == {permanent, other}
        assert etcdctl.lease_timetolive(shared)[0] == -1
        assert etcdctl.lease_timetolive(single)[0] == -1
        assert etcdctl.lease_timetolive(other_lease)[0] > 0
        await until(pilot, lambda: app.session.state.as_dict() == view)


async def test_revoke_of_a_lease_that_already_expired_says_so(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    target = put_instance(etcdctl, "Orders", "doomed", lease=lease)

    async with dashboard(etcd, rows=2) as (app, pilot):
        await highlight(pilot, app, target)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        # Behind the dashboard's back, while the question is open: the lease is gone
        # before the dashboard gets to revoke it.
        etcdctl.lease_revoke(lease)
        await pilot.press("y")

        await until(
            pilot,
            lambda: any("already expired" in n for n in notifications(app)),
            message=lambda: f"notifications: {notifications(app)}",
        )
        assert not any("failed" in n for n in notifications(app))
        expect_main_screen(app)
        await until(pilot, lambda: target not in app.session.state)
        assert etcdctl.get(target) is None
        assert app.registry_tree.row_count == 0
        assert "0 services · 0 instances" in status_text(app)


# --------------------------------------------------------------------------------------------
# delete, pause


async def test_delete_a_permanent_key_after_confirming(etcd: Any, etcdctl: Any) -> None:
    target = put_instance(etcdctl, "Config", "permanent")
    other = put_instance(etcdctl, "Config", "stays", port=5001)

    async with dashboard(etcd, rows=3) as (app, pilot):
        await highlight(pilot, app, target)
        await pilot.press("x")  # no lease: nothing to revoke, no question asked
        await pilot.pause()
        expect_main_screen(app)
        assert any("has no lease" in n for n in notifications(app))

        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert f"Delete key {target.decode()}?" in app.screen.message
        await pilot.press("y")

        await until(pilot, lambda: target not in app.session.state)
        expect_main_screen(app)
        assert etcdctl.get(target) is None
        assert etcdctl.get(other) is not None
        await until(pilot, lambda: (LogKind.DEREGISTERED, target.decode()) in log_entries(app))
        assert any(f"Deleted {target.decode()}" in n for n in notifications(app))


async def test_pause_stops_heartbeats_and_the_lease_expires(etcd: Any, etcdctl: Any) -> None:
    async with dashboard(etcd, rows=0) as (app, pilot):
        key = await register_via_form(pilot, app, ttl=3)
        lease = app.session.own[key].lease_id
        assert lease is not None
        assert etcdctl.lease_timetolive(lease)[1] == 3
        await highlight(pilot, app, key)

        await pilot.press("p")
        await until(pilot, lambda: key in app.registry_tree.paused_keys)
        assert "paused" in tree_text(app)
        assert any("paused" in n for n in notifications(app))

        # Nobody renews the lease now: etcd drops the key within about the TTL.
        await until(pilot, lambda: etcdctl.get(key) is None, timeout=10)
        assert etcdctl.lease_timetolive(lease)[0] == -1
        await until(pilot, lambda: key not in app.session.state)

        def ran_out() -> str | None:
            # EXPIRED when a reading of the lease came within FRESH seconds of its end; on
            # a loaded machine the last one may be older: then it cannot be told from a
            # revoke at that moment, and the log says so (never REVOKED or DEREGISTERED).
            for entry in app.query_one(EventLog).entries:
                if entry.key != key.decode():
                    continue
                if entry.kind is LogKind.EXPIRED:
                    return "EXPIRED"
                if entry.kind is LogKind.LEASE_ENDED and "countdown ran out" in entry.detail:
                    # A log narrower than SHORT_KINDS_UNDER cells writes this kind "ENDED".
                    return "ENDED"
            return None

        found = await until(pilot, ran_out, message=lambda: f"event log: {log_entries(app)}")
        assert found in text_of(app.query_one(EventLog))
        expect_main_screen(app)


async def test_pause_only_for_own_instances(etcd: Any, etcdctl: Any) -> None:
    foreign = put_instance(etcdctl, "Orders", "foreign", lease=etcdctl.lease_grant(60))
    async with dashboard(etcd, rows=2) as (app, pilot):
        await highlight(pilot, app, foreign)
        await pilot.press("p")
        await pilot.pause()
        assert any("Only instances registered from this dashboard" in n for n in notifications(app))
        assert app.registry_tree.paused_keys == set()


# --------------------------------------------------------------------------------------------
# views: inspect, filter, help


async def test_inspect_opens_with_i_or_enter_and_escape_closes(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    target = put_instance(etcdctl, "Orders", "look-at-me", lease=lease)

    async with dashboard(etcd, rows=2) as (app, pilot):
        await highlight(pilot, app, target)
        for key in ("i", "enter"):
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, InspectScreen))
            screen = app.screen
            assert isinstance(screen, InspectScreen)
            assert screen.instance.raw_key == target
            assert str(screen.query_one("#meta-lease").content) == f"{lease:016x}"
            assert str(screen.query_one("#meta-address").content) == "http://10.0.0.1:5000"
            await until(pilot, lambda s=screen: s.ttl[1] == 60)  # the countdown reaches it
            await pilot.press("escape")
            await until(pilot, lambda: len(app.screen_stack) == 1)
            expect_main_screen(app)


async def test_filter_narrows_rows_and_escape_clears_it(etcd: Any, etcdctl: Any) -> None:
    put_instance(etcdctl, "Orders", "o1")
    put_instance(etcdctl, "Orders", "o2", port=5001)
    put_instance(etcdctl, "Payments", "p1", port=5002)
    put_instance(etcdctl, "Shipping", "s1", port=5003)

    async with dashboard(etcd, rows=7) as (app, pilot):
        box = app.query_one("#filter", Input)
        assert not box.display
        await pilot.press("slash")
        assert box.display and box.has_focus
        await pilot.press(*"pay")
        await until(pilot, lambda: app.registry_tree.row_count == 2)
        assert app.registry_tree.filter_text == "pay"
        assert "Payments" in tree_text(app) and "Orders" not in tree_text(app)
        assert "filter: 'pay'" in status_text(app)

        await pilot.press("escape")
        await until(pilot, lambda: app.registry_tree.row_count == 7)
        assert box.value == "" and not box.display
        assert app.registry_tree.has_focus
        assert "filter" not in status_text(app)

        # By address too, and Enter keeps the filter but gives the tree the focus.
        await pilot.press("slash", *":5003", "enter")
        await until(pilot, lambda: app.registry_tree.row_count == 2)
        assert app.registry_tree.has_focus and "Shipping" in tree_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.registry_tree.row_count == 7)


async def test_question_mark_opens_help(etcd: Any, etcdctl: Any) -> None:
    async with dashboard(etcd, rows=0) as (app, pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        rows = {
            key: description
            for _, section in screen.sections
            for keys, description in section
            for key in keys.split(" / ")
        }
        for key, description in [
            ("r", "Register"),
            ("x", "Revoke"),
            ("q", "Quit"),
            ("/", "Filter"),
        ]:
            assert rows.get(key) == description, rows
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1)
        expect_main_screen(app)


# --------------------------------------------------------------------------------------------
# quit


async def test_quit_unregisters_own_instances_at_once(etcd: Any, etcdctl: Any) -> None:
    foreign_lease = etcdctl.lease_grant(60)
    foreign = put_instance(etcdctl, "Orders", "foreign", lease=foreign_lease)

    async with dashboard(etcd, rows=2) as (app, pilot):
        own = [await register_via_form(pilot, app), await register_via_form(pilot, app)]
        leases = [app.session.own[key].lease_id for key in own]
        assert all(etcdctl.get(key) is not None for key in own)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, message="q did not quit")

    # Right after quitting, not after 30 s of TTL: the leases were revoked.
    assert app.return_code == 0
    assert all(etcdctl.get(key) is None for key in own)
    assert all(etcdctl.lease_timetolive(lease)[0] == -1 for lease in leases)
    assert etcdctl.get(foreign) is not None
    assert etcdctl.lease_timetolive(foreign_lease)[0] > 0


# --------------------------------------------------------------------------------------------
# read-only


async def test_read_only_ignores_write_keys(etcd: Any, etcdctl: Any) -> None:
    leased = put_instance(etcdctl, "Orders", "leased", lease=etcdctl.lease_grant(60))
    permanent = put_instance(etcdctl, "Orders", "permanent", port=5001)
    before = etcdctl_view(etcdctl, PREFIX)

    async with dashboard(etcd, rows=3, read_only=True) as (app, pilot):
        assert "READ-ONLY" in status_text(app)
        for key in (leased, permanent):
            await highlight(pilot, app, key)
            for press in ("r", "x", "d", "p"):
                await pilot.press(press)
                await pilot.pause()
                expect_main_screen(app)
        await highlight_service(pilot, app, "Orders")
        await pilot.press("x", "r")
        await pilot.pause(0.3)
        expect_main_screen(app)
        assert app.session.own == {}

        # The data layer refuses as well, whatever the UI lets through.
        try:
            await app.session.register("Sneaky", "http://localhost:1")
        except ReadOnlyError:
            pass
        else:
            raise AssertionError("a read-only session registered an instance")

        # Reading still works.
        await highlight(pilot, app, leased)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InspectScreen))
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1)

    assert etcdctl_view(etcdctl, PREFIX) == before


# --------------------------------------------------------------------------------------------
# etcd going away and coming back


async def test_etcd_killed_and_restarted_view_catches_up(etcd: Any, etcdctl: Any) -> None:
    gone = put_instance(etcdctl, "Orders", "gone-later")
    changed = put_instance(etcdctl, "Orders", "changed-later", port=5001)
    put_instance(etcdctl, "Payments", "steady", port=5002)

    async with dashboard(etcd, rows=5) as (app, pilot):
        etcd.kill()
        await until(
            pilot,
            lambda: (
                app.session.status.state is ConnState.RECONNECTING
                and "reconnecting" in status_text(app)
            ),
            message=lambda: f"status bar: {status_text(app)!r}",
        )
        expect_main_screen(app)
        assert app.registry_tree.row_count == 5  # the last known state stays on screen
        await pilot.press("down", "down", "up")  # and it still answers keys
        expect_main_screen(app)

        await etcd.arestart()
        etcdctl.run("del", gone.decode())
        etcdctl.put(changed, value_json("Orders", "changed-later", "http://10.0.0.9:6000"))
        added = put_instance(etcdctl, "Shipping", "new-while-away", port=5003)

        expected = etcdctl_view(etcdctl, PREFIX)
        await until(
            pilot,
            lambda: app.session.state.as_dict() == expected,
            timeout=20,
            message=lambda: f"{app.session.state.as_dict()} != {expected}",
        )
        await until(pilot, lambda: "live" in status_text(app) and app.registry_tree.row_count == 6)
        assert added in app.session.state and gone not in app.session.state
        assert app.session.state.get(changed).address == "http://10.0.0.9:6000"
        assert "3 services · 3 instances" in status_text(app)
        tree = tree_text(app)
        assert "new-whil" in tree and "gone-lat" not in tree
        expect_main_screen(app)


# --------------------------------------------------------------------------------------------
# odd content


async def test_odd_values_and_keys_are_shown_without_crashing(etcd: Any, etcdctl: Any) -> None:
    good = put_instance(etcdctl, "Orders", "good")
    not_json = f"{PREFIX}Orders/not-json".encode()
    etcdctl.put(not_json, "hello, I am not JSON")
    binary = f"{PREFIX}Orders/binary".encode()
    etcdctl.put(binary, b"\x00\xff\xfe\x01payload")
    loose = f"{PREFIX}loose-key".encode()
    etcdctl.put(loose, value_json("Loose", "loose-key", "http://10.0.0.2:80"))
    deep = f"{PREFIX}Deep/level/three".encode()
    etcdctl.put(deep, value_json("Deep", "three", "http://10.0.0.3:80"))

    async with dashboard(etcd, rows=7) as (app, pilot):
        assert app.session.state.as_dict() == etcdctl_view(etcdctl, PREFIX)
        groups = [g.name for g in app.session.state.sorted_groups()]
        assert groups == ["Orders", UNRECOGNISED]
        assert set(app.session.state.groups[UNRECOGNISED].instances) == {loose, deep}
        lines = tree_lines(app)
        assert UNRECOGNISED in lines[-3]  # the odd group comes last
        assert "Orders  3 instances  ⚠ 2 problems" in tree_text(app)

        await highlight(pilot, app, not_json)
        await until(pilot, lambda: "raw value" in detail_text(app))
        assert "hello, I am not JSON" in detail_text(app)
        assert "value is not JSON" in detail_text(app)

        await highlight(pilot, app, binary)
        await until(pilot, lambda: "hex dump" in detail_text(app))
        assert "00 ff fe 01" in detail_text(app)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InspectScreen))
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1)

        await highlight(pilot, app, loose)
        await until(pilot, lambda: "directly under the prefix" in detail_text(app))
        await highlight(pilot, app, deep)
        await until(pilot, lambda: "3 levels deep" in detail_text(app))
        await highlight(pilot, app, good)

        assert not any(n.severity == "error" for n in app._notifications)
        expect_main_screen(app)


async def test_an_empty_tree_says_why(etcd: Any, etcdctl: Any) -> None:
    async with dashboard(etcd, rows=0) as (app, pilot):
        await until(
            pilot, lambda: "No instances under /services/ yet" in text_of(app.registry_tree)
        )
        assert "press r to register one" in text_of(app.registry_tree)
        etcd.kill()
        await until(
            pilot,
            lambda: f"etcd at {etcd.endpoint} is out of reach" in text_of(app.registry_tree),
            timeout=15,
        )
        await etcd.arestart()
        put_instance(etcdctl, "Orders", "back")
        await until(pilot, lambda: app.registry_tree.row_count == 2, timeout=20)
        assert "out of reach" not in text_of(app.registry_tree)
