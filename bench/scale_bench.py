"""The dashboard at scale: issue 13's table, from one run, beside etcdctl.

For each size (default: 1 instance, then 10,000 in 100 services, then 100,000 in 1,000
services; values ``{"Id","Name","Address","Zone","Version"}``, one lease per
``--per-lease`` instances) a private etcd is filled and the real app is started headless
(``RegistryApp.run_test``) in a fresh child process. Measured:

* first frame after launch: from spawning the child to the end of the first screen
  refresh showing a full tree viewport (every instance when fewer fit), minus the same
  for the 1-instance registry; beside ``etcdctl get --prefix -w protobuf`` (and ``-w
  json``) of the same keys, timed in the same run (median of three);
* resident memory of the app process once everything is loaded (after a collection);
* idle CPU (process time over a window, nothing changing, the countdowns ticking),
  after the lease tracker has read every lease once (or after ``--sync-wait`` seconds);
* put → screen: a put (or delete) from the app's process to the end of the first
  screen refresh after the tree holds it, median over ``--singles`` changes.

``--quick``: 1 and 2,000 instances, short windows (the test suite runs it).
``SCALE_BENCH_PROFILE=/tmp/idle``: cProfile the idle window of each size into
``/tmp/idle.<instances>`` (the idle CPU figure then includes the profiler's own cost).
``--layouts mixed``: the fleet spread round-robin over the walkthrough and every framework
layout whose keys start with ``/`` (each written as ``registry/layouts/registrar.plan`` writes
it, path keys included), watched with ``--prefix /`` (issue 18's cost of recognising layouts).
``--sizes 1x1,10000x100,1000000x1000``: other sizes. ``--memory-budget MB`` passes
the dashboard's budget to the child (see ``--max-memory`` of the CLI).

Usage: ``python bench/scale_bench.py [--quick] [--sizes ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
for path in (str(ROOT), str(SCRIPT.parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from app_bench import (  # noqa: E402
    FLEET_TTL,
    PREFIX,
    SIZE,
    fleet_items,
    grant_many,
    instance_value,
    put_many,
    service_name,
    wait_for,
)

from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402

# --------------------------------------------------------------------------------------
# The child: the app, launched at the parent's ``launched`` (time.monotonic, system-wide)


async def child_main(opts: dict[str, Any]) -> dict[str, Any]:
    import psutil

    from etcd_registry_tui.app import RegistryApp

    instances = opts["instances"]
    proc = psutil.Process()
    kwargs: dict[str, Any] = {}
    if opts.get("memory_budget"):
        kwargs["memory_budget_mb"] = opts["memory_budget"]
    config = ConnectionConfig(
        endpoints=(opts["endpoint"],), prefix=opts.get("prefix", PREFIX), **kwargs
    )
    app = RegistryApp(
        config, **({} if opts.get("history") is None else {"history_revisions": opts["history"]})
    )
    result: dict[str, Any] = {}
    first_frame: list[float] = []
    frame_waiters: list[tuple[Any, asyncio.Event]] = []

    async with app.run_test(size=SIZE) as pilot:
        tree = app.registry_tree
        screen = app.screen
        refresh = screen._compositor_refresh
        height = tree.scrollable_content_region.height

        def refresh_hook() -> None:
            refresh()
            now = time.monotonic()
            if not first_frame and tree.row_count >= min(height, instances + 1):
                first_frame.append(now)
            if frame_waiters:
                keep = []
                for cond, event in frame_waiters:
                    if cond():
                        event.set()
                    else:
                        keep.append((cond, event))
                frame_waiters[:] = keep

        screen._compositor_refresh = refresh_hook
        await wait_for(lambda: bool(first_frame), opts["load_timeout"], "the first full frame")
        result["first_frame_s"] = first_frame[0] - opts["launched"]
        if opts.get("expect_refusal"):
            await wait_for(
                lambda: app.session.status.state.value == "too_large",
                opts["load_timeout"],
                "the refusal",
            )
            result["refusal"] = app.session.status.error
            result["rss_mb"] = proc.memory_info().rss / 2**20
            return result
        await wait_for(
            lambda: (
                len(app.session.state) >= instances and app.session.status.state.value == "live"
            ),
            opts["load_timeout"],
            "every instance loaded",
        )
        result["all_loaded_s"] = time.monotonic() - opts["launched"]
        # Memory once the history read at start is in too (it comes after the first frame).
        await wait_for(lambda: app.session.history.loaded, opts["load_timeout"], "the history")
        await pilot.pause()
        await asyncio.sleep(1.0)
        gc.collect()
        result["rss_mb"] = proc.memory_info().rss / 2**20
        if not opts["idle_seconds"]:
            return result

        # -- idle: nothing changes, the countdowns tick -----------------------------------
        tracker = app.session.tracker
        deadline = time.monotonic() + opts["sync_wait"]
        while any(i.deadline is None for i in tracker.leases.values()):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        result["leases_synced"] = all(i.deadline is not None for i in tracker.leases.values())
        result["leases"] = len(tracker.leases)
        await asyncio.sleep(1.0)
        profile_to = os.environ.get("SCALE_BENCH_PROFILE")  # where the idle profile goes
        profiler = cProfile.Profile() if profile_to else None
        cpu0, wall0, calls0 = time.process_time(), time.monotonic(), tracker.calls
        if profiler is not None:
            profiler.enable()
        await asyncio.sleep(opts["idle_seconds"])
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{instances}")
        wall = time.monotonic() - wall0
        result["idle_cpu_pct"] = (time.process_time() - cpu0) / wall * 100
        result["idle_rpc_per_s"] = (tracker.calls - calls0) / wall

        # -- put → screen ------------------------------------------------------------------
        writer = EtcdConnection(ConnectionConfig(endpoints=(opts["endpoint"],)))
        await writer.connect()
        rng = random.Random(5)
        lease, _ = await writer.grant(FLEET_TTL)
        visible = tree.highlighted_service
        added: list[bytes] = []
        latencies: list[float] = []
        where = tree.model.instances
        for i in range(opts["singles"]):
            event = asyncio.Event()
            if i % 2 == 0 or not added:
                service = (
                    visible
                    if i % 4 == 0 and visible
                    else service_name(rng.randrange(opts["services"]))
                )
                key = f"{PREFIX}{service}/bench-{i:05d}".encode()
                frame_waiters.append((lambda key=key: key in where, event))
                started = time.monotonic()
                await writer.put(key, instance_value(service, f"bench-{i:05d}", i), lease)
                added.append(key)
            else:
                key = added.pop(rng.randrange(len(added)))
                frame_waiters.append((lambda key=key: key not in where, event))
                started = time.monotonic()
                await writer.delete(key)
            await asyncio.wait_for(event.wait(), 10)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(rng.uniform(0.05, 0.1))
        await writer.revoke(lease)
        await writer.close()
        result["put_median_ms"] = statistics.median(latencies) * 1000
        result["put_p90_ms"] = sorted(latencies)[int(len(latencies) * 0.9)] * 1000
    return result


# --------------------------------------------------------------------------------------
# The parent


MIXED_PREFIX = "/"


def mixed_items(
    instances: int, services: int, lease_of: Any
) -> tuple[list[tuple[bytes, bytes, int]], list[tuple[bytes, bytes, int]]]:
    """The fleet spread round-robin over the walkthrough and each framework layout whose
    keys start with ``/``, as its registrar writes it: ``(path keys, instance keys)``."""
    from etcd_registry_tui.registry.layouts.base import Layout
    from etcd_registry_tui.registry.layouts.registrar import plan

    layouts = [Layout.WALKTHROUGH]
    for layout in Layout:
        if layout is Layout.WALKTHROUGH:
            continue
        if plan(layout, "S", "i", "127.0.0.1:1", 1).key.startswith("/"):
            layouts.append(layout)
    paths: dict[bytes, tuple[bytes, bytes, int]] = {}
    items: list[tuple[bytes, bytes, int]] = []
    for n, (key, value) in enumerate(fleet_items(instances, services)):
        layout = layouts[n % len(layouts)]
        lease = lease_of(n)
        if layout is Layout.WALKTHROUGH:
            items.append((key, value, lease))
            continue
        service = key.decode().split("/")[2]
        address = f"127.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}:8080"
        p = plan(layout, service, f"i{n:07d}", address, lease)
        for pkey, pvalue, on_lease in p.paths:
            paths.setdefault(pkey.encode(), (pkey.encode(), pvalue, lease if on_lease else 0))
        items.append((p.key.encode(), p.value, lease))
    return list(paths.values()), items


async def load_fleet(
    endpoint: str, instances: int, services: int, per_lease: int, layouts: str = "walkthrough"
) -> None:
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        leases = await grant_many(conn, max(1, -(-instances // per_lease)), FLEET_TTL)
        if layouts == "mixed":
            paths, mixed = mixed_items(instances, services, lambda n: leases[n // per_lease])
            await put_many(conn, paths)
            await put_many(conn, mixed)
            return
        items = fleet_items(instances, services)
        await put_many(conn, [(k, v, leases[n // per_lease]) for n, (k, v) in enumerate(items)])


def etcdctl_seconds(endpoint: str, output: str, runs: int = 3) -> float:
    etcdctl = shutil.which("etcdctl") or "/usr/bin/etcdctl"
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(
            [etcdctl, f"--endpoints={endpoint}", "get", "--prefix", PREFIX, "-w", output],
            stdout=subprocess.DEVNULL,
            check=True,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        times.append(time.monotonic() - started)
    return statistics.median(times)


def run_child(opts: dict[str, Any], timeout: float) -> dict[str, Any]:
    wrap = os.environ.get("SCALE_BENCH_CHILD_WRAP", "").split()
    opts = {**opts, "launched": time.monotonic()}
    cmd = [*wrap, sys.executable, str(SCRIPT), "--child", json.dumps(opts)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        f"the app process failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
        f"\n{proc.stderr[-5000:]}"
    )


def measure(instances: int, services: int, args: argparse.Namespace) -> dict[str, Any]:
    etcd = EmbeddedEtcd(
        name="scale", log_level="warn", extra_args=["--quota-backend-bytes", str(8 * 2**30)]
    )
    etcd.start()
    try:
        started = time.monotonic()
        asyncio.run(load_fleet(etcd.endpoint, instances, services, args.per_lease, args.layouts))
        written = time.monotonic() - started
        pb = etcdctl_seconds(etcd.endpoint, "protobuf")
        js = etcdctl_seconds(etcd.endpoint, "json", runs=1 if instances > 200_000 else 3)
        full = 1 < instances <= args.idle_up_to
        opts = {
            "endpoint": etcd.endpoint,
            "instances": instances,
            "services": services,
            "load_timeout": 600.0,
            "idle_seconds": (3.0 if args.quick else 10.0) if full else 0,
            "sync_wait": 5.0 if args.quick else args.sync_wait,
            "singles": 20 if args.quick else 60,
            "memory_budget": args.memory_budget,
            "history": args.history,
            "expect_refusal": args.expect_refusal and instances > 1,
        }
        if args.layouts == "mixed":
            opts["prefix"] = MIXED_PREFIX
        runs = [run_child(opts, timeout=1200) for _ in range(args.runs if instances > 1 else 3)]
    finally:
        etcd.cleanup()
    result = dict(runs[0])
    result["first_frame_s"] = statistics.median(r["first_frame_s"] for r in runs)
    result["first_frame_runs"] = [r["first_frame_s"] for r in runs]
    result.update(etcdctl_pb_s=pb, etcdctl_json_s=js, written_s=written)
    print(
        f"  {instances:>9,} instances in {services:,} services: written in {written:.0f} s; "
        f"etcdctl protobuf {pb:.2f} s, json {js:.2f} s; first frame after launch "
        + ", ".join(f"{t:.2f}" for t in result["first_frame_runs"])
        + " s"
        + (f"; all loaded {result['all_loaded_s']:.2f} s" if "all_loaded_s" in result else "")
        + f"; RSS {result['rss_mb']:.0f} MB",
        flush=True,
    )
    return result


ROWS: list[tuple[str, str, str, str]] = []


def row(figure: str, value: str, target: str, ok: bool | None) -> None:
    verdict = "info" if ok is None else ("ok" if ok else "over")
    ROWS.append((figure, value, target, verdict))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 and 2,000 instances")
    parser.add_argument("--sizes", help="INSTANCESxSERVICES,... (the first is the baseline)")
    parser.add_argument("--per-lease", type=int, default=10, help="instances per lease")
    parser.add_argument("--runs", type=int, default=1, help="app launches per size")
    parser.add_argument("--sync-wait", type=float, default=120.0)
    parser.add_argument(
        "--idle-up-to", type=int, default=100_000, help="idle CPU and put→screen up to this"
    )
    parser.add_argument("--memory-budget", type=float, help="the dashboard's budget, MB")
    parser.add_argument(
        "--history",
        type=int,
        default=None,
        help="revisions of history read at start (default: the dashboard's)",
    )
    parser.add_argument(
        "--layouts",
        choices=("walkthrough", "mixed"),
        default="walkthrough",
        help="the fleet's layouts: the walkthrough only, or mixed over the frameworks (--prefix /)",
    )
    parser.add_argument("--expect-refusal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = asyncio.run(child_main(json.loads(args.child)))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.sizes:
        sizes = [tuple(int(n) for n in p.lower().split("x")) for p in args.sizes.split(",")]
    elif args.quick:
        sizes = [(1, 1), (2_000, 20)]
    else:
        sizes = [(1, 1), (10_000, 100), (100_000, 1_000)]
    print(
        f"scale benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, terminal "
        f"{SIZE[0]}x{SIZE[1]}, {args.per_lease} instances per lease; load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        flush=True,
    )
    started = time.monotonic()
    try:
        results = [(n, s, measure(n, s, args)) for n, s in sizes]
    except Exception as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    base = results[0][2]["first_frame_s"]
    for n, _s, r in results[1:]:
        size = f"{n:,}"
        if "refusal" in r:
            row(f"refused at {size}", r["refusal"], "a message, no swap", True)
            continue
        first = r["first_frame_s"] - base
        target = 1.5 * r["etcdctl_pb_s"] + 0.150
        row(
            f"first frame after launch - 1-instance [{size}]",
            f"{first:.2f} s",
            f"<= {target:.2f} s (1.5 x etcdctl {r['etcdctl_pb_s']:.2f} s + 0.15;"
            f" -w json {r['etcdctl_json_s']:.2f} s)",
            first <= target,
        )
        row(f"  all {size} loaded after launch", f"{r['all_loaded_s']:.2f} s", "", None)
        rss_target = 200.0 if n >= 100_000 else None
        row(
            f"resident memory [{size}]",
            f"{r['rss_mb']:.0f} MB",
            f"<= {rss_target:.0f} MB" if rss_target else "",
            r["rss_mb"] <= rss_target if rss_target else None,
        )
        if "idle_cpu_pct" in r:
            idle_target = 2.0 if n >= 100_000 else 1.5
            synced = "after every lease was read" if r["leases_synced"] else "LEASES STILL SYNCING"
            row(
                f"idle CPU [{size}]",
                f"{r['idle_cpu_pct']:.1f} %",
                f"<= {idle_target:g} % ({synced}; {r['idle_rpc_per_s']:.0f} TimeToLive/s)",
                r["idle_cpu_pct"] <= idle_target,
            )
            row(
                f"put -> screen, median [{size}]",
                f"{r['put_median_ms']:.1f} ms",
                f"<= 30 ms (p90 {r['put_p90_ms']:.1f} ms)",
                r["put_median_ms"] <= 30.0,
            )
    print(f"\n1-instance registry: first frame {base:.2f} s after launch (median of 3)")
    width = max(len(f) for f, _, _, _ in ROWS)
    print(f"\n| {'figure':<{width}} | value | target | |")
    print(f"|{'-' * (width + 2)}|---|---|---|")
    for figure, value, target, verdict in ROWS:
        print(f"| {figure:<{width}} | {value} | {target} | {verdict} |")
    over = sum(1 for *_, v in ROWS if v == "over")
    print(
        f"\n{len(ROWS) - over} of {len(ROWS)} rows within target "
        f"(done in {time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
