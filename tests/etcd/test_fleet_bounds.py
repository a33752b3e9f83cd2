"""The demo fleet stays small however long it runs (a real etcd, checked with etcdctl)."""

from __future__ import annotations

from support.helpers import eventually

from etcd_registry_tui.demo.fleet import Fleet
from etcd_registry_tui.registry.etcd.config import ConnectionConfig


async def test_crashed_instances_are_forgotten_once_etcd_has_expired_them(etcd, etcdctl):
    # TTL 2 s (etcd's least): crashed instances expire within seconds.
    config = ConnectionConfig(endpoints=(etcd.endpoint,))
    fleet = Fleet(config, services=1, max_instances=4, seed=7, ttls=(2,), elections=False)
    await fleet.start()
    try:
        crashed: list[str] = []
        for _ in range(60):
            step = await fleet.churn_once()
            if step.startswith("crash "):
                crashed.append(step.removeprefix("crash "))
            if len(crashed) == 3:
                break
        assert len(crashed) == 3, "the fleet did not crash anything in 60 steps"
        assert set(crashed) <= set(fleet.gone)  # remembered: stop() must remove them

        def expired() -> bool:
            return all(etcdctl.get(key) is None for key in crashed)

        await eventually(expired, timeout=30, interval=0.2, message="etcd did not expire them")

        async def forgotten() -> bool:
            await fleet.churn_once()  # a step also forgets what etcd has expired
            return not set(crashed) & set(fleet.gone)

        await eventually(forgotten, timeout=30, interval=0.5, message=lambda: str(fleet.gone))
    finally:
        await fleet.stop()
    assert etcdctl.get_prefix("/services/").kvs == {}, "stop() still removes every key"
