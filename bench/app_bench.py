"""Benchmark the whole dashboard (RegistryApp, headless) on a real private etcd.

``bench/ui_tree_bench.py`` measures the tree widget alone on fake data; this one runs the
real app (session, watcher, lease tracker, every widget) against an EmbeddedEtcd filled
with a fleet of instances, each on its own lease, and measures:

* first full frame after the snapshot: from the snapshot batch reaching the app (the
  session's ``on_batch``) to the end of the first screen refresh after the flush that
  applied it (at 10,000 instances, and at 100,000 unless ``--quick``);
* a put or delete shown on screen: from the watch delivering it (``on_batch``) to the
  end of the first screen refresh after the flush that applied it, median and p99;
* the 1 Hz countdown tick: CPU time of ``_tick()`` plus the render that follows
  (``await pilot.pause()``), and idle CPU over a window with the tick running;
* bursts of deletes: 5,000 keys on 50 leases (100 keys each, TTL 3 s) expiring together,
  and 5,000 keys of one service removed by one delete-prefix; time from the first delete
  batch to the view showing none of them, and the longest event-loop stall meanwhile
  (a task sleeping 10 ms in a loop records its overshoot);
* resident memory of the app process before loading and with the fleet shown;
* sustained load (its own etcd): a separate writer process puts 2,000 values a second
  to 1,000 keys for 10 s while the app runs; how far the revision on the status line
  trails etcd's (in revisions, and in seconds from etcd's commit to the frame showing
  it, max and p95), how many events a second the app takes in, its CPU, and how long it
  needs to catch up once the writer stops.

The app runs in a fresh child process (``--child``), so its RSS and CPU figures are not
polluted by the setup done here (starting etcd, writing the fleet). Every figure is
printed with its target and "ok" or "over"; the script exits 0 either way (it exits 1
only when the benchmark itself could not run).

``--quick`` runs 2,000 instances in 20 services (1,000-key bursts, shorter windows) in
well under a minute; ``--sizes 10000x100,...`` picks other sizes (over 20,000 instances
only the first frame and memory are measured). To profile the app process, set
``APP_BENCH_CHILD_WRAP``, e.g. ``"py-spy record -f raw -o app.txt --"``.

``--load-only`` runs only the sustained-load scenario (``--quick``: 4 s of it);
``--rate`` and ``--seconds`` change its load.

Usage: ``python bench/app_bench.py [--quick] [--sizes 10000x100,100000x1000] [--load-only]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from aetcd import rpc  # noqa: E402

from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402

PREFIX = "/services/"
SIZE = (120, 40)
ZONES = ("eu-west-1a", "eu-west-1b", "eu-central-1a")
FLEET_TTL = 3600  # fleet leases outlive the run: no keep-alives needed
BURST_TTL = 3  # etcd's minimum TTL with default election settings
BURST_LEASES = 50
TXN_OPS = 100  # etcd allows 128 operations per transaction by default
CONCURRENCY = 64


# --------------------------------------------------------------------------------------
# Writing to etcd (used by the parent for the fleet and by the child for single changes)


def service_name(index: int) -> str:
    return f"Service{index:04d}"


def instance_value(service: str, instance_id: str, n: int) -> bytes:
    return json.dumps(
        {
            "Id": instance_id,
            "Name": service,
            "Address": f"http://127.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}:8080",
            "Zone": ZONES[n % len(ZONES)],
            "Version": f"1.{n % 10}.0",
        }
    ).encode()


def fleet_items(instances: int, services: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """Deterministic ``(key, value)`` pairs: ``instances`` spread over ``services``."""
    rng = random.Random(seed)
    items = []
    for n in range(instances):
        service = service_name(n % services)
        instance_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        items.append(
            (f"{PREFIX}{service}/{instance_id}".encode(), instance_value(service, instance_id, n))
        )
    return items


async def grant_many(conn: EtcdConnection, count: int, ttl: int) -> list[int]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one() -> int:
        async with semaphore:
            lease_id, _ = await conn.grant(ttl)
            return lease_id

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def put_many(conn: EtcdConnection, items: list[tuple[bytes, bytes, int]]) -> None:
    """Put ``(key, value, lease)`` items in transactions of TXN_OPS puts, 64 at a time."""
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def txn(chunk: list[tuple[bytes, bytes, int]]) -> None:
        ops = [
            rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v, lease=lease))
            for k, v, lease in chunk
        ]
        async with semaphore:
            await conn.txn([], ops, timeout=60)

    chunks = [items[i : i + TXN_OPS] for i in range(0, len(items), TXN_OPS)]
    await asyncio.gather(*(txn(chunk) for chunk in chunks))


async def load_fleet(endpoint: str, instances: int, services: int) -> float:
    """Write the fleet, one lease per instance; returns the seconds it took."""
    started = time.perf_counter()
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        leases = await grant_many(conn, instances, FLEET_TTL)
        items = fleet_items(instances, services)
        await put_many(conn, [(k, v, lease) for (k, v), lease in zip(items, leases, strict=True)])
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------
# The child: the app itself, with probes


@dataclass(slots=True)
class Record:
    """One thing on its way to the screen."""

    batch_at: float
    flush_end: float | None = None
    frame_end: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Probe:
    """Wraps the session's on_batch, the app's _apply_pending and the screen refresh.

    A record moves on at the end of the first flush that *started* after its batch
    arrived (that flush applied it) and is done at the end of the first screen refresh
    after that flush (the frame that shows it).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.snapshot: Record | None = None
        self.loading_at: float | None = None
        self.watch: dict[bytes, Record] = {}
        self.burst_keys: set[bytes] = set()
        self.burst_left = 0
        self.burst_first: float | None = None
        self.burst_batches = 0
        self.burst_done: Record | None = None
        self.flushes: list[float] = []  # flush durations
        self._to_flush: list[Record] = []
        self._to_frame: list[Record] = []
        self.frames = 0

        session = app.session
        on_batch, on_status = session.on_batch, session.on_status
        flush = app._apply_pending

        def batch_hook(batch: Any, entries: Any) -> None:
            now = time.perf_counter()
            if batch.snapshot:
                if self.snapshot is None:
                    self.snapshot = Record(now)
                    self._to_flush.append(self.snapshot)
            else:
                for change in batch.changes:
                    record = self.watch.pop(change.key, None)
                    if record is not None:
                        record.batch_at = now
                        self._to_flush.append(record)
                if self.burst_left:
                    hits = sum(
                        1
                        for c in batch.changes
                        if c.kind.name == "DELETE" and c.key in self.burst_keys
                    )
                    if hits:
                        self.burst_batches += 1
                        if self.burst_first is None:
                            self.burst_first = now
                        self.burst_left -= hits
                        if self.burst_left <= 0:
                            self.burst_done = Record(now)
                            self._to_flush.append(self.burst_done)
            on_batch(batch, entries)

        def status_hook(status: Any) -> None:
            if self.loading_at is None and status.state.value == "loading":
                self.loading_at = time.perf_counter()
            on_status(status)

        def flush_hook() -> None:
            waiting, self._to_flush = self._to_flush, []
            started = time.perf_counter()
            flush()
            ended = time.perf_counter()
            self.flushes.append(ended - started)
            for record in waiting:
                record.flush_end = ended
            self._to_frame.extend(waiting)

        session.on_batch = batch_hook
        session.on_status = status_hook
        app._apply_pending = flush_hook

    def hook_screen(self) -> None:
        screen = self.app.screen
        refresh = screen._compositor_refresh

        def refresh_hook() -> None:
            refresh()
            ended = time.perf_counter()
            self.frames += 1
            waiting, self._to_frame = self._to_frame, []
            for record in waiting:
                record.frame_end = ended
                record.done.set()

        screen._compositor_refresh = refresh_hook

    def expect(self, key: bytes) -> Record:
        record = self.watch[key] = Record(0.0)
        return record

    def expect_burst(self, keys: set[bytes]) -> None:
        self.burst_keys = keys
        self.burst_left = len(keys)
        self.burst_first = None
        self.burst_batches = 0
        self.burst_done = None


class LagMonitor:
    """Sleeps 10 ms in a loop and records by how much each sleep overshot."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.worst = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, time.perf_counter() - started - self.period)
            self.samples += 1

    def start(self) -> None:
        self.worst, self.samples = 0.0, 0
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        return self.worst


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


async def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class GcWatch:
    """The longest garbage collection pause (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.worst = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            gen = info["generation"]
            self.worst[gen] = max(self.worst[gen], time.perf_counter() - self._started)
            self.count[gen] += 1


async def child_main(opts: dict[str, Any]) -> dict[str, Any]:
    gc.collect()
    gcw = GcWatch()
    result: dict[str, Any] = {"rss_before_mb": rss_mb()}

    from etcd_registry_tui.app import RegistryApp

    endpoint = opts["endpoint"]
    instances = opts["instances"]
    config = ConnectionConfig(endpoints=(endpoint,), prefix=PREFIX)
    app = RegistryApp(config)
    probe = Probe(app)
    async with app.run_test(size=SIZE) as pilot:
        probe.hook_screen()
        await wait_for(
            lambda: probe.snapshot is not None and probe.snapshot.done.is_set(),
            opts["load_timeout"],
            "the first frame after the snapshot",
        )
        snap = probe.snapshot
        assert snap is not None and snap.frame_end is not None and snap.flush_end is not None
        tree = app.registry_tree
        # The first frame comes with the snapshot's first page; the rest follows in pages.
        await wait_for(
            lambda: len(app.session.state) == instances and tree.row_count > instances,
            opts["load_timeout"],
            "every page of the snapshot on screen",
        )
        result["first_frame_ms"] = (snap.frame_end - snap.batch_at) * 1000
        result["first_flush_ms"] = (snap.flush_end - snap.batch_at) * 1000
        if probe.loading_at is not None:
            result["snapshot_load_ms"] = (snap.batch_at - probe.loading_at) * 1000

        await asyncio.sleep(1.0)
        gc.collect()
        result["rss_mb"] = rss_mb()
        if opts["mode"] == "frame":
            return result

        if opts["mode"] != "latency":  # the elections comparison needs no idle figures
            # -- idle CPU with the countdown ticking ------------------------------------
            import psutil

            proc = psutil.Process()
            tracker = app.session.tracker

            async def idle_window(seconds: float) -> tuple[float, float, float, float]:
                """(CPU % by process_time, CPU % by psutil, seconds, TimeToLive calls/s)."""
                proc.cpu_percent(None)
                cpu0, wall0, calls0 = time.process_time(), time.perf_counter(), tracker.calls
                await asyncio.sleep(seconds)
                wall = time.perf_counter() - wall0
                return (
                    (time.process_time() - cpu0) / wall * 100,
                    proc.cpu_percent(None),
                    wall,
                    (tracker.calls - calls0) / wall,
                )

            # While the tracker reads every new lease once (200 a second at most) ...
            first = await idle_window(opts["idle_seconds"])
            result["first_sync_cpu_pct"], _, _, result["first_sync_rps"] = first
            # ... and once it has: the steady state a monitor spends its day in.
            sync_started = time.perf_counter()
            sync_deadline = (
                time.monotonic() + opts["load_timeout"] + instances / tracker.max_rate * 2
            )
            while any(i.deadline is None for i in tracker.leases.values()):
                if time.monotonic() > sync_deadline:
                    raise TimeoutError("the tracker did not read every lease in time")
                await asyncio.sleep(0.5)
            result["first_sync_s"] = time.perf_counter() - sync_started + opts["idle_seconds"]
            steady = await idle_window(opts["idle_seconds"])
            (
                result["idle_cpu_pct"],
                result["idle_cpu_psutil_pct"],
                result["idle_seconds"],
                result["lease_rps"],
            ) = steady

            # -- one tick plus the render that follows ----------------------------------
            with_pause: list[float] = []
            direct: list[float] = []
            for _ in range(opts["ticks"]):
                await asyncio.sleep(0.05)
                cpu = time.process_time()
                app._tick()
                await pilot.pause()
                with_pause.append(time.process_time() - cpu)
                await asyncio.sleep(0.05)
                cpu = time.process_time()
                app._tick()
                frames = probe.frames
                await wait_for(lambda frames=frames: probe.frames > frames, 5, "a frame")
                direct.append(time.process_time() - cpu)
            result["tick_cpu_ms"] = statistics.median(with_pause) * 1000
            result["tick_cpu_max_ms"] = max(with_pause) * 1000
            result["tick_direct_ms"] = statistics.median(direct) * 1000

        # -- single puts and deletes --------------------------------------------------
        writer = EtcdConnection(config)
        await writer.connect()
        rng = random.Random(11)
        services = opts["services"]
        visible = tree.highlighted_service
        lease, _ = await writer.grant(FLEET_TTL)
        added: list[bytes] = []
        latencies: list[float] = []
        flush_lat: list[float] = []
        for i in range(opts["singles"]):
            if i % 2 == 0 or not added:
                service = (
                    visible if i % 4 == 0 and visible else service_name(rng.randrange(services))
                )
                instance_id = f"bench-{i:05d}"
                key = f"{PREFIX}{service}/{instance_id}".encode()
                record = probe.expect(key)
                await writer.put(key, instance_value(service, instance_id, i), lease)
                added.append(key)
            else:
                key = added.pop(rng.randrange(len(added)))
                record = probe.expect(key)
                await writer.delete(key)
            await asyncio.wait_for(record.done.wait(), 10)
            assert record.frame_end is not None and record.flush_end is not None
            latencies.append(record.frame_end - record.batch_at)
            flush_lat.append(record.flush_end - record.batch_at)
            await asyncio.sleep(rng.uniform(0.02, 0.04))
        result["single_median_ms"] = statistics.median(latencies) * 1000
        result["single_p99_ms"] = percentile(latencies, 0.99) * 1000
        result["single_max_ms"] = max(latencies) * 1000
        worst = latencies.index(max(latencies))
        result["single_max_flush_ms"] = flush_lat[worst] * 1000
        result["single_flush_median_ms"] = statistics.median(flush_lat) * 1000
        result["singles"] = len(latencies)
        for key in added:
            await writer.delete(key)
        if opts["mode"] == "latency":
            if opts.get("elections"):
                await leader_changes(app, pilot, probe, writer, opts, result)
            await writer.close()
            return result

        # -- burst of expiries --------------------------------------------------------
        burst = opts["burst"]
        monitor = LagMonitor()
        per_lease = burst // BURST_LEASES
        burst_leases = await grant_many(writer, BURST_LEASES, BURST_TTL)
        granted_at = time.perf_counter()
        items = []
        for n in range(burst):
            service = service_name(n % services)
            instance_id = f"expiring-{n:05d}"
            items.append(
                (
                    f"{PREFIX}{service}/{instance_id}".encode(),
                    instance_value(service, instance_id, n),
                    burst_leases[n // per_lease],
                )
            )
        target = len(app.session.state) + len(items)
        await put_many(writer, items)
        put_done = time.perf_counter() - granted_at
        probe.expect_burst({k for k, _, _ in items})
        await wait_for(lambda: len(app.session.state) >= target, 10, "the burst keys to show")
        monitor.start()
        await wait_for(
            lambda: probe.burst_done is not None and probe.burst_done.done.is_set(),
            30,
            "the expired keys to go",
        )
        await asyncio.sleep(0.3)
        stall = await monitor.stop()
        done = probe.burst_done
        assert done is not None and done.frame_end is not None and probe.burst_first is not None
        assert not any(k in tree.model.instances for k, _, _ in items)
        result["expiry_ms"] = (done.frame_end - probe.burst_first) * 1000
        result["expiry_stall_ms"] = stall * 1000
        result["expiry_batches"] = probe.burst_batches
        result["expiry_put_s"] = put_done

        # -- burst of deletes: one delete-prefix --------------------------------------
        service = "BurstDeleteService"
        items = [
            (
                f"{PREFIX}{service}/gone-{n:05d}".encode(),
                instance_value(service, f"gone-{n:05d}", n),
                lease,
            )
            for n in range(burst)
        ]
        target = len(app.session.state) + len(items)
        await put_many(writer, items)
        await wait_for(lambda: len(app.session.state) >= target, 10, "the burst keys to show")
        await pilot.pause()
        probe.expect_burst({k for k, _, _ in items})
        monitor.start()
        await writer.delete(f"{PREFIX}{service}/".encode(), prefix=True)
        await wait_for(
            lambda: probe.burst_done is not None and probe.burst_done.done.is_set(),
            30,
            "the deleted keys to go",
        )
        await asyncio.sleep(0.3)
        stall = await monitor.stop()
        done = probe.burst_done
        assert done is not None and done.frame_end is not None and probe.burst_first is not None
        result["prefix_ms"] = (done.frame_end - probe.burst_first) * 1000
        result["prefix_stall_ms"] = stall * 1000
        result["prefix_batches"] = probe.burst_batches

        await writer.revoke(lease)
        await writer.close()
        result["flush_max_ms"] = max(probe.flushes) * 1000
        result["gc_worst_ms"] = [w * 1000 for w in gcw.worst]
        result["gc_count"] = gcw.count
    return result


# --------------------------------------------------------------------------------------
# Sustained load: a writer process of its own, the app in the child


LOAD_KEYS = 1_000
LOAD_SERVICES = 20
LOAD_WORKERS = 48


async def leader_changes(
    app: Any, pilot: Any, probe: Probe, writer: EtcdConnection, opts: dict[str, Any], result: dict
) -> None:
    """Revoke the leader of one election after another with the elections view shown;
    each leader change is timed from the watch event reaching the app (the elections
    session's on_change) to the end of the screen refresh that shows it."""
    elections = app.elections
    await wait_for(
        lambda: len(elections.state.elections) == opts["elections"],
        opts["load_timeout"],
        "every election found",
    )
    app.action_toggle_elections()
    await pilot.pause()
    pending: list[Record] = []
    on_change = elections.on_change

    def change_hook(changes: Any) -> None:
        record = Record(time.perf_counter())
        record.flush_end = record.batch_at  # no flush: the view is updated in the callback
        on_change(changes)
        if any(c.old is not None and c.new is not None for c in changes):
            pending.append(record)
            probe._to_frame.append(record)

    elections.on_change = change_hook
    latencies: list[float] = []
    names = sorted(elections.state.elections)[: opts["leader_changes"]]
    for name in names:
        leader = elections.state.leader_of(name)
        assert leader is not None
        pending.clear()
        await writer.revoke(leader.lease)
        await wait_for(lambda: bool(pending) and pending[0].done.is_set(), 10, "a leader change")
        record = pending[0]
        assert record.frame_end is not None
        latencies.append(record.frame_end - record.batch_at)
        await asyncio.sleep(0.03)
    result["leader_median_ms"] = statistics.median(latencies) * 1000
    result["leader_p99_ms"] = percentile(latencies, 0.99) * 1000
    result["leader_changes"] = len(latencies)


async def write_elections(endpoint: str, elections: int, candidates: int) -> None:
    """``elections`` elections of ``candidates`` each, laid out as etcdctl elect writes them
    (``/elections/eNNN/<lease %x>``, each on a lease of its own)."""
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        leases = await grant_many(conn, elections * candidates, FLEET_TTL)
        items = [
            (
                f"/elections/e{n // candidates:03d}/{lease:x}".encode(),
                f"candidate-{n % candidates}".encode(),
                lease,
            )
            for n, lease in enumerate(leases)
        ]
        for start in range(0, len(items), candidates):  # one by one: queue order is put order
            await put_many(conn, items[start : start + candidates])


def bench_elections(instances: int, services: int, elections: int, quick: bool) -> None:
    """The registry's first frame and put→screen without and with elections in etcd, and
    how fast a leader change reaches the screen."""
    candidates = 5
    etcd = EmbeddedEtcd(name="bench-elections", log_level="warn")
    etcd.start()
    try:
        asyncio.run(load_fleet(etcd.endpoint, instances, services))
        print(
            f"\n== elections: {instances:,} instances in {services:,} services, then "
            f"{elections} elections of {candidates} candidates ==",
            flush=True,
        )
        opts = {
            "endpoint": etcd.endpoint,
            "instances": instances,
            "services": services,
            "mode": "latency",
            "load_timeout": 120.0,
            "singles": 50 if quick else 200,
            "leader_changes": min(elections, 20 if quick else 50),
        }
        runs = 1 if quick else 3
        without = [run_child(opts, timeout=600) for _ in range(runs)]
        asyncio.run(write_elections(etcd.endpoint, elections, candidates))
        with_e = [run_child({**opts, "elections": elections}, timeout=600) for _ in range(runs)]
    finally:
        etcd.cleanup()

    def best(rs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    for key, label in (("first_frame_ms", "first frame"), ("single_median_ms", "put→screen")):
        a, b = best(without, key), best(with_e, key)
        figure(f"elections: {label} without", a, "ms", None, f"median of {runs} run(s)")
        figure(
            f"elections: {label} with {elections} elections",
            b,
            "ms",
            round(a * 1.10, 1),
            f"{(b / a - 1) * 100:+.1f} % (target: within 10 %)",
        )
    figure(
        "elections: leader change to screen, median",
        best(with_e, "leader_median_ms"),
        "ms",
        50.0,
        f"{with_e[0]['leader_changes']} changes per run;"
        f" p99 {best(with_e, 'leader_p99_ms'):.1f} ms",
    )


def load_items() -> list[tuple[bytes, str, str]]:
    """The ``(key, service, instance id)`` of the keys the load writer keeps rewriting."""
    items = []
    for n in range(LOAD_KEYS):
        service = f"Load{n % LOAD_SERVICES:02d}"
        instance_id = f"load-{n:05d}"
        items.append((f"{PREFIX}{service}/{instance_id}".encode(), service, instance_id))
    return items


async def write_load_fleet(endpoint: str) -> None:
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        leases = await grant_many(conn, LOAD_SERVICES, FLEET_TTL)
        await put_many(
            conn,
            [
                (key, instance_value(service, iid, n), leases[n % LOAD_SERVICES])
                for n, (key, service, iid) in enumerate(load_items())
            ],
        )


def save_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data))


def load_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


async def writer_main(opts: dict[str, Any]) -> dict[str, Any]:
    """Put ``rate`` values a second, round-robin over the load keys, for ``seconds``.

    Writes ``(time.monotonic() when etcd answered, revision)`` for every put to
    ``opts["out"]`` (monotonic time is the same clock in every process on one machine).
    """
    rate, seconds = opts["rate"], opts["seconds"]
    items = load_items()
    total = int(rate * seconds)
    log: list[tuple[float, int]] = []
    async with EtcdConnection(ConnectionConfig(endpoints=(opts["endpoint"],))) as conn:
        # Keep each key's lease: a put without one would detach it.
        kvs, _ = await conn.get_prefix(PREFIX.encode())
        lease_of = {kv.key: kv.lease for kv in kvs}
        counter = iter(range(total))
        started = time.monotonic()

        async def worker() -> None:
            for i in counter:
                due = started + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                key, service, iid = items[i % len(items)]
                value = instance_value(service, iid, LOAD_KEYS + i)
                revision = await conn.put(key, value, lease_of.get(key, 0))
                log.append((time.monotonic(), revision))

        await asyncio.gather(*(worker() for _ in range(LOAD_WORKERS)))
        ended = time.monotonic()
    save_json(opts["out"], log)
    return {"puts": len(log), "seconds": ended - started, "cpu_s": time.process_time()}


async def run_writer(opts: dict[str, Any], shown: list[tuple[float, int]]) -> dict[str, Any]:
    """Run the writer process; then wait until ``shown`` (``(monotonic time, revision)``
    as the consumer shows them) reaches the writer's last revision; return the figures."""
    cmd = [sys.executable, str(SCRIPT), "--writer", json.dumps(opts)]
    cpu0, wall0 = time.process_time(), time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT
    )
    stdout, stderr = await proc.communicate()
    writer_done = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"the writer failed: {stderr.decode()[-3000:]}")
    writer = json.loads(stdout.decode().split("RESULT ", 1)[1])
    load_cpu = time.process_time() - cpu0
    log = sorted((rev, t) for t, rev in load_json(opts["out"]))
    last_rev = log[-1][0]
    await wait_for(
        lambda: bool(shown) and shown[-1][1] >= last_rev,
        opts["catchup_timeout"],
        f"revision {last_rev} to be shown",
    )
    caught_up = time.monotonic()
    total_cpu = time.process_time() - cpu0

    # Seconds behind: from etcd's answer for a revision to the first frame showing it.
    behind_s: list[float] = []
    index = 0
    for rev, t in log:
        while index < len(shown) and shown[index][1] < rev:
            index += 1
        shown_at = shown[index][0] if index < len(shown) else caught_up
        behind_s.append(max(0.0, shown_at - t))
    # Revisions behind: at each put, etcd's revision minus the one shown then.
    behind_rev: list[float] = []
    index = 0
    current = shown[0][1] if shown else 0
    for t, rev in sorted((t, rev) for rev, t in log):
        while index < len(shown) and shown[index][0] <= t:
            current = shown[index][1]
            index += 1
        behind_rev.append(float(max(0, rev - current)))
    window = writer_done - wall0
    if os.environ.get("APP_BENCH_LAG_TRACE"):
        step = max(1, len(behind_s) // 20)
        trace = [f"{log[i][1] - wall0:.1f}s:{behind_s[i]:.2f}" for i in range(0, len(log), step)]
        print("lag trace", " ".join(trace), file=sys.stderr)
    return {
        "puts": writer["puts"],
        "write_seconds": writer["seconds"],
        "put_rate": writer["puts"] / writer["seconds"],
        "lag_max_s": max(behind_s),
        "lag_p95_s": percentile(behind_s, 0.95),
        "lag_max_rev": max(behind_rev),
        "lag_p95_rev": percentile(behind_rev, 0.95),
        "catchup_s": caught_up - writer_done,
        "cpu_pct": load_cpu / window * 100,
        "cpu_s": total_cpu,
        "cpu_ms_per_1000": total_cpu / writer["puts"] * 1e6,
        "window": window,
        "wall0": wall0,
        "writer_done": writer_done,
    }


async def load_child_main(opts: dict[str, Any]) -> dict[str, Any]:
    """The app under the writer's load: what the status line showed, frame by frame."""
    from etcd_registry_tui.app import RegistryApp
    from etcd_registry_tui.widgets.status_bar import StatusBar

    config = ConnectionConfig(endpoints=(opts["endpoint"],), prefix=PREFIX)
    app = RegistryApp(config)
    frames: list[tuple[float, int]] = []  # (monotonic time at the end of a frame, shown rev)
    received = [0]
    on_batch = app.session.on_batch

    def batch_hook(batch: Any, entries: Any) -> None:
        if not batch.snapshot:
            received[0] += len(batch.changes)
        on_batch(batch, entries)

    app.session.on_batch = batch_hook
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: len(app.session.state) >= LOAD_KEYS, 60, "the load keys")
        await pilot.pause()
        status = app.query_one(StatusBar)
        screen = app.screen
        refresh = screen._compositor_refresh

        frame_cpu: list[float] = []
        flush_cpu: list[float] = []

        def refresh_hook() -> None:
            started = time.perf_counter()
            refresh()
            now = time.monotonic()
            frame_cpu.append(time.perf_counter() - started)
            frames.append((now, status.revision))

        screen._compositor_refresh = refresh_hook
        flush = app._apply_pending

        def flush_hook() -> None:
            started = time.perf_counter()
            flush()
            flush_cpu.append(time.perf_counter() - started)

        app._apply_pending = flush_hook
        # Park the cursor in the middle of the keys, where they change.
        app.registry_tree.select_key(load_items()[LOAD_KEYS // 2][0])
        await pilot.pause()
        received0 = received[0]
        del frame_cpu[:], flush_cpu[:]
        result = await run_writer(opts, frames)
        result["frame_ms"] = statistics.median(frame_cpu) * 1000
        result["flush_ms"] = statistics.median(flush_cpu) * 1000
        result["flushes"] = len(flush_cpu)
        result["frame_max_ms"] = max(frame_cpu) * 1000
        result["flush_max_ms"] = max(flush_cpu) * 1000
        await pilot.pause()
        where = app.registry_tree.model.instances
        held = app.session.state.instances
        result["tree_matches"] = len(where) == len(held) and all(
            where.get(key) is inst for key, inst in held.items()
        )
        result["tree_rows"] = app.registry_tree.row_count
    wall0, done = result["wall0"], result["writer_done"]
    result["events_per_s"] = (received[0] - received0) / result["window"]
    result["frames_per_s"] = sum(1 for t, _ in frames if wall0 <= t <= done) / result["window"]
    return result


async def session_child_main(opts: dict[str, Any]) -> dict[str, Any]:
    """The same load on a bare RegistrySession (no UI): the floor the app is compared to."""
    from etcd_registry_tui.registry.session import RegistrySession

    config = ConnectionConfig(endpoints=(opts["endpoint"],), prefix=PREFIX)
    applied: list[tuple[float, int]] = []
    received = [0]
    session = RegistrySession(config)

    def on_batch(batch: Any, _entries: Any) -> None:
        received[0] += len(batch.changes)
        applied.append((time.monotonic(), session.state.revision))

    session.on_batch = on_batch
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: len(session.state) >= LOAD_KEYS, 60, "the load keys")
        received0 = received[0]
        result = await run_writer(opts, applied)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.shutdown()
    result["events_per_s"] = (received[0] - received0) / result["window"]
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# --------------------------------------------------------------------------------------
# The parent: etcd, the fleet, the child, the figures


VERDICTS: list[str] = []


def figure(label: str, value: float, unit: str, target: float | None, note: str = "") -> None:
    """One figure line: label, value, target and ok/over (or "info" without a target)."""
    shown = f"{value:9.1f} {unit}"
    if target is None:
        verdict = "info"
        goal = ""
    else:
        verdict = "ok" if value <= target else "over"
        VERDICTS.append(verdict)
        goal = f"target <= {target:g} {unit}"
    line = f"{label:<44} {shown:<13} {goal:<22} {verdict}"
    print(line + (f"   {note}" if note else ""), flush=True)


def run_child(opts: dict[str, Any], timeout: float) -> dict[str, Any]:
    wrap = os.environ.get("APP_BENCH_CHILD_WRAP", "").split()  # e.g. "py-spy record -o x.svg --"
    cmd = [*wrap, sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(opts)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if os.environ.get("APP_BENCH_LAG_TRACE"):
        print(proc.stderr[-2000:])
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"the app process failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
        f"\n{proc.stderr[-5000:]}"
    )


def bench_size(instances: int, services: int, mode: str, quick: bool) -> None:
    etcd = EmbeddedEtcd(name="bench", log_level="warn")
    etcd.start()
    try:
        load_time = asyncio.run(load_fleet(etcd.endpoint, instances, services))
        print(
            f"\n== {instances:,} instances in {services:,} services, one lease each "
            f"(written in {load_time:.1f} s) ==",
            flush=True,
        )
        opts = {
            "endpoint": etcd.endpoint,
            "instances": instances,
            "services": services,
            "mode": mode,
            "load_timeout": 120.0,
            "idle_seconds": 3.0 if quick else 10.0,
            "ticks": 5 if quick else 20,
            "singles": 50 if quick else 200,
            "burst": 1_000 if quick else 5_000,
        }
        r = run_child(opts, timeout=600)
    finally:
        etcd.cleanup()

    size = f"[{instances:,}]"
    frame_target = 150.0 if instances <= 10_000 else 1000.0
    figure(f"first frame after snapshot {size}", r["first_frame_ms"], "ms", frame_target)
    figure(f"  of which applying it (flush) {size}", r["first_flush_ms"], "ms", None)
    if "snapshot_load_ms" in r:
        figure(f"  snapshot Range + parse, before it {size}", r["snapshot_load_ms"], "ms", None)
    figure(f"RSS before loading {size}", r["rss_before_mb"], "MB", None)
    rss_target = 120.0 if instances <= 10_000 else None
    figure(f"RSS with the fleet shown {size}", r["rss_mb"], "MB", rss_target)
    if mode == "frame":
        return
    figure(
        "put/delete to screen, median",
        r["single_median_ms"],
        "ms",
        30.0,
        f"{r['singles']} changes; to the end of the flush {r['single_flush_median_ms']:.1f} ms",
    )
    figure(
        "put/delete to screen, p99",
        r["single_p99_ms"],
        "ms",
        80.0,
        f"max {r['single_max_ms']:.1f} ms ({r['single_max_flush_ms']:.1f} ms to its flush)",
    )
    figure(
        "tick + render CPU (tick, pilot.pause)",
        r["tick_cpu_ms"],
        "ms",
        15.0,
        f"median of {opts['ticks']}; max {r['tick_cpu_max_ms']:.1f} ms; "
        f"tick to the next frame alone {r['tick_direct_ms']:.1f} ms",
    )
    figure(
        "CPU while leases are first read",
        r["first_sync_cpu_pct"],
        "%",
        None,
        f"{r['first_sync_rps']:.0f} TimeToLive RPCs/s; every lease read once after "
        f"{r['first_sync_s']:.0f} s",
    )
    figure(
        "idle CPU with the tick running",
        r["idle_cpu_pct"],
        "%",
        3.0,
        f"over {r['idle_seconds']:.0f} s (psutil {r['idle_cpu_psutil_pct']:.1f} %); "
        f"lease tracker {r['lease_rps']:.0f} TimeToLive RPCs/s meanwhile",
    )
    figure(
        "expiry burst: first delete to view",
        r["expiry_ms"],
        "ms",
        None,
        f"{opts['burst']:,} keys on {BURST_LEASES} leases (TTL {BURST_TTL} s) expiring; "
        f"{r['expiry_batches']} watch batches",
    )
    figure("expiry burst: longest UI stall", r["expiry_stall_ms"], "ms", 50.0)
    figure(
        "delete-prefix burst: first delete to view",
        r["prefix_ms"],
        "ms",
        None,
        f"{opts['burst']:,} keys of one service, one DeleteRange; "
        f"{r['prefix_batches']} watch batch(es)",
    )
    figure("delete-prefix burst: longest UI stall", r["prefix_stall_ms"], "ms", 50.0)
    figure("longest flush (applying a batch)", r["flush_max_ms"], "ms", None)
    figure(
        "longest garbage collection pause",
        max(r["gc_worst_ms"]),
        "ms",
        None,
        "by generation: "
        + ", ".join(
            f"{w:.1f} ms ({n}x)" for w, n in zip(r["gc_worst_ms"], r["gc_count"], strict=True)
        ),
    )


def bench_load(rate: float, seconds: float) -> None:
    """The sustained-load scenario on an etcd of its own: a bare session, then the app."""
    import tempfile

    etcd = EmbeddedEtcd(name="bench-load", log_level="warn")
    etcd.start()
    try:
        asyncio.run(write_load_fleet(etcd.endpoint))
        print(
            f"\n== sustained load: {rate:,.0f} puts/s to {LOAD_KEYS:,} keys for {seconds:g} s,"
            f" by a writer process of its own ==",
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            opts = {
                "endpoint": etcd.endpoint,
                "rate": rate,
                "seconds": seconds,
                "out": str(Path(tmp) / "writer.json"),
                "catchup_timeout": 120.0,
            }
            bare = run_child({**opts, "mode": "load-session"}, timeout=300)
            r = run_child({**opts, "mode": "load"}, timeout=300)
    finally:
        etcd.cleanup()
    if not r["tree_matches"] or r["tree_rows"] != LOAD_KEYS + LOAD_SERVICES:
        raise RuntimeError(f"the tree does not show the state after the load: {r}")
    figure(
        "load: puts/s the writer achieved",
        r["put_rate"],
        "/s",
        None,
        f"{r['puts']:,} puts in {r['write_seconds']:.1f} s "
        f"({bare['put_rate']:.0f}/s in the bare-session run)",
    )
    figure(
        "load: events/s taken in by the app",
        r["events_per_s"],
        "/s",
        None,
        f"while the writer ran; bare session {bare['events_per_s']:.0f}/s",
    )
    figure(
        "load: frames/s on screen",
        r["frames_per_s"],
        "/s",
        None,
        f"a frame takes {r['frame_ms']:.1f} ms (median, max {r['frame_max_ms']:.0f}); "
        f"{r['flushes']} flushes of {r['flush_ms']:.1f} ms (median, max "
        f"{r['flush_max_ms']:.0f}) took in the changes",
    )
    figure(
        "load: app CPU while the writer ran",
        r["cpu_pct"],
        "%",
        None,
        f"bare session {bare['cpu_pct']:.0f} %",
    )
    figure(
        "load: app CPU per 1,000 events",
        r["cpu_ms_per_1000"],
        "ms",
        None,
        f"until caught up; bare session {bare['cpu_ms_per_1000']:.0f} ms",
    )
    figure(
        "load: status line behind etcd, max",
        r["lag_max_s"],
        "s",
        1.0,
        f"bare session: its state {bare['lag_max_s']:.2f} s behind at most",
    )
    figure(
        "load: status line behind etcd, p95",
        r["lag_p95_s"],
        "s",
        None,
        f"bare session {bare['lag_p95_s']:.2f} s",
    )
    figure(
        "load: revisions behind, max",
        r["lag_max_rev"],
        "rev",
        None,
        f"bare session {bare['lag_max_rev']:.0f}",
    )
    figure(
        "load: revisions behind, p95",
        r["lag_p95_rev"],
        "rev",
        None,
        f"bare session {bare['lag_p95_rev']:.0f}",
    )
    figure(
        "load: caught up after the writer stopped",
        r["catchup_s"],
        "s",
        None,
        f"bare session {bare['catchup_s']:.2f} s",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 instances, < 60 s")
    parser.add_argument(
        "--sizes",
        help="comma-separated INSTANCESxSERVICES (default 10000x100,100000x1000); "
        "sizes over 20,000 only measure the first frame and memory",
    )
    parser.add_argument("--load-only", action="store_true", help="only the sustained-load scenario")
    parser.add_argument(
        "--elections-only", action="store_true", help="only the elections comparison"
    )
    parser.add_argument("--rate", type=float, default=2_000.0, help="puts/s of the load")
    parser.add_argument("--seconds", type=float, help="seconds of load (10; --quick 4)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        result = asyncio.run(writer_main(json.loads(args.writer)))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.child:
        opts = json.loads(args.child)
        main_fn = {"load": load_child_main, "load-session": session_child_main}.get(
            opts["mode"], child_main
        )
        result = asyncio.run(main_fn(opts))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    print(
        f"RegistryApp benchmark on a private etcd, python {sys.version.split()[0]}, "
        f"terminal {SIZE[0]}x{SIZE[1]}, {os.cpu_count()} CPUs",
        flush=True,
    )
    started = time.perf_counter()
    try:
        if args.sizes:
            sizes = [
                tuple(int(n) for n in part.lower().split("x")) for part in args.sizes.split(",")
            ]
        elif args.quick:
            sizes = [(2_000, 20)]
        else:
            sizes = [(10_000, 100), (100_000, 1_000)]
        if args.elections_only:
            if args.quick:
                bench_elections(2_000, 20, 20, quick=True)
            else:
                bench_elections(10_000, 100, 100, quick=False)
        else:
            if not args.load_only:
                for instances, services in sizes:
                    mode = "full" if instances <= 20_000 else "frame"
                    bench_size(instances, services, mode, quick=args.quick)
            seconds = args.seconds or (4.0 if args.quick else 10.0)
            bench_load(args.rate, seconds)
    except Exception as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    over = VERDICTS.count("over")
    print(
        f"\n{len(VERDICTS) - over} of {len(VERDICTS)} figures within target, {over} over "
        f"(done in {time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
