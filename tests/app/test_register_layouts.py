"""The ``r`` dialog registers in the layout picked, exactly as ``register --layout`` does.

The layout is picked with keys only (Tab to the select, Enter opens its list, Down, Enter),
the form submitted with Enter; etcdctl then reads the key, its bytes and its lease. The CLI
registers the same name, address and instance id in the same layout afterwards, and etcdctl
must read the same key and bytes on a lease with the same TTL: the layout's default.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
from support.cli_helpers import CLI, _env
from test_app_actions import dashboard, notifications, until
from textual.pilot import Pilot
from textual.widgets import Input, Select

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.layouts import Layout
from etcd_registry_tui.registry.layouts.registrar import DEFAULT_TTL
from etcd_registry_tui.screens import RegisterScreen

NAME = "echo"
#: The walkthrough's address is a URL; the frameworks' is host:port.
ADDRESSES = {
    Layout.WALKTHROUGH: "http://127.0.0.1:40123",
    Layout.GRPC: "127.0.0.1:40123",
    Layout.KRATOS: "127.0.0.1:40123",
}

#: What etcdctl read: key, value, granted TTL of its lease.
Written = tuple[str, bytes, int]


async def open_form(pilot: Pilot[Any], app: RegistryApp, address: str) -> RegisterScreen:
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, RegisterScreen), message="no form")
    form = app.screen
    assert isinstance(form, RegisterScreen)
    form.query_one("#name", Input).value = NAME
    form.query_one("#address", Input).value = address
    return form


async def pick_layout(pilot: Pilot[Any], form: RegisterScreen, layout: Layout) -> None:
    """From the name field: Tab to the layout, open its list, go down to ``layout``, pick it,
    Tab on to the address."""
    assert form.focused is form.query_one("#name", Input)
    await pilot.press("tab")
    select = form.query_one("#layout", Select)
    assert form.focused is select
    await pilot.press("enter")
    await until(pilot, lambda: select.expanded, message="the layout list never opened")
    await pilot.press(*["down"] * list(Layout).index(layout), "enter")
    await until(pilot, lambda: form.picked_layout is layout, message="the layout was not picked")
    assert select.value is layout
    await pilot.press("tab")
    assert form.focused is form.query_one("#address", Input)


def read_back(etcdctl: Any, key: str) -> Written:
    kv = etcdctl.get_prefix(key).kvs[key.encode()]
    assert kv.lease, f"{key} has no lease"
    _remaining, granted = etcdctl.lease_timetolive(kv.lease)
    return key, kv.value, granted


def cli_writes(etcd: Any, etcdctl: Any, layout: Layout, instance_id: str) -> Written:
    """What ``register --layout`` writes for the same inputs (read while it runs)."""
    proc = subprocess.Popen(
        [*CLI, "register", "--layout", layout.value, "--name", NAME, "--id", instance_id,
         "--address", ADDRESSES[layout], "--endpoints", etcd.endpoint],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("registered "), first + (proc.stderr.read() if proc.stderr else "")
        key = first.removeprefix("registered ").split(" at ")[0]
        return read_back(etcdctl, key)
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.parametrize("layout", list(ADDRESSES), ids=lambda layout: layout.value)
async def test_the_dialog_writes_what_register_layout_writes(
    etcd: Any, etcdctl: Any, layout: Layout
) -> None:
    async with dashboard(etcd, rows=0) as (app, pilot):
        form = await open_form(pilot, app, ADDRESSES[layout])
        if layout is not Layout.WALKTHROUGH:
            await pick_layout(pilot, form, layout)
        assert form.query_one("#ttl", Input).value == str(DEFAULT_TTL[layout])
        assert form.error == ""
        await pilot.press("enter")
        own = await until(pilot, lambda: list(app.session.own.values()), message="not registered")
        (reg,) = own
        assert reg.layout is layout
        dialog = read_back(etcdctl, reg.key)
        if layout is not Layout.WALKTHROUGH:  # outside /services/: the dashboard says so
            await until(
                pilot,
                lambda: any("outside the watched prefix" in n for n in notifications(app)),
                message=lambda: f"no word of the prefix: {notifications(app)}",
            )
        await app.session.shutdown()  # unregistered: the CLI may take the same key
        assert etcdctl.get(reg.key) is None
    cli = cli_writes(etcd, etcdctl, layout, reg.instance_id)
    assert dialog == cli
    key, value, granted = dialog
    assert granted == DEFAULT_TTL[layout]
    fields = json.loads(value)
    if layout is Layout.WALKTHROUGH:
        assert key == f"/services/{NAME}/{reg.instance_id}"
        assert fields == {"Id": reg.instance_id, "Name": NAME, "Address": ADDRESSES[layout]}
    elif layout is Layout.GRPC:
        assert key == f"{NAME}/{reg.instance_id}"
        assert fields == {"Op": 0, "Addr": ADDRESSES[layout], "Metadata": None}
    else:
        assert key == f"/microservices/{NAME}/{reg.instance_id}"
        assert list(fields) == ["id", "name", "version", "metadata", "endpoints"]
        assert fields["endpoints"] == [f"grpc://{ADDRESSES[layout]}"]


async def test_a_bad_address_in_a_framework_layout_is_refused_in_the_dialog(
    etcd: Any, etcdctl: Any
) -> None:
    address = "127.0.0.1:99999"
    cli = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "register", "--layout", "kratos", "--name", NAME, "--address", address,
         "--endpoints", etcd.endpoint],
        capture_output=True, text=True, timeout=30, env=_env(),
    )  # fmt: skip
    assert cli.returncode == 2, cli.stderr
    async with dashboard(etcd, rows=0) as (app, pilot):
        form = await open_form(pilot, app, address)
        assert form.error == ""  # nothing said before a layout is picked or the form sent
        await pick_layout(pilot, form, Layout.KRATOS)
        message = "address '127.0.0.1:99999': port 99999 is not in 1-65535 (kratos needs host:port)"
        assert form.error == message  # said as soon as the layout is picked
        assert f"--address: {message}" in cli.stderr  # the CLI's own words
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.screen is form and form.error == message
        assert form.focused is form.query_one("#address", Input)
        assert app.session.own == {}
        assert not etcdctl.get_prefix("").kvs
        assert etcdctl.run("lease", "list").split()[:2] == ["found", "0"]
        # Fixed, the same form registers.
        form.query_one("#address", Input).value = "127.0.0.1:40123"
        await pilot.press("enter")
        await until(pilot, lambda: app.session.own, message="the fixed address was not registered")
        assert not isinstance(app.screen, RegisterScreen)
