"""The status line says which layouts the registry holds and where, from what etcd holds:
etcdctl writes a walkthrough and a Kratos instance under two prefixes, then deletes one."""

from __future__ import annotations

from typing import Any

from test_app_actions import SIZE, text_of, until
from test_layouts_etcd import KRATOS, WALKTHROUGH

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.widgets.status_bar import StatusBar


async def test_the_status_line_names_the_layouts_found_and_where(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    for key, value in (WALKTHROUGH, KRATOS):
        etcdctl.put(key, value, lease=lease)
    config = ConnectionConfig(
        endpoints=(etcd.endpoint,), prefix="/services/", more_prefixes=("/microservices/",)
    )
    app = RegistryApp(config)
    async with app.run_test(size=SIZE) as pilot:
        try:
            bar = app.query_one(StatusBar)
            await until(pilot, lambda: app.session.status.state is ConnState.LIVE)
            await until(
                pilot,
                lambda: "kratos 1 in /microservices/ · services 1 in /services/" in text_of(bar),
                message=lambda: f"status line: {text_of(bar)!r}",
            )
            # Narrow, the places go and the layouts stay.
            await pilot.resize_terminal(85, SIZE[1])
            await until(
                pilot,
                lambda: "kratos 1 · services 1" in text_of(bar),
                message=lambda: f"narrow status line: {text_of(bar)!r}",
            )
            await pilot.resize_terminal(*SIZE)
            etcdctl.run("del", KRATOS[0])
            # Only the walkthrough's layout left: nothing worth a word.
            await until(
                pilot,
                lambda: "1 instance" in text_of(bar) and "kratos" not in text_of(bar),
                message=lambda: f"status line after the delete: {text_of(bar)!r}",
            )
            assert "services 1" not in text_of(bar)
        finally:
            await app.session.shutdown()
