"""Wording of counts, revisions and lease ids, the same in every view (item 33)."""

from __future__ import annotations

import json

from textual.app import App, ComposeResult

from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.model import Instance, KeyValue, RegistryState
from etcd_registry_tui.registry.wording import lease_text, plural, revision_text
from etcd_registry_tui.widgets.detail_pane import DetailPane
from etcd_registry_tui.widgets.event_log import EventLog
from etcd_registry_tui.widgets.status_bar import StatusBar

LEASE = 0x0F51A2355D8EAC16  # etcdctl: "0f51a2355d8eac16"


def test_plural_and_numbers() -> None:
    assert plural(1, "service") == "1 service"
    assert plural(0, "service") == "0 services"
    assert plural(2, "key", "keys") == "2 keys"
    assert plural(12_345, "instance") == "12,345 instances"
    assert revision_text(27994) == "27,994"
    assert lease_text(LEASE) == "0f51a2355d8eac16"
    assert lease_text(0x1F) == "000000000000001f"


def instance(lease: int = LEASE, create: int = 27994, mod: int = 1_234_567) -> Instance:
    state = RegistryState("/services/")
    value = json.dumps({"Id": "a-1", "Address": "http://127.0.0.1:8001"}).encode()
    state.load([KeyValue(b"/services/Orders/a-1", value, create, mod, 3, lease)], mod)
    return next(iter(state))


def test_instance_lease_reads_as_etcdctl_writes_it() -> None:
    assert instance().lease_hex == "0f51a2355d8eac16"


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar("127.0.0.1:2379", id="status")
        yield DetailPane(id="detail")
        yield EventLog(prefix="/services/", id="events")


async def test_status_line_counts_and_revision() -> None:
    async with Host().run_test(size=(120, 20)) as pilot:
        bar = pilot.app.query_one(StatusBar)
        bar.set_counts(27994, 1, 1)
        text = str(bar.render())
        assert "rev 27,994" in text and "1 service · 1 instance" in text, text
        bar.set_counts(27995, 2, 3)
        text = str(bar.render())
        assert "2 services · 3 instances" in text, text


def _plain(pane: DetailPane) -> str:
    from rich.console import Console

    console = Console(width=100, record=True, color_system=None)
    console.print(pane._meta_table())  # what the pane's meta lines draw
    return console.export_text()


async def test_detail_pane_lease_and_revisions() -> None:
    async with Host().run_test(size=(120, 30)) as pilot:
        pane = pilot.app.query_one(DetailPane)
        pane.show(instance(), lease_keys=1)
        await pilot.pause()
        text = _plain(pane)
        assert "0f51a2355d8eac16  (no other key on it)" in text, text
        assert "create 27,994 · mod 1,234,567" in text, text
        pane.show(instance(create=5), lease_keys=3)
        await pilot.pause()
        text = _plain(pane)
        assert "0f51a2355d8eac16  (3 keys share it)" in text, text


async def test_event_log_history_stamp_is_a_revision_like_elsewhere() -> None:
    async with Host().run_test(size=(120, 30)) as pilot:
        log = pilot.app.query_one(EventLog)
        entry = LogEntry(LogKind.PUT, "/services/Orders/a-1", revision=27994, historic=True)
        log.add_history([entry])
        await pilot.pause()
        assert log.render_line(0).text.startswith(" #27,994 PUT"), log.render_line(0).text


async def test_inspect_writes_revisions_and_lease_like_every_view() -> None:
    from textual.widgets import Static

    from etcd_registry_tui.screens import InspectScreen
    from etcd_registry_tui.screens.inspect import describe_deleted

    class InspectHost(App[None]):
        def on_mount(self) -> None:
            self.push_screen(InspectScreen(instance(), ttl=(10.0, 30), lease_keys=1))

    async with InspectHost().run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = pilot.app.screen

        def shown(selector: str) -> str:
            return str(screen.query_one(selector, Static).content)

        assert shown("#meta-lease") == "0f51a2355d8eac16"
        assert shown("#meta-create-revision") == "27,994"
        assert shown("#meta-mod-revision") == "1,234,567"
    assert describe_deleted(27994, True) == "deleted at rev 27,994"
    assert describe_deleted(27994, False).startswith("deleted by rev 27,994 ")


def test_lease_in_log_details_and_errors_reads_as_etcdctl_writes_it() -> None:
    from etcd_registry_tui.registry.history.store import HistoryEvent, classify_past
    from etcd_registry_tui.registry.history.timeline import value_change
    from etcd_registry_tui.registry.registration import InstanceConflict

    key = b"/services/Orders/a-1"
    before = KeyValue(key, b"{}", 5, 5, 1, LEASE)
    past = HistoryEvent.make("/services/", 9, None, before, key=key)
    classify_past([past], {LEASE})
    assert past.detail.startswith("key deleted, lease 0f51a2355d8eac16 lived on"), past.detail
    moved = HistoryEvent.make("/services/", 9, KeyValue(key, b"{}", 5, 9, 2, 0x1F), before)
    assert value_change(moved) == "lease 0f51a2355d8eac16 → 000000000000001f"
    assert "(lease 0f51a2355d8eac16, 3 s left)" in str(InstanceConflict("k", LEASE, 3))


async def test_service_summary_counts_in_the_singular() -> None:
    from etcd_registry_tui.app import RegistryApp
    from etcd_registry_tui.registry.etcd.config import ConnectionConfig
    from etcd_registry_tui.registry.session import RegistrySession

    session = RegistrySession(ConnectionConfig(endpoints=("127.0.0.1:1",)))
    value = json.dumps({"Id": "a-1", "Address": "http://127.0.0.1:8001"}).encode()
    session.state.load([KeyValue(b"/services/Orders/a-1", value, 5, 5, 1, LEASE)], 5)
    app = RegistryApp(session.config, session=session, start_session=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        app.registry_tree.action_cursor_home()  # the service's header
        await pilot.pause()
        assert "Orders: 1 instance on 1 lease" in _plain_summary(app.query_one(DetailPane))


def _plain_summary(pane: DetailPane) -> str:
    return str(pane._meta.content)  # what the pane shows for a service header
