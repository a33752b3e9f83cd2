"""Issue 13: the first snapshot is shown page by page, on real etcd, checked with etcdctl.

Pages are read at one revision, applied and reported as they arrive (``loading``
batches, status ``loading N / total``), and the watch starts after that revision: a
change made while pages are still loading is shown exactly once, after the page that
held the key's old value. A prefix over the memory budget is not loaded: the status says
so and suggests a narrower prefix.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.etcdctl import Etcdctl
from support.helpers import assert_matches_etcdctl, connection, eventually, running_watcher

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.model import ChangeKind
from etcd_registry_tui.registry.watcher import RegistryWatcher

PREFIX = "/services/"


async def fill(conn: EtcdConnection, count: int) -> list[bytes]:
    keys = [f"{PREFIX}S{n % 30:02d}/i-{n:05d}".encode() for n in range(count)]
    await asyncio.gather(
        *(
            conn.put(k, json.dumps({"Id": k.decode(), "Address": f"http://h{n}"}).encode())
            for n, k in enumerate(keys)
        )
    )
    return sorted(keys)


async def test_pages_are_shown_as_they_come_and_changes_meanwhile_once(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with connection(etcd.endpoint) as conn:
        keys = await fill(conn, 2_500)
        later_key, early_key = keys[-1], keys[0]  # in the last page / the first page
        new_key = f"{PREFIX}S00/i-new".encode()
        original = conn.iter_prefix
        batches_at_first_page: list[int] = []

        async def paused_after_first_page(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            first = True
            async for page in original(*args, **kwargs):
                yield page
                if first:  # writes while the rest of the snapshot is still to come
                    first = False
                    batches_at_first_page.append(len(run_batches))
                    etcdctl.put(later_key.decode(), '{"Id": "updated"}')
                    etcdctl.put(new_key.decode(), '{"Id": "new"}')
                    etcdctl.run("del", early_key.decode())

        conn.iter_prefix = paused_after_first_page  # type: ignore[method-assign]
        run_batches: list[Any] = []
        async with running_watcher(conn, on_batch_list=run_batches) as run:
            await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
            pages = [b for b in run.batches if b.loading]
            # The first page is small and reported before the rest was read.
            assert len(pages) >= 2 and 0 < len(pages[0].changes) <= 1_000
            assert batches_at_first_page == [1]
            loading = [s for s in run.statuses if s.state is ConnState.LOADING and s.total]
            assert loading and loading[0].loaded == len(pages[0].changes)
            assert loading[0].total == 2_500
            assert "loading 1,000 / 2,500" in loading[0].describe()
            # Every key of the snapshot came once, as a CREATE, in a page.
            created = Counter(c.key for b in pages for c in b.changes)
            assert set(created) == set(keys) and max(created.values()) == 1
            assert all(c.kind is ChangeKind.CREATE for b in pages for c in b.changes)
            # Changes made meanwhile: each shown once, by the watch, after the pages.
            watched = [c for b in run.batches if not b.snapshot for c in b.changes]
            await eventually(lambda: len(watched) >= 3 or _refresh(watched, run), timeout=10)
            by_key = Counter((c.key, c.kind) for c in watched)
            assert by_key == {
                (later_key, ChangeKind.UPDATE): 1,
                (new_key, ChangeKind.CREATE): 1,
                (early_key, ChangeKind.DELETE): 1,
            }
            assert run.watcher.snapshots_loaded == 1


def _refresh(watched: list[Any], run: Any) -> bool:
    watched[:] = [c for b in run.batches if not b.snapshot for c in b.changes]
    return len(watched) >= 3


async def test_a_prefix_over_the_memory_budget_is_not_loaded(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with connection(etcd.endpoint) as conn:
        await fill(conn, 300)
        statuses: list[Any] = []
        batches: list[Any] = []
        watcher = RegistryWatcher(conn, batches.append, statuses.append, memory_budget_mb=0.05)
        task = asyncio.create_task(watcher.run())
        try:
            await eventually(
                lambda: any(s.state is ConnState.TOO_LARGE for s in statuses), timeout=10
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        status = next(s for s in statuses if s.state is ConnState.TOO_LARGE)
        assert status.error is not None
        assert "300 keys under /services/" in status.error
        assert "--prefix /services/S00/" in status.error  # a narrower prefix to try
        assert "--max-memory" in status.error
        assert not batches and len(watcher.state) == 0  # nothing was held


@pytest.mark.parametrize("budget", [None, 10_000.0])
async def test_within_the_budget_everything_loads(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, budget: float | None
) -> None:
    async with connection(etcd.endpoint) as conn:
        await fill(conn, 300)
        async with running_watcher(conn, memory_budget_mb=budget) as run:
            await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
