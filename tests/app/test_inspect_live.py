"""The inspect view (``i``) follows its key live, against a real etcd driven by etcdctl.

An update shows the new value and metadata (and ``c`` copies the new value); a delete or a
lease revoke says ``deleted at rev N`` with etcd's revision of the delete, keeps the last
known value on screen labelled as such, and ``c`` copies that value saying it is deleted.
"""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from test_app_actions import (
    PREFIX,
    dashboard,
    highlight,
    notifications,
    put_instance,
    until,
    value_json,
)
from textual.pilot import Pilot
from textual.widgets import Static

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.events import ChangeBatch
from etcd_registry_tui.registry.model import KeyValue
from etcd_registry_tui.registry.session import RegistrySession
from etcd_registry_tui.screens import InspectScreen


def shown(screen: InspectScreen, selector: str) -> str:
    """The text of the Static at ``selector``; "" when there is none."""
    found = screen.query(selector)
    if not found:
        return ""
    content = found.first(Static).content
    return content.code if isinstance(content, Syntax) else str(content)


async def open_inspect(pilot: Pilot[Any], app: RegistryApp, key: bytes) -> InspectScreen:
    await highlight(pilot, app, key)
    await pilot.press("i")
    screen = await until(
        pilot, lambda: app.screen if isinstance(app.screen, InspectScreen) else None
    )
    assert isinstance(screen, InspectScreen)
    return screen


async def copied(pilot: Pilot[Any], app: RegistryApp) -> str:
    await pilot.press("c")
    await pilot.pause()
    clipboard = app.clipboard
    assert isinstance(clipboard, str)
    return clipboard


async def test_inspect_follows_an_update_and_copies_the_new_value(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    key = put_instance(etcdctl, "Orders", "live-1", lease=lease)

    async with dashboard(etcd, rows=2) as (app, pilot):
        screen = await open_inspect(pilot, app, key)
        await until(
            pilot,
            lambda: shown(screen, "#meta-granted-ttl").startswith("60 s"),
            message=lambda: f"{shown(screen, '#meta-granted-ttl')!r} {screen.ttl}",
        )
        assert "http://10.0.0.1:5000" in shown(screen, "#value")

        # A new value on a new lease, written by someone else.
        new_lease = etcdctl.lease_grant(120)
        new_value = value_json("Orders", "live-1", "http://10.9.9.9:7000")
        etcdctl.put(key, new_value, lease=new_lease)
        kv = etcdctl.get_prefix(key).kvs[key]

        await until(
            pilot,
            lambda: "http://10.9.9.9:7000" in shown(screen, "#value"),
            message=lambda: f"the inspect view still shows {shown(screen, '#value')!r}",
        )
        assert app.screen is screen
        assert shown(screen, "#meta-address") == "http://10.9.9.9:7000"
        assert shown(screen, "#meta-mod-revision") == f"{kv.mod_revision:,}"
        assert shown(screen, "#meta-version") == "2"
        assert shown(screen, "#meta-lease") == f"{new_lease:016x}"
        # The countdown follows the new lease, read from etcd by the lease tracker.
        await until(
            pilot,
            lambda: shown(screen, "#meta-granted-ttl").startswith("120 s"),
            message=lambda: f"granted TTL shown: {shown(screen, '#meta-granted-ttl')!r}",
        )
        remaining = shown(screen, "#meta-remaining-ttl")
        assert "minute" in remaining or "second" in remaining, remaining
        assert "deleted" not in shown(screen, "#key")

        assert json.loads(await copied(pilot, app)) == json.loads(new_value)
        assert await copied(pilot, app) == new_value


async def test_inspect_says_deleted_at_the_delete_revision(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    key = put_instance(etcdctl, "Orders", "doomed", lease=lease)
    put_instance(etcdctl, "Orders", "bystander", port=5001)
    last_value = etcdctl.get(key)
    assert last_value is not None

    async with dashboard(etcd, rows=3) as (app, pilot):
        screen = await open_inspect(pilot, app, key)
        answer = etcdctl.run_json("del", "--", key.decode())
        revision = int(answer["header"]["revision"])  # type: ignore[index]

        await until(
            pilot,
            lambda: f"deleted at rev {revision:,}" in shown(screen, "#deleted"),
            message=lambda: f"no 'deleted at rev {revision:,}' in {screen.query('#deleted')}",
        )
        assert screen.deleted_at == revision
        assert app.screen is screen  # the view stays open on the last known value
        assert "last known value" in shown(screen, "#deleted")
        assert "http://10.0.0.1:5000" in shown(screen, "#value")
        assert screen.query_one("#value-pane").has_class("deleted")
        assert "not asked etcd yet" not in shown(screen, "#meta-remaining-ttl")
        assert "deleted" in shown(screen, "#meta-remaining-ttl")

        assert await copied(pilot, app) == last_value.decode()
        assert any(
            "last known value" in str(n) and f"deleted at rev {revision:,}" in str(n)
            for n in notifications(app)
        ), notifications(app)

        # Written again: the view follows the new key.
        etcdctl.put(key, value_json("Orders", "doomed", "http://10.0.0.2:6000"))
        await until(pilot, lambda: "http://10.0.0.2:6000" in shown(screen, "#value"))
        assert not screen.query("#deleted")
        assert screen.deleted_at is None
        assert not screen.query_one("#value-pane").has_class("deleted")


async def test_inspect_says_deleted_when_the_lease_is_revoked(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    key = put_instance(etcdctl, "Orders", "revoked", lease=lease)
    put_instance(etcdctl, "Orders", "same-lease", lease=lease, port=5001)

    async with dashboard(etcd, rows=3) as (app, pilot):
        screen = await open_inspect(pilot, app, key)
        await until(pilot, lambda: shown(screen, "#meta-lease-keys").startswith("2 "))
        etcdctl.lease_revoke(lease)
        _, revision = etcdctl.get_prefix(PREFIX)  # nothing else writes: the revoke's revision

        await until(
            pilot,
            lambda: f"deleted at rev {revision:,}" in shown(screen, "#deleted"),
            message=lambda: f"no 'deleted at rev {revision:,}' in {screen.query('#deleted')}",
        )
        assert screen.deleted_at == revision
        assert "http://10.0.0.1:5000" in shown(screen, "#value")
        assert "not asked etcd yet" not in shown(screen, "#meta-remaining-ttl")
        copy = await copied(pilot, app)
        assert json.loads(copy)["Address"] == "http://10.0.0.1:5000"


async def test_inspect_after_a_reload_that_found_the_key_gone() -> None:
    """A reloaded snapshot (after a compaction, say) tells only that the key is gone by its
    revision, not when it went: the view says so rather than claim an exact revision."""
    key = f"{PREFIX}Orders/gone".encode()
    other = f"{PREFIX}Orders/stays".encode()
    kvs = [
        KeyValue(key, value_json("Orders", "gone", "http://10.0.0.1:1").encode(), 5, 5, 1, 0),
        KeyValue(other, value_json("Orders", "stays", "http://10.0.0.2:2").encode(), 6, 6, 1, 0),
    ]
    session = RegistrySession(ConnectionConfig())
    session.state.load(kvs, 6)
    app = RegistryApp(session=session, start_session=False)
    async with app.run_test() as pilot:
        await highlight(pilot, app, key)
        screen = await open_inspect(pilot, app, key)
        changes = session.state.load(kvs[1:], 40)  # the reload: the key is not there any more
        app._on_session_batch(ChangeBatch(changes, 40, snapshot=True), [])
        await until(pilot, lambda: "deleted by rev 40" in shown(screen, "#deleted"))
        assert "reloaded" in shown(screen, "#deleted")
        assert "http://10.0.0.1:1" in shown(screen, "#value")
        assert await copied(pilot, app) == kvs[0].value.decode()


async def test_inspect_of_a_key_gone_before_the_view_was_drawn() -> None:
    kv = KeyValue(f"{PREFIX}Orders/x".encode(), b'{"Id": "x"}', 3, 3, 1, 0)
    session = RegistrySession(ConnectionConfig())
    session.state.load([kv], 3)
    app = RegistryApp(session=session, start_session=False)
    async with app.run_test() as pilot:
        screen = InspectScreen(session.state.instances[kv.key])
        screen.show_deleted(9)
        await app.push_screen(screen)
        await pilot.pause()
        assert shown(screen, "#deleted") == "deleted at rev 9 — showing the last known value"
        assert screen.query_one("#value-pane").has_class("deleted")
        assert shown(screen, "#meta-remaining-ttl") == "— (key deleted)"


async def test_inspect_of_a_key_that_came_back_and_went_again_shows_the_newer_delete() -> None:
    """Deleted at rev 5; before the next flush it is put again and deleted again (one
    coalesced DELETE at rev 36): the view names rev 36 and shows the value it had then."""
    from etcd_registry_tui.registry.model import Change, ChangeKind, Instance

    key = f"{PREFIX}Orders/back".encode()
    old = KeyValue(key, value_json("Orders", "back", "http://127.0.0.1:1").encode(), 3, 3, 1, 0)
    other = KeyValue(f"{PREFIX}Orders/x".encode(), b'{"Id": "x"}', 4, 4, 1, 0)
    session = RegistrySession(ConnectionConfig())
    session.state.load([old, other], 4)
    app = RegistryApp(session=session, start_session=False)
    async with app.run_test() as pilot:
        await highlight(pilot, app, key)
        screen = await open_inspect(pilot, app, key)
        gone = session.state.load([other], 5)  # the first delete
        app._on_session_batch(ChangeBatch(gone, 5), [])
        await until(pilot, lambda: "deleted at rev 5" in shown(screen, "#deleted"))
        newer = KeyValue(
            key, value_json("Orders", "back", "http://127.0.0.1:2").encode(), 35, 35, 1, 0
        )
        again = Change(ChangeKind.DELETE, Instance.from_kv(newer, PREFIX), None, 36)
        app._on_session_batch(ChangeBatch([again], 36), [])
        await until(pilot, lambda: "deleted at rev 36" in shown(screen, "#deleted"))
        assert "http://127.0.0.1:2" in shown(screen, "#value")
        assert len(screen.query("#deleted")) == 1
        assert await copied(pilot, app) == newer.value.decode()


async def test_the_registered_by_row_follows_ownership() -> None:
    kv = KeyValue(f"{PREFIX}Orders/mine".encode(), b'{"Id": "mine"}', 3, 3, 1, 0)
    session = RegistrySession(ConnectionConfig())
    session.state.load([kv], 3)
    app = RegistryApp(session=session, start_session=False)
    async with app.run_test() as pilot:
        inst = session.state.instances[kv.key]
        screen = InspectScreen(inst, own=True)
        await app.push_screen(screen)
        await pilot.pause()
        assert shown(screen, "#meta-own") == "★ this dashboard"
        screen.show_instance(inst, own=False)  # revoked from here, then put by another client
        await pilot.pause()
        assert not screen.query("#meta-own") and not screen.query("#meta-name-own")
        screen.show_instance(inst, own=True)
        await pilot.pause()
        assert shown(screen, "#meta-own") == "★ this dashboard"


async def test_the_timeline_shows_a_removal_s_reason_once_it_is_known(
    etcd: Any, etcdctl: Any
) -> None:
    """The reason is filled in after the delete is held (etcd is asked about the lease):
    the open view's timeline shows it without waiting for another key to change."""
    lease = etcdctl.lease_grant(60)
    key = put_instance(etcdctl, "Orders", "why", lease=lease)
    async with dashboard(etcd, rows=2) as (app, pilot):
        screen = await open_inspect(pilot, app, key)
        etcdctl.lease_revoke(lease)
        await until(
            pilot,
            lambda: "revoked with" in shown(screen, "#timeline"),
            message=lambda: shown(screen, "#timeline"),
        )
