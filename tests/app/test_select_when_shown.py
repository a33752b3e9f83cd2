"""An instance registered from the dialog is selected once the tree shows it.

The registration call can return before the watch brings the new key: then the actions
ask the flush to select the key when it arrives (``select_when_shown``). Here the watch's
responses that carry the new service are held back (the real ones, from a real etcd, only
later) until the registration has returned, so that path is the one taken every time:

* the key arrives and is shown: it is selected (the cursor moves to it);
* the key arrives hidden by the filter: nothing is selected, and nothing is later either,
  when the filter is cleared and further flushes come (the wish was spent, not kept).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from test_app_actions import dashboard, notifications, put_instance, until
from textual.pilot import Pilot
from textual.widgets import Input

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.screens import RegisterScreen

HELD_SERVICE = "HeldService"
HELD = f"/services/{HELD_SERVICE}/".encode()


@pytest.fixture
def held_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.Event]:
    """Every watch holds back a response with an event under ``HELD`` until the event
    returned here is set (then it and all after it go through as they came)."""
    release = asyncio.Event()
    real_watch = EtcdConnection.watch

    def holding_watch(self: EtcdConnection, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async def responses() -> AsyncIterator[Any]:
            async with contextlib.aclosing(real_watch(self, *args, **kwargs)) as inner:
                async for response in inner:
                    if not release.is_set() and any(
                        event.kv.key.startswith(HELD) for event in response.events
                    ):
                        await release.wait()
                    yield response

        return responses()

    monkeypatch.setattr(EtcdConnection, "watch", holding_watch)
    yield release
    release.set()


async def register_held(pilot: Pilot[Any], app: RegistryApp) -> bytes:
    """``r``, the held service's name, Enter; returns the key once the call has returned
    (the dashboard says so) while the watch has not brought it yet."""
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, RegisterScreen))
    app.screen.query_one("#name", Input).value = HELD_SERVICE
    await pilot.press("enter")
    key: bytes = await until(
        pilot,
        lambda: next((k for k in app.session.own if k.startswith(HELD)), None),
        message="the registration did not happen",
    )
    await until(
        pilot,
        lambda: any(n.startswith(f"Registered {key.decode()}") for n in notifications(app)),
        message="the dashboard never said it registered",
    )
    assert key not in app.session.state, "the watch was to hold the new key back"
    return key


async def test_a_registered_instance_is_selected_once_the_watch_shows_it(
    etcd: Any, etcdctl: Any, held_watch: asyncio.Event
) -> None:
    first = put_instance(etcdctl, "Aaa", "a-first")
    async with dashboard(etcd, rows=2) as (app, pilot):
        tree = app.registry_tree
        assert tree.highlighted_instance == first
        key = await register_held(pilot, app)
        await pilot.pause(0.3)
        assert tree.highlighted_instance == first, "nothing to select before the key is in"

        held_watch.set()
        await until(pilot, lambda: key in app.session.state, message="never arrived")
        await until(
            pilot,
            lambda: tree.highlighted_instance == key,
            message=lambda: f"highlighted {tree.highlighted_instance!r}, not the new {key!r}",
        )


async def test_a_registered_instance_hidden_by_the_filter_is_not_selected_later(
    etcd: Any, etcdctl: Any, held_watch: asyncio.Event
) -> None:
    other = put_instance(etcdctl, "OtherService", "o-first")
    async with dashboard(etcd, rows=2) as (app, pilot):
        tree = app.registry_tree
        await pilot.press("slash")
        for char in "Other":
            await pilot.press(char)
        await pilot.press("enter")  # the filter stays; the tree has the focus again
        await until(pilot, lambda: tree.has_focus and tree.highlighted_instance == other)
        key = await register_held(pilot, app)

        held_watch.set()
        await until(pilot, lambda: key in app.session.state, message="never arrived")
        # A flush took the key in (hidden): the tree holds it, the cursor did not move.
        await until(pilot, lambda: not app.pending.holds_changes and not app.pending.flush_due)
        assert tree.highlighted_instance == other
        assert HELD_SERVICE not in "\n".join(
            tree.render_line(y).text for y in range(tree.row_count)
        )

        await pilot.press("escape")  # the filter goes: the new key is on screen now
        await until(
            pilot,
            lambda: any(HELD_SERVICE in tree.render_line(y).text for y in range(tree.row_count)),
            message="the new instance never showed without the filter",
        )
        late = put_instance(etcdctl, "Zzz", "z-late")  # another flush, with the key shown
        await until(pilot, lambda: late in app.session.state)
        await until(pilot, lambda: not app.pending.holds_changes and not app.pending.flush_due)
        await pilot.pause(0.3)
        assert tree.highlighted_instance == other, "selected later, once the filter went"
