"""SVG snapshots of the register form and the inspect view.

Regenerate after an intended change with ``pytest tests/app/test_snapshots_screens.py
--snapshot-update`` and look at the SVGs in ``tests/app/__snapshots__/`` before committing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Label

from etcd_registry_tui.registry.model import Instance, KeyValue
from etcd_registry_tui.screens import InspectScreen, RegisterScreen
from etcd_registry_tui.screens import inspect as inspect_module

SIZE = (100, 30)
FIRST_SEEN = 1_700_000_000.0


class Host(App[None]):
    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.pushed = screen

    def compose(self) -> ComposeResult:
        yield Label("dashboard underneath")

    def on_mount(self) -> None:
        self.push_screen(self.pushed)


def fixed_instance() -> Instance:
    value = {
        "Id": "7f3c2a9e-5d41-4b8e-9c0a-1e2f3a4b5c6d",
        "Name": "OrderShippingService",
        "Address": "http://10.0.4.17:5000",
        "Zone": "eu-1",
        "Tags": ["orders", "shipping"],
        "Weight": 3,
    }
    kv = KeyValue(
        key=b"/services/OrderShippingService/7f3c2a9e-5d41-4b8e-9c0a-1e2f3a4b5c6d",
        value=json.dumps(value).encode(),
        create_revision=1041,
        mod_revision=1187,
        version=4,
        lease=0x694D7A3F1B2C3D4E,
    )
    return Instance.from_kv(kv, "/services/", first_seen=FIRST_SEEN)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # "First seen" is relative to now: pin now to 2 h 5 min after the instance appeared.
    monkeypatch.setattr(inspect_module, "_now", lambda: FIRST_SEEN + 7500)


def test_register_form_snapshot(snap_compare: Any) -> None:
    app = Host(RegisterScreen("TestService", "http://localhost:5000", 30))
    assert snap_compare(app, terminal_size=SIZE)


def test_register_form_error_snapshot(snap_compare: Any) -> None:
    app = Host(RegisterScreen("Order/Service", "http://localhost:5000", 30))
    assert snap_compare(app, press=["enter"], terminal_size=SIZE)


def test_inspect_snapshot(snap_compare: Any, fixed_clock: None) -> None:
    screen = InspectScreen(fixed_instance(), ttl=(21.4, 30), lease_keys=3, own=True)
    assert snap_compare(Host(screen), terminal_size=SIZE)


def test_inspect_bad_value_snapshot(snap_compare: Any, fixed_clock: None) -> None:
    kv = KeyValue(
        key=b"/services/Legacy/box-7",
        value=b"\x00\x01binary\xff\xfe payload that is not text",
        create_revision=17,
        mod_revision=17,
        version=1,
        lease=0,
    )
    inst = Instance.from_kv(kv, "/services/", first_seen=FIRST_SEEN)
    assert snap_compare(Host(InspectScreen(inst)), terminal_size=SIZE)
