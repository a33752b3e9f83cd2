"""SVG snapshot of the elections view, from a prepared state (no etcd involved).

Regenerate with ``pytest tests/app/test_snapshots_elections.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

from test_snapshots_app import CLOCK, LOG_AT, live, make_app
from textual.pilot import Pilot

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.model import KeyValue
from etcd_registry_tui.widgets.event_log import EventLog

REVISION = 4711
#: (key, value, lease, create revision, remaining, granted)
CANDIDATES = [
    (
        "/elections/migrations/{:x}",
        "order-svc-1 http://10.0.4.17:5000",
        0x694D7A3F1B2C4001,
        4000,
        51,
        60,
    ),
    (
        "/elections/migrations/{:x}",
        "order-svc-2 http://10.0.4.18:5000",
        0x694D7A3F1B2C4002,
        4010,
        8,
        60,
    ),
    (
        "/elections/migrations/{:x}",
        "order-svc-3 http://10.0.4.19:5000",
        0x694D7A3F1B2C4003,
        4020,
        44,
        60,
    ),
    ("/locks/nightly-report/{:x}", "", 0x694D7A3F1B2C4101, 4100, 7, 10),
    ("/locks/nightly-report/{:x}", "", 0x694D7A3F1B2C4102, 4105, 3, 10),
    ("election/nodejob/{}", "node-7", 1_000_000_000_000_123, 4200, 26, 30),
]
OWN_LEASE = 0x694D7A3F1B2C4003


def kvs() -> list[KeyValue]:
    return [
        KeyValue(key.format(lease).encode(), value.encode(), rev, rev, 1, lease)
        for key, value, lease, rev, _, _ in CANDIDATES
    ]


def prepare(app: RegistryApp) -> None:
    elections = app.elections
    elections.tracker.clock = lambda: CLOCK
    for _, _, lease, _, remaining, granted in CANDIDATES:
        elections.tracker.note(lease, remaining, granted)
    elections.state.load(kvs(), REVISION)
    view = app.elections_view
    view.clock = lambda: CLOCK
    view.own_leases = {OWN_LEASE}
    view.paused_leases = set()
    view.set_state(elections.state)
    app.query_one(EventLog).add(
        [
            LogEntry(
                LogKind.LEADER, "/elections/migrations", "order-svc-0 → order-svc-1", LOG_AT + 30
            )
        ]
    )


def test_elections_view_snapshot(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RegistryApp)
        live(app)
        await pilot.press("e")
        prepare(app)
        await pilot.press("down")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=run_before)
