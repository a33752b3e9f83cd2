"""Benchmark the registry data layer (no UI) against a private etcd on loopback.

Figures, each printed on one line with its target and "ok" or "over":

1. snapshot: 10,000 instances in 100 services with 200-byte values; wall time of
   ``EtcdConnection.get_prefix`` + ``RegistryState.load`` against
   ``etcdctl get --prefix /services/ -w json`` for the same keys (median of several
   runs; target: ours <= 1.5x etcdctl);
2. latency: put -> change delivered to the RegistryWatcher's ``on_batch`` consumer, p50
   and p99 over 500 puts, against a bare ``aetcd.Client.watch_prefix`` seeing the same
   puts (same keys and values, run one after the other so neither steals the loop from
   the other; target: within 2 ms);
3. lease tracker: 5,000 keys on 5,000 leases (TTL 60-120 s, a tenth of them renewed by
   a background keep-alive every TTL/3 like ServiceRegistration does), the LeaseTracker
   running ~20 s: its average LeaseTimeToLive calls per second (target <= 200) and the
   largest |tracker remaining - etcd TimeToLive| over a sample of leases asked directly
   (target <= 1 s; shown separately for leases nobody renews and for renewed ones);
4. renewed leases: 1,000 leases of TTL 15 s renewed every 2 s by their owner (one
   keep-alive stream of a plain aetcd client, tests/support/renewals.py), the LeaseTracker with
   its default cap following them for 60 s (four TTLs), every shown countdown sampled
   four times a second: the lowest countdown shown against the lease's true remaining
   time at that moment (a hard lower bound from the renewal schedule), and the share of
   leases ever shown under 5 s while their true remaining time was above it (target 0 %);
5. memory: a RegistryState holding the 10,000 instances (tracemalloc, and the RSS
   growth via psutil; target < 40 MB).

``--quick`` runs a smaller version (fewer puts, 1,000 leases for 5 s, 500 renewed leases
for 16 s, about one TTL) in about a minute. ``--only renewed`` runs figure 4 alone. The
script exits 0 after printing its figures (1 only when it could not run).

Usage: ``python bench/registry_bench.py [--quick] [--only renewed]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import aetcd  # noqa: E402
import psutil  # noqa: E402

from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402
from etcd_registry_tui.registry.etcd.errors import RegistryError  # noqa: E402
from etcd_registry_tui.registry.events import ChangeBatch  # noqa: E402
from etcd_registry_tui.registry.leases import LeaseTracker  # noqa: E402
from etcd_registry_tui.registry.model import RegistryState  # noqa: E402
from etcd_registry_tui.registry.watcher import RegistryWatcher  # noqa: E402
from tests.support.renewals import Renewer  # noqa: E402

T = TypeVar("T")

SERVICES = 100
VALUE_SIZE = 200
SNAPSHOT_PREFIX = "/services/"
LATENCY_PREFIX = "/latency/"
LEASE_PREFIX = "/leases/"

TARGET_SNAPSHOT_RATIO = 1.5
TARGET_LATENCY_DIFF_MS = 2.0
TARGET_CALLS_PER_S = 200.0
TARGET_DEVIATION_S = 1.0
TARGET_MEMORY_MB = 40.0
CRITICAL_S = 5.0  # the dashboard shows a countdown under this in red


def verdict(ok: bool) -> str:
    return "ok" if ok else "over"


def figure(text: str) -> None:
    print(text, flush=True)


def note(text: str) -> None:
    print(f"  {text}", flush=True)


def value_for(service: str, instance: str) -> bytes:
    """A realistic PascalCase registration value padded to exactly VALUE_SIZE bytes."""
    doc = {"Id": instance, "Name": service, "Address": f"http://127.1.{len(instance)}.7:5000"}
    raw = json.dumps(doc)
    pad = VALUE_SIZE - len(raw) - len(', "Meta": ""')
    doc["Meta"] = "x" * max(0, pad)
    out = json.dumps(doc).encode()
    return out[:VALUE_SIZE] if len(out) > VALUE_SIZE else out


async def bounded_gather(
    items: list[T], fn: Callable[[T], Awaitable[Any]], concurrency: int = 64
) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: T) -> Any:
        async with sem:
            return await fn(item)

    return await asyncio.gather(*(one(i) for i in items))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# --------------------------------------------------------------------------------------------
# 1. snapshot load


async def fill_instances(conn: EtcdConnection, count: int) -> None:
    keys = [(f"Svc{n % SERVICES:03d}", f"inst-{n:06d}") for n in range(count)]

    async def put(item: tuple[str, str]) -> None:
        service, instance = item
        key = f"{SNAPSHOT_PREFIX}{service}/{instance}".encode()
        await conn.put(key, value_for(service, instance))

    await bounded_gather(keys, put)


async def bench_snapshot(
    conn: EtcdConnection, etcd: EmbeddedEtcd, count: int, runs: int
) -> RegistryState:
    ours: list[float] = []
    ranges: list[float] = []
    loads: list[float] = []
    state = RegistryState(SNAPSHOT_PREFIX)
    for _ in range(runs + 1):  # the first run warms up
        gc.collect()
        t0 = time.perf_counter()
        kvs, revision = await conn.get_prefix(SNAPSHOT_PREFIX.encode())
        t1 = time.perf_counter()
        state = RegistryState(SNAPSHOT_PREFIX)
        state.load(kvs, revision)
        t2 = time.perf_counter()
        ours.append(t2 - t0)
        ranges.append(t1 - t0)
        loads.append(t2 - t1)
        del kvs
    ours, ranges, loads = ours[1:], ranges[1:], loads[1:]
    if len(state) != count:
        raise RuntimeError(f"snapshot holds {len(state)} instances, expected {count}")

    etcdctl = shutil.which("etcdctl") or "/usr/bin/etcdctl"
    theirs: list[float] = []
    if os.access(etcdctl, os.X_OK):
        cmd = [etcdctl, "--endpoints", etcd.endpoint, "get", "--prefix", SNAPSHOT_PREFIX]
        cmd += ["-w", "json"]
        env = {**os.environ, "ETCDCTL_API": "3"}
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            proc = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, env=env, timeout=120, check=True
            )
            theirs.append(time.perf_counter() - t0)
            if proc.stdout.count(b'"key"') != count:
                raise RuntimeError("etcdctl did not return every key")
        theirs = theirs[1:]
    mine = statistics.median(ours)
    if theirs:
        other = statistics.median(theirs)
        ratio = mine / other
        figure(
            f"snapshot load: {count:,} instances in {SERVICES} services ({VALUE_SIZE}-byte "
            f"values): get_prefix+load {mine * 1000:.1f} ms vs etcdctl get --prefix -w json "
            f"{other * 1000:.1f} ms, ratio {ratio:.2f}x "
            f"(target <= {TARGET_SNAPSHOT_RATIO}x) {verdict(ratio <= TARGET_SNAPSHOT_RATIO)}"
        )
    else:
        figure(f"snapshot load: get_prefix+load {mine * 1000:.1f} ms (no etcdctl to compare)")
    note(
        f"median of {runs}: range {statistics.median(ranges) * 1000:.1f} ms + "
        f"RegistryState.load {statistics.median(loads) * 1000:.1f} ms"
    )
    return state


# --------------------------------------------------------------------------------------------
# 2. put -> delivered


class Arrivals:
    """Arrival time of each expected key, with an event to wait on."""

    def __init__(self) -> None:
        self.expect: bytes | None = None
        self.at: float | None = None
        self.event = asyncio.Event()

    def arm(self, key: bytes) -> None:
        self.expect, self.at = key, None
        self.event.clear()

    def seen(self, key: bytes) -> None:
        if key == self.expect and self.at is None:
            self.at = time.perf_counter()
            self.event.set()


async def timed_puts(
    writer: EtcdConnection, arrivals: Arrivals, keys: list[bytes], value: bytes
) -> list[float]:
    latencies: list[float] = []
    for key in keys:
        arrivals.arm(key)
        t0 = time.perf_counter()
        await writer.put(key, value)
        await asyncio.wait_for(arrivals.event.wait(), 10)
        assert arrivals.at is not None
        latencies.append(arrivals.at - t0)
    return latencies


async def bench_latency(writer: EtcdConnection, etcd: EmbeddedEtcd, puts: int) -> None:
    value = value_for("Latency", "x")
    keys = [f"{LATENCY_PREFIX}Lat{n % 10}/i-{n:05d}".encode() for n in range(puts)]
    warm = [f"{LATENCY_PREFIX}Warm/w-{n}".encode() for n in range(20)]

    # our watcher, through its on_batch consumer
    arrivals = Arrivals()

    def on_batch(batch: ChangeBatch) -> None:
        for change in batch.changes:
            arrivals.seen(change.key)

    wconn = EtcdConnection(ConnectionConfig(endpoints=(etcd.endpoint,), prefix=LATENCY_PREFIX))
    await wconn.connect()
    watcher = RegistryWatcher(wconn, on_batch=on_batch)
    task = asyncio.create_task(watcher.run())
    try:
        await watcher.wait_live(15)
        await timed_puts(writer, arrivals, warm, value)
        ours = await timed_puts(writer, arrivals, keys, value)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await wconn.close()

    # a bare aetcd watch on the same prefix, the same puts (as updates of the same keys)
    host, port = etcd.endpoint.rsplit(":", 1)
    client = aetcd.Client(host=host, port=int(port))
    bare = Arrivals()
    watch = await client.watch_prefix(LATENCY_PREFIX.encode())

    async def consume() -> None:
        async for event in watch:
            bare.seen(event.kv.key)

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.2)  # the watch is created asynchronously
        await timed_puts(writer, bare, warm, value)
        theirs = await timed_puts(writer, bare, keys, value)
    finally:
        with contextlib.suppress(Exception):
            await watch.cancel()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer
        await client.close()

    def ms(v: float) -> str:
        return f"{v * 1000:.2f} ms"

    p50, p99 = percentile(ours, 50), percentile(ours, 99)
    b50, b99 = percentile(theirs, 50), percentile(theirs, 99)
    d50, d99 = p50 - b50, p99 - b99
    ok = d50 * 1000 <= TARGET_LATENCY_DIFF_MS and d99 * 1000 <= TARGET_LATENCY_DIFF_MS
    figure(
        f"put latency: put -> on_batch over {puts} puts: registry watcher p50 {ms(p50)} "
        f"p99 {ms(p99)}; bare aetcd watch_prefix p50 {ms(b50)} p99 {ms(b99)}; "
        f"difference p50 {d50 * 1000:+.2f} ms p99 {d99 * 1000:+.2f} ms "
        f"(target within {TARGET_LATENCY_DIFF_MS:.0f} ms) {verdict(ok)}"
    )


# --------------------------------------------------------------------------------------------
# 3. lease tracker


async def keep_some_alive(conn: EtcdConnection, leases: dict[int, int], stop: asyncio.Event) -> int:
    """Renew each lease every TTL/3 (random phase) until ``stop``; returns renewals."""
    stream = conn.keepalive_stream()
    now = time.monotonic()
    due = {lease: now + random.uniform(0, ttl / 3) for lease, ttl in leases.items()}
    renewals = 0
    try:
        while not stop.is_set():
            now = time.monotonic()
            for lease, when in due.items():
                if when <= now:
                    with contextlib.suppress(RegistryError):
                        await stream.keepalive(lease)
                        renewals += 1
                    due[lease] = now + leases[lease] / 3
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
    finally:
        stream.close()
    return renewals


async def bench_leases(
    etcd: EmbeddedEtcd, count: int, seconds: float, sample: int, kept_share: float = 0.1
) -> None:
    cfg = ConnectionConfig(endpoints=(etcd.endpoint,), prefix=LEASE_PREFIX)
    setup, tconn, qconn, kconn = (EtcdConnection(cfg) for _ in range(4))
    for c in (setup, tconn, qconn, kconn):
        await c.connect()
    try:
        ttls = [random.randint(60, 120) for _ in range(count)]
        t0 = time.perf_counter()
        granted = await bounded_gather(ttls, setup.grant)
        lease_ids = [lease for lease, _ in granted]

        async def put(item: tuple[int, int]) -> None:
            n, lease = item
            await setup.put(f"{LEASE_PREFIX}L{n % 50:02d}/i-{n:05d}".encode(), b"{}", lease)

        await bounded_gather(list(enumerate(lease_ids)), put)
        setup_s = time.perf_counter() - t0
        kept = {lease: ttl for lease, ttl in zip(lease_ids, ttls, strict=True)}
        kept = dict(random.sample(sorted(kept.items()), int(count * kept_share)))

        stop = asyncio.Event()
        keeper = asyncio.create_task(keep_some_alive(kconn, kept, stop))
        tracker = LeaseTracker(tconn)
        runner = asyncio.create_task(tracker.run())
        tracker.track(lease_ids)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        calls = tracker.calls
        rate = calls / elapsed

        # sample leases the tracker has a TTL for, and ask etcd directly
        known = [lease for lease in lease_ids if tracker.remaining(lease) is not None]
        picked = random.sample(known, min(sample, len(known)))
        plain: list[float] = []
        renewed: list[float] = []
        outside: list[float] = []  # distance from etcd's whole-second window, not renewed
        for lease in picked:
            before = tracker.remaining(lease)
            ttl, _, _ = await qconn.time_to_live(lease)
            after = tracker.remaining(lease)
            assert before is not None and after is not None
            remaining = (before + after) / 2
            deviation = abs(remaining - ttl)
            (renewed if lease in kept else plain).append(deviation)
            if lease not in kept:  # etcd truncates: the real remaining is in [ttl, ttl + 1)
                outside.append(max(0.0, ttl - remaining, remaining - (ttl + 1)))
        stop.set()
        renewals = await keeper
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

        worst = max(plain + renewed) if picked else float("nan")
        worst_plain = max(plain) if plain else float("nan")
        worst_renewed = max(renewed) if renewed else float("nan")
        figure(
            f"lease tracker: {count:,} leases over {elapsed:.1f} s: {rate:.1f} LeaseTimeToLive "
            f"calls/s (target <= {TARGET_CALLS_PER_S:.0f}) {verdict(rate <= TARGET_CALLS_PER_S)}"
        )
        figure(
            f"lease deviation: max |tracker remaining - etcd TimeToLive| over {len(picked)} "
            f"sampled leases {worst:.2f} s (target <= {TARGET_DEVIATION_S:.0f} s) "
            f"{verdict(worst <= TARGET_DEVIATION_S)}; not renewed: max {worst_plain:.2f} s "
            f"(n={len(plain)}), renewed by others: max {worst_renewed:.2f} s (n={len(renewed)})"
        )
        if outside:
            note(
                f"not renewed, measured against etcd's whole-second window [ttl, ttl+1): "
                f"max {max(outside):.2f} s outside it (a single truncated TimeToLive "
                f"reading leaves +-0.5 s; {count:,} leases at {TARGET_CALLS_PER_S:.0f}/s "
                f"means one re-sync per lease every ~{count / TARGET_CALLS_PER_S:.0f} s)"
            )
        note(
            f"setup {setup_s:.1f} s (grant + put, 64 at a time); {len(known):,} of {count:,} "
            f"leases had a TTL after {elapsed:.0f} s; {tracker.errors} tracker errors; "
            f"{len(kept)} leases renewed {renewals} times by the background keep-alive"
        )
        with contextlib.suppress(RegistryError):
            await setup.delete(LEASE_PREFIX.encode(), prefix=True)
    finally:
        for c in (setup, tconn, qconn, kconn):
            await c.close()


# --------------------------------------------------------------------------------------------
# 4. renewed leases: is a lease its owner keeps alive ever shown low?


async def bench_renewed(
    etcd: EmbeddedEtcd, count: int, ttl: int, period: float, seconds: float
) -> None:
    renewer = Renewer(etcd.endpoint, period)
    tconn = EtcdConnection(ConnectionConfig(endpoints=(etcd.endpoint,), prefix=LEASE_PREFIX))
    await tconn.connect()
    try:
        lease_ids = await renewer.grant(count, ttl)
        await renewer.start()
        starts: list[float] = []
        real = tconn.time_to_live

        async def time_to_live(lease_id: int, keys: bool = False) -> tuple[int, int, list[bytes]]:
            starts.append(time.monotonic())
            return await real(lease_id, keys)

        tconn.time_to_live = time_to_live  # type: ignore[method-assign]
        tracker = LeaseTracker(tconn)
        runner = asyncio.create_task(tracker.run())
        began = time.monotonic()
        tracker.track(lease_ids)
        shown_low: set[int] = set()  # shown under 5 s at least once
        falsely_low: set[int] = set()  # ... while the true remaining time was above 6 s
        expired: set[int] = set()  # shown as expired at least once
        lowest = (float("inf"), 0.0)  # (shown, true remaining at least)
        samples = unknown = 0
        at_20s: tuple[int, int] | None = None  # (shown under 5 s, shown expired) after 20 s
        end = began + seconds
        while time.monotonic() < end:
            if at_20s is None and time.monotonic() - began >= 20:
                shown_now = [tracker.remaining(lease) for lease in lease_ids]
                at_20s = (
                    sum(1 for x in shown_now if x is not None and x < CRITICAL_S),
                    sum(1 for x in shown_now if x is not None and x <= 0),
                )
            for lease in lease_ids:
                shown = tracker.remaining(lease)
                if shown is None:
                    unknown += 1
                    continue
                bound = renewer.floor(lease, time.monotonic())
                samples += 1
                if shown < CRITICAL_S:
                    shown_low.add(lease)
                    if shown < min(CRITICAL_S, bound - 1.0):  # etcd counts whole seconds
                        falsely_low.add(lease)
                if shown <= 0:
                    expired.add(lease)
                lowest = min(lowest, (shown, bound))
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - began
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        share = 100 * len(falsely_low) / count
        figure(
            f"renewed leases: {count:,} leases of TTL {ttl} s renewed every {period:g} s by "
            f"their owner, tracked {elapsed:.0f} s ({elapsed / ttl:.1f} TTLs): lowest countdown "
            f"shown {lowest[0]:.1f} s while the true remaining was >= {lowest[1]:.1f} s; "
            f"{share:.1f} % of leases ever shown under {CRITICAL_S:.0f} s while they had more "
            f"(target 0 %) {verdict(not falsely_low)}"
        )
        busiest, first = 0, 0
        for last, at in enumerate(starts):
            while starts[first] <= at - 1.0:
                first += 1
            busiest = max(busiest, last - first + 1)
        note(
            f"{samples:,} samples (+{unknown:,} before a lease's first reading); "
            f"{len(shown_low)} leases ever shown under {CRITICAL_S:.0f} s, {len(expired)} as "
            f"expired; tracker {len(starts) / elapsed:.0f} LeaseTimeToLive calls/s on average, "
            f"{busiest} in the busiest second (cap {tracker.max_rate:.0f}, N/R "
            f"{count / tracker.max_rate:.1f} s vs TTL/3 {ttl / 3:.1f} s); owner renewed "
            f"{renewer.renewals:,} times, lost {len(renewer.lost)}; {tracker.errors} errors"
        )
        if at_20s is not None:
            note(f"after 20 s: {at_20s[0]} leases shown under 5 s, {at_20s[1]} as expired")
    finally:
        await renewer.close()
        await tconn.close()


# --------------------------------------------------------------------------------------------
# 5. memory


async def bench_memory(conn: EtcdConnection, count: int) -> None:
    kvs, revision = await conn.get_prefix(SNAPSHOT_PREFIX.encode())
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    tracemalloc.start()
    state = RegistryState(SNAPSHOT_PREFIX)
    state.load(kvs, revision)
    del kvs  # only the state remains (the protobufs were allocated before tracing)
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = process.memory_info().rss
    mb = traced / 1024 / 1024
    rss_mb = (rss_after - rss_before) / 1024 / 1024
    figure(
        f"memory: RegistryState with {len(state):,} instances: {mb:.1f} MB (tracemalloc), "
        f"RSS growth {rss_mb:.1f} MB (target < {TARGET_MEMORY_MB:.0f} MB) "
        f"{verdict(mb < TARGET_MEMORY_MB and rss_mb < TARGET_MEMORY_MB)}"
    )
    note(f"{traced / len(state):.0f} bytes per instance ({VALUE_SIZE}-byte values)")
    if len(state) != count:
        raise RuntimeError(f"state holds {len(state)} instances, expected {count}")


# --------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    random.seed(args.seed)
    etcd = EmbeddedEtcd()
    await etcd.astart()
    try:
        print(
            f"registry bench{' (quick)' if args.quick else ''}: etcd at {etcd.endpoint}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
            flush=True,
        )
        renewed = (etcd, args.renewed, args.renewed_ttl, args.renewed_period, args.renewed_seconds)
        if args.only == "renewed":
            await bench_renewed(*renewed)
            return
        conn = EtcdConnection(ConnectionConfig(endpoints=(etcd.endpoint,)))
        await conn.connect()
        try:
            t0 = time.perf_counter()
            await fill_instances(conn, args.instances)
            note(f"wrote {args.instances:,} instances in {time.perf_counter() - t0:.1f} s")
            await bench_snapshot(conn, etcd, args.instances, args.runs)
            await bench_latency(conn, etcd, args.puts)
            await bench_leases(etcd, args.leases, args.tracker_seconds, args.sample)
            await bench_renewed(*renewed)
            await bench_memory(conn, args.instances)
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(etcd.cleanup)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, fast run")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--puts", type=int, help="puts for the latency figure (500)")
    parser.add_argument("--leases", type=int, help="leases for the tracker figure (5,000)")
    parser.add_argument("--tracker-seconds", type=float, help="tracker run time (20 s)")
    parser.add_argument("--sample", type=int, default=300, help="leases asked directly")
    parser.add_argument("--runs", type=int, help="snapshot repetitions (5)")
    parser.add_argument("--renewed", type=int, help="leases renewed by their owner (1,000)")
    parser.add_argument("--renewed-ttl", type=int, default=15, help="their TTL (15 s)")
    parser.add_argument("--renewed-period", type=float, default=2.0, help="renewal period (2 s)")
    parser.add_argument("--renewed-seconds", type=float, help="how long to follow them (60 s)")
    parser.add_argument("--only", choices=["renewed"], help="run one figure alone")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    quick = args.quick
    args.puts = args.puts or (200 if quick else 500)
    args.leases = args.leases or (1_000 if quick else 5_000)
    args.tracker_seconds = args.tracker_seconds or (5.0 if quick else 20.0)
    args.runs = args.runs or (3 if quick else 5)
    args.renewed = args.renewed or (500 if quick else 1_000)
    args.renewed_seconds = args.renewed_seconds or (16.0 if quick else 60.0)
    started = time.perf_counter()
    try:
        asyncio.run(run(args))
    except Exception as exc:  # noqa: BLE001 - report and fail the run
        print(f"registry bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
