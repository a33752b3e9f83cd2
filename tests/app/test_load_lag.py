"""The dashboard under sustained writes (issue 9, item 11), against a real etcd on loopback.

A writer process of its own (``bench/app_bench.py --writer``, with its own connection, not
the app's event loop) puts values to 1,000 keys as fast as 2,000 a second while the app runs
headless. Afterwards the app must catch up with etcd's revision, and what the tree shows must
equal ``etcdctl get --prefix``. How far behind the screen trails is measured by the benchmark
(``bench/app_bench.py --load-only``), not asserted here: the bound below is generous.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from support.helpers import etcdctl_view
from test_app_actions import PREFIX, dashboard, status_text, tree_lines, until

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.model import KeyValue
from etcd_registry_tui.registry.session import RegistrySession
from etcd_registry_tui.widgets.event_log import EventLog, summarise_bursts
from etcd_registry_tui.widgets.status_bar import StatusBar

ROOT = Path(__file__).resolve().parents[2]
KEYS = 1_000
SERVICES = 20
RATE = 2_000
SECONDS = 3.0


def fleet() -> list[tuple[bytes, bytes]]:
    """The keys the writer rewrites (the same names as the benchmark's)."""
    items = []
    for n in range(KEYS):
        service, instance_id = f"Load{n % SERVICES:02d}", f"load-{n:05d}"
        value = json.dumps({"Id": instance_id, "Name": service, "Address": f"http://127.0.0.{n}"})
        items.append((f"{PREFIX}{service}/{instance_id}".encode(), value.encode()))
    return items


async def write_fleet(endpoint: str) -> None:
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        lease, _ = await conn.grant(3600)
        semaphore = asyncio.Semaphore(32)

        async def put(key: bytes, value: bytes) -> None:
            async with semaphore:
                await conn.put(key, value, lease)

        await asyncio.gather(*(put(k, v) for k, v in fleet()))


async def test_the_app_catches_up_after_sustained_writes(
    etcd: Any, etcdctl: Any, tmp_path: Path
) -> None:
    await write_fleet(etcd.endpoint)

    async with dashboard(etcd, rows=KEYS + SERVICES) as (app, pilot):
        flushes = [0]
        apply_pending = app._apply_pending

        def counting_flush() -> None:
            flushes[0] += 1
            apply_pending()

        app._apply_pending = counting_flush  # type: ignore[method-assign]
        received = [0]
        on_batch = app.session.on_batch

        def counting_batch(batch: Any, entries: Any) -> None:
            received[0] += len(batch.changes)
            on_batch(batch, entries)

        app.session.on_batch = counting_batch
        log = app.query_one(EventLog)
        logged_before = log.total
        # The cursor on a key the writer keeps changing: the detail pane follows it.
        hot = fleet()[KEYS // 2][0]
        app.registry_tree.select_key(hot)

        opts = {
            "endpoint": etcd.endpoint,
            "rate": RATE,
            "seconds": SECONDS,
            "out": str(tmp_path / "writer.json"),
        }
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "app_bench.py"),
            "--writer",
            json.dumps(opts),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        out, err = await asyncio.wait_for(writer.communicate(), 120)
        assert writer.returncode == 0, err.decode()
        puts = json.loads(out.decode().split("RESULT ", 1)[1])["puts"]
        assert puts == RATE * SECONDS

        expected, revision = etcdctl.get_prefix(PREFIX)
        assert len(expected) == KEYS
        await until(
            pilot,
            lambda: app.query_one(StatusBar).revision == revision,
            timeout=90,
            message=lambda: f"status line {status_text(app)!r}, etcd at revision {revision}",
        )
        await pilot.pause()
        assert f"rev {revision:,}" in status_text(app)
        assert f"{SERVICES:,} services · {KEYS:,} instances" in status_text(app)

        # What the tree holds and draws equals what etcd holds.
        view = etcdctl_view(etcdctl, PREFIX)
        shown = {
            key: (inst.value, inst.lease, inst.mod_revision)
            for key, inst in app.registry_tree.model.instances.items()
        }
        assert shown == view
        assert app.session.state.as_dict() == view
        assert app.registry_tree.row_count == KEYS + SERVICES
        lines = tree_lines(app)
        for n, (key, _) in enumerate(fleet()[:50]):  # the first rows, as drawn
            inst = app.registry_tree.model.instances[key]
            # the id may be drawn short (load-…007): its end tells it apart from the rest
            tail = inst.instance_id[-3:]
            assert any(tail in line and inst.address in line for line in lines), (key, n, lines[:4])
        detail = app.query_one("DetailPane")
        assert detail.instance is app.session.state.get(hot)  # the detail pane is current too

        # Every change reached the app; the screen took them in far fewer flushes.
        assert received[0] >= puts
        assert flushes[0] < puts / 5, (flushes[0], puts)
        # The event log counted every event, and told the bursts as bursts; its scroll
        # range follows its lines (at most a second late).
        assert log.total - logged_before == received[0]
        await until(pilot, lambda: log.virtual_size.height == len(log.entries))
        summaries = [
            e for e in log.entries if e.kind is LogKind.UPDATE and "updates in" in e.detail
        ]
        assert summaries, list(log.entries)[:5]
        for entry in summaries:
            count = int(entry.detail.split(" updates", 1)[0])
            keys = int(entry.key.split(" keys", 1)[0])
            assert BURST_LIMIT < count and 0 < keys <= min(count, KEYS), entry
            latest = entry.detail.rsplit("the latest ", 1)[1]
            assert f"{PREFIX}{latest}".encode() in app.session.state, entry


BURST_LIMIT = 10


def test_a_burst_of_updates_is_one_honest_line_and_other_events_stay() -> None:
    def entry(kind: LogKind, n: int) -> LogEntry:
        return LogEntry(kind, f"{PREFIX}S/k{n % 7}", f"version {n}", at=100.0 + n / 10)

    few = [entry(LogKind.UPDATE, n) for n in range(BURST_LIMIT)]
    assert summarise_bursts(few, PREFIX) == few

    burst = [entry(LogKind.UPDATE, n) for n in range(30)]
    burst[5] = entry(LogKind.DELETE, 5)
    burst[20] = entry(LogKind.EXPIRED, 20)
    burst.append(entry(LogKind.PUT, 31))
    shown = summarise_bursts(burst, PREFIX)
    assert [e.kind for e in shown] == [
        LogKind.DELETE,
        LogKind.EXPIRED,
        LogKind.UPDATE,
        LogKind.PUT,
    ]
    summary = shown[2]
    assert summary.key == "7 keys"
    assert summary.detail == "28 updates in 2.9 s, the latest S/k1"
    assert summary.at == burst[29].at


async def test_a_changed_value_redraws_only_its_own_line_when_on_screen() -> None:
    """The UI's work follows what is visible: a new value for a key off screen redraws
    nothing; one on screen redraws its line and its service's header, not the viewport."""
    state_kvs = [
        KeyValue(key, value, 10 + n, 10 + n, 1, 0) for n, (key, value) in enumerate(fleet())
    ]
    session = RegistrySession(ConnectionConfig())
    session.state.load(state_kvs, 2_000)
    app = RegistryApp(session=session, start_session=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tree = app.registry_tree
        height = tree.scrollable_content_region.height
        assert tree.row_count == KEYS + SERVICES > height
        redrawn: list[tuple[int, ...]] = []
        refresh_lines = tree.refresh_lines
        refresh = tree.refresh

        def record_lines(y: int, height: int = 1) -> None:
            redrawn.append((y, height))
            refresh_lines(y, height)

        def record_refresh(*args: Any, **kwargs: Any) -> Any:
            redrawn.append(())
            return refresh(*args, **kwargs)

        tree.refresh_lines = record_lines  # type: ignore[method-assign]
        tree.refresh = record_refresh  # type: ignore[method-assign]

        def rewrite(key: bytes, address: str, revision: int) -> None:
            service, instance_id = key.decode().removeprefix(PREFIX).split("/")
            value = json.dumps({"Id": instance_id, "Name": service, "Address": address})
            change = session.state.apply_put(KeyValue(key, value.encode(), 1, revision, 2, 0))
            assert change is not None
            tree.apply_changes([change])

        # Far below the screen: nothing on screen changes, nothing is redrawn.
        rows = [tree.model.rows[i] for i in range(tree.row_count)]
        hidden = rows[-1]
        assert not isinstance(hidden, str)
        rewrite(hidden.raw_key, "http://10.9.9.9", 3_000)
        assert redrawn == []
        assert tree.model.rows[-1].address == "http://10.9.9.9"

        # On screen: its line and its header (when that is on screen too), nothing else.
        top = round(tree.scroll_y)
        line = top + 3
        shown = rows[line]
        assert not isinstance(shown, str)
        header = tree.model.offset(shown.group)
        assert header is not None
        rewrite(shown.raw_key, "http://10.8.8.8", 3_001)
        expected = [(y, 1) for y in sorted({line, header}) if top <= y < top + height]
        assert [call for call in redrawn if call] == expected, (redrawn, top, header)
        await pilot.pause()
        assert "http://10.8.8.8" in tree.render_line(line - top).text


async def test_the_status_line_names_only_a_revision_the_tree_shows(
    etcd: Any, etcdctl: Any
) -> None:
    """The once-a-second tick refreshes the status line, but never to a revision whose
    changes still wait for their flush (the benchmark once read "rev R" on the status
    line while the tree was a flush behind it)."""
    await write_fleet(etcd.endpoint)
    async with dashboard(etcd, rows=KEYS + SERVICES) as (app, pilot):
        status = app.query_one(StatusBar)
        apply_pending = app._apply_pending
        app._apply_pending = lambda: None  # type: ignore[method-assign]  # hold the flush
        try:
            before = status.revision
            key, _ = fleet()[7]
            etcdctl.put(key, '{"Id": "load-00007", "Address": "http://127.0.0.7:1"}')
            await until(pilot, lambda: app.pending.has_change(key))
            app._tick()
            assert status.revision == before
            assert app.registry_tree.model.instances[key].address == "http://127.0.0.7"
        finally:
            app._apply_pending = apply_pending  # type: ignore[method-assign]
        app._apply_pending()
        _, revision = etcdctl.get_prefix(PREFIX)
        assert status.revision == revision
        assert app.registry_tree.model.instances[key].address == "http://127.0.0.7:1"
