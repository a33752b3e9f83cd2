"""A filter that hides every instance says so (Pilot, a real etcd)."""

from __future__ import annotations

from typing import Any

from test_app_actions import dashboard, put_instance, text_of, until


async def test_a_filter_matching_nothing_says_so_and_how_to_clear_it(etcd: Any, etcdctl: Any):
    put_instance(etcdctl, "Orders", "o1")
    async with dashboard(etcd, rows=2) as (app, pilot):
        await pilot.press("slash", *"ZZZ", "enter")
        await until(pilot, lambda: app.registry_tree.row_count == 0)
        shown = text_of(app.registry_tree)
        assert "No instance matches 'zzz'" in shown, shown
        assert "Esc" in shown and "clear" in shown, shown
        assert "yet" not in shown, shown  # there are instances: only the filter hides them

        await pilot.press("escape")
        await until(pilot, lambda: app.registry_tree.row_count == 2)
        assert "Orders" in text_of(app.registry_tree)


async def test_an_empty_registry_with_a_filter_still_says_it_is_empty(etcd: Any, etcdctl: Any):
    async with dashboard(etcd, rows=0) as (app, pilot):
        await pilot.press("slash", *"zzz", "enter")
        await until(pilot, lambda: app.registry_tree.filter_text == "zzz")
        await until(
            pilot, lambda: "No instances under /services/ yet" in text_of(app.registry_tree)
        )
