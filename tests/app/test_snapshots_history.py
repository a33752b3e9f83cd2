"""SVG snapshots of the history view and the mass-expiry banner, from a prepared state.

Regenerate with ``pytest tests/app/test_snapshots_history.py --snapshot-update``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from test_snapshots_app import LOG_AT, PREFIX, REVISION, SIZE, live, make_app
from textual.pilot import Pilot

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.history.store import HistoryEvent, Reason
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind, log_entry
from etcd_registry_tui.registry.model import KeyValue
from etcd_registry_tui.widgets.event_log import EventLog

OLD_KEY = f"{PREFIX}OrderShippingService/0ld1d000".encode()


def with_history(app: RegistryApp) -> RegistryApp:
    value = json.dumps({"Id": "0ld1d000", "Address": "http://10.0.3.9:5000"}).encode()
    kv = KeyValue(OLD_KEY, value, REVISION - 2, REVISION - 2, 1, 0)
    put = HistoryEvent.make(PREFIX, REVISION - 2, kv, None)
    gone = HistoryEvent.make(PREFIX, REVISION - 1, None, kv, key=OLD_KEY)
    gone.reason, gone.detail = Reason.DEREGISTERED, "key deleted (no lease)"
    history = app.session.history
    history.load_past([put, gone], REVISION - 100, 0, REVISION - 100)
    return app


def test_history_view_snapshot(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RegistryApp)
        live(app)
        await pilot.press("h")
        await pilot.press("left", "left")
        await pilot.pause()

    app = with_history(make_app())
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_mass_expiry_banner_snapshot(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RegistryApp)
        live(app)
        app.alarm.quiet = 10**9  # stays up whatever the clock says
        events = []
        for i in range(3):
            kv = KeyValue(f"{PREFIX}Inventory/inv-{i}".encode(), b"{}", 1, 1, 1, 0x7)
            event = HistoryEvent.make(PREFIX, REVISION, None, kv, at=time.time())
            event.reason, event.detail = Reason.EXPIRED, "lease 7 expired"
            events.append(event)
        log = app.query_one(EventLog)
        log.add([replace(log_entry(e), at=LOG_AT + 30) for e in events])
        # What the app does with live events (_on_session_events), at a fixed log time.
        for text in app.alarm.observe(events, app.session.state, time.time()):
            log.add([LogEntry(LogKind.ALARM, "", text, at=LOG_AT + 30)])
        app.history.sync_marks()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)
