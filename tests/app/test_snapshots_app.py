"""SVG snapshots of the whole dashboard, from a prepared state (no etcd involved).

The session is filled with fixed fake key-values and never started, its lease tracker
runs on a frozen clock, "first seen" lies a fixed time in the past and the event log is
printed in UTC: the output is the same on every run and every machine.

Regenerate after an intended change with ``pytest tests/app/test_snapshots_app.py
--snapshot-update`` and look at the SVGs in ``tests/app/__snapshots__/`` before committing.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from textual.pilot import Pilot

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.events import ConnectionStatus, ConnState
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.model import KeyValue
from etcd_registry_tui.registry.registration import ServiceRegistration
from etcd_registry_tui.registry.session import RegistrySession
from etcd_registry_tui.widgets import event_log
from etcd_registry_tui.widgets.event_log import EventLog
from etcd_registry_tui.widgets.status_bar import StatusBar

SIZE = (120, 36)
ENDPOINT = "127.0.0.1:2379"
PREFIX = "/services/"
REVISION = 4711
CLOCK = 1000.0  # the lease tracker's (monotonic) now
SEEN_AGO = 2 * 3600 + 300  # "first seen 2 hours ago", whenever the test runs
LOG_AT = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

SHARED_LEASE = 0x694D7A3F1B2C3D4E
ORDERS_LEASE_2 = 0x694D7A3F1B2C3D50
PAYMENTS_LEASE = 0x694D7A3F1B2C3E01
EXPIRING_LEASE = 0x694D7A3F1B2C3E02
OWN_LEASE = 0x694D7A3F1B2C3F00
PAUSED_LEASE = 0x694D7A3F1B2C3F01

#: lease -> (remaining seconds as etcd last said, granted TTL)
LEASES = {
    SHARED_LEASE: (24, 30),
    ORDERS_LEASE_2: (9, 30),  # under a third left: warning
    PAYMENTS_LEASE: (52, 60),
    EXPIRING_LEASE: (2, 30),  # about to expire: critical
    OWN_LEASE: (28, 30),
    PAUSED_LEASE: (13, 30),
}


def instance_kv(
    service: str, instance_id: str, address: str, lease: int, revision: int, **extra: Any
) -> KeyValue:
    value = {"Id": instance_id, "Name": service, "Address": address, **extra}
    return KeyValue(
        key=f"{PREFIX}{service}/{instance_id}".encode(),
        value=json.dumps(value).encode(),
        create_revision=revision,
        mod_revision=revision + 7,
        version=2,
        lease=lease,
    )


OWN_KEY = f"{PREFIX}OrderShippingService/5b9e0c1d-7a3f-4e2b-8c6d-0f1e2d3c4b5a".encode()
PAUSED_KEY = f"{PREFIX}TestService/c0ffee00-1111-4222-8333-944445555666".encode()
LEGACY_KEY = f"{PREFIX}LegacyBilling/box-7".encode()

KVS = [
    instance_kv(
        "OrderShippingService",
        "5b9e0c1d-7a3f-4e2b-8c6d-0f1e2d3c4b5a",
        "http://localhost:41234",
        OWN_LEASE,
        4601,
    ),
    instance_kv(
        "OrderShippingService",
        "7f3c2a9e-5d41-4b8e-9c0a-1e2f3a4b5c6d",
        "http://10.0.4.17:5000",
        SHARED_LEASE,
        1041,
        Zone="eu-1",
        Tags=["orders", "shipping"],
    ),
    instance_kv(
        "OrderShippingService",
        "a1b2c3d4-0000-4000-8000-000000000001",
        "http://10.0.4.18:5000",
        SHARED_LEASE,
        1042,
    ),
    instance_kv(
        "OrderShippingService",
        "e5f6a7b8-0000-4000-8000-000000000002",
        "http://10.0.4.19:5000",
        ORDERS_LEASE_2,
        1100,
    ),
    instance_kv("PaymentGateway", "pay-01", "https://10.0.7.2:8443", PAYMENTS_LEASE, 2001),
    instance_kv("PaymentGateway", "pay-02", "https://10.0.7.3:8443", EXPIRING_LEASE, 2002),
    instance_kv("ConfigService", "static-01", "http://10.0.9.1:8080", 0, 17),  # no lease
    KeyValue(LEGACY_KEY, b"host=10.0.3.3 port=9000", 300, 300, 1, 0),  # not JSON
    instance_kv(
        "TestService",
        "c0ffee00-1111-4222-8333-944445555666",
        "http://localhost:40001",
        PAUSED_LEASE,
        4650,
    ),
    KeyValue(f"{PREFIX}stray-key".encode(), b'{"Id": "stray"}', 400, 400, 1, 0),
    KeyValue(f"{PREFIX}Deep/level/three".encode(), b"\x00\x01\xfe\xff binary", 401, 402, 2, 0),
]
SHARED_KEY = KVS[1].key


def prepared_session() -> RegistrySession:
    session = RegistrySession(ConnectionConfig(endpoints=(ENDPOINT,)))
    session.state.load(KVS, REVISION)
    seen = time.time() - SEEN_AGO
    for inst in session.state:
        inst.first_seen = seen
    session.tracker.clock = lambda: CLOCK
    for lease, (ttl, granted) in LEASES.items():
        session.tracker.note(lease, ttl, granted)
    # Two instances "registered from this dashboard" (never really registered: the
    # session is not started), one of them with its heartbeats paused.
    for key, name, address, lease in [
        (OWN_KEY, "OrderShippingService", "http://localhost:41234", OWN_LEASE),
        (PAUSED_KEY, "TestService", "http://localhost:40001", PAUSED_LEASE),
    ]:
        instance_id = key.decode().rsplit("/", 1)[1]
        reg = ServiceRegistration(session.conn, name, address, instance_id=instance_id)
        reg.lease_id = lease
        reg.paused = key == PAUSED_KEY
        session.own[key] = reg
    return session


LOG = [
    LogEntry(LogKind.PUT, f"{PREFIX}PaymentGateway/pay-02", "https://10.0.7.3:8443", LOG_AT),
    LogEntry(LogKind.UPDATE, f"{PREFIX}OrderShippingService/a1b2c3d4", "version 2", LOG_AT + 4),
    LogEntry(
        LogKind.EXPIRED, f"{PREFIX}Inventory/inv-9", "lease 694d7a3f1b2c3a00 expired", LOG_AT + 9
    ),
    LogEntry(
        LogKind.REVOKED, f"{PREFIX}Inventory/inv-3", "lease 694d7a3f1b2c3a01 revoked", LOG_AT + 15
    ),
    LogEntry(
        LogKind.DEREGISTERED,
        f"{PREFIX}ConfigService/static-02",
        "deleted from the dashboard",
        LOG_AT + 21,
    ),
]


@pytest.fixture(autouse=True)
def utc_event_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Event log timestamps in UTC, whatever the machine's time zone."""
    monkeypatch.setattr(
        event_log, "time", SimpleNamespace(strftime=time.strftime, localtime=time.gmtime)
    )


def make_app(read_only: bool = False) -> RegistryApp:
    session = prepared_session()
    return RegistryApp(session.config, read_only=read_only, session=session, start_session=False)


def live(app: RegistryApp) -> None:
    """What the status bar shows once the watch is established."""
    status = ConnectionStatus(ConnState.LIVE, ENDPOINT, revision=REVISION)
    app.query_one(StatusBar).set_status(status)
    app.query_one(EventLog).add(LOG)


def test_main_view_snapshot(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RegistryApp)
        live(app)
        assert app.registry_tree.select_key(SHARED_KEY)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_read_only_view_snapshot(snap_compare: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RegistryApp)
        live(app)
        assert app.registry_tree.select_key(LEGACY_KEY)
        await pilot.pause()

    assert snap_compare(make_app(read_only=True), terminal_size=SIZE, run_before=run_before)


def test_prepared_state_is_what_the_snapshots_show() -> None:
    """The snapshots rest on this state: several services, odd entries, all lease levels."""
    session = prepared_session()
    state = session.state
    assert len(state) == len(KVS)
    assert [g.name for g in state.sorted_groups()] == [
        "ConfigService",
        "LegacyBilling",
        "OrderShippingService",
        "PaymentGateway",
        "TestService",
        "(unrecognised keys)",
    ]
    assert len(state.keys_on_lease(SHARED_LEASE)) == 2
    remaining, granted = session.ttl(EXPIRING_LEASE)
    assert granted == 30 and 0 < remaining < 5  # "critical"
    assert session.ttl(EXPIRING_LEASE) == (remaining, granted)  # frozen clock: never changes
    assert session.paused_keys() == {PAUSED_KEY}
    legacy = state.get(LEGACY_KEY)
    assert legacy is not None and legacy.parse_error and legacy.lease == 0


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
def test_main_view_at_common_sizes_snapshot(snap_compare: Any, size: tuple[int, int]) -> None:
    """80×24: ids in their shortest unique form, addresses keep their ports, the side pane
    narrower; 200×50: whole ids, halves, event log lines whole (see tests/app/test_widths.py)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, RegistryApp)
        live(app)
        assert app.registry_tree.select_key(SHARED_KEY)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
