"""Benchmark RegistryTree (the Line API tree) in a headless Textual app.

Figures per size (instances in services):

* ``set_state``: the call itself, and until the first full frame (``await pilot.pause()``);
* single-change batches (one add or one remove each): ``apply_changes`` cost, median and
  p99, alone and with a repaint of every visible line;
* a visible tick: ``tick()`` plus rendering every visible line (static parts cached,
  countdowns computed), median;
* a burst of deletes applied as one batch, and until the next frame.

Usage: ``python bench/ui_tree_bench.py [--quick] [--sizes 10000x100,100000x1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time

from textual.app import App, ComposeResult

from etcd_registry_tui.registry.model import Change, KeyValue, RegistryState
from etcd_registry_tui.widgets.registry_tree import RegistryTree

PREFIX = "/services/"
SIZE = (120, 40)


class FakeLeases:
    """A ttl_source: every lease granted 30 s, expiring at a spread of deadlines."""

    def __init__(self) -> None:
        self.now = 0.0
        self.deadlines: dict[int, float] = {}

    def add(self, lease: int, rng: random.Random) -> None:
        self.deadlines[lease] = rng.uniform(1.0, 30.0)

    def __call__(self, lease: int) -> tuple[float | None, int | None]:
        deadline = self.deadlines.get(lease)
        if deadline is None:
            return None, None
        return deadline - self.now, 30


class BenchApp(App[None]):
    def __init__(self, leases: FakeLeases) -> None:
        super().__init__()
        self.leases = leases

    def compose(self) -> ComposeResult:
        yield RegistryTree(ttl_source=self.leases)


def make_kv(service: int, n: int, revision: int, lease: int) -> KeyValue:
    instance_id = f"{n:08x}-{service:04x}-4abc-9def-{n * 7919 % 10**12:012d}"
    key = f"{PREFIX}Service{service:04d}/{instance_id}".encode()
    value = (
        f'{{"Id":"{instance_id}","Name":"Service{service:04d}",'
        f'"Address":"http://127.{service % 256}.{n // 256 % 256}.{n % 256}:8080"}}'
    ).encode()
    return KeyValue(key, value, revision, revision, 1, lease)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def render_visible(tree: RegistryTree) -> None:
    for y in range(tree.scrollable_content_region.height):
        tree.render_line(y)


async def bench_size(instances: int, services: int, singles: int, burst: int) -> None:
    rng = random.Random(42)
    leases = FakeLeases()
    state = RegistryState(PREFIX)
    kvs = []
    revision = 1
    for n in range(instances):
        revision += 1
        lease = 0x7000000 + n if n % 10 else 0  # one in ten without a lease
        if lease:
            leases.add(lease, rng)
        kvs.append(make_kv(n % services, n, revision, lease))
    started = time.perf_counter()
    state.load(kvs, revision)
    model_load = time.perf_counter() - started

    print(f"\n== {instances:,} instances in {services:,} services ==")
    print(f"model load (not the widget)         {ms(model_load)}")

    app = BenchApp(leases)
    async with app.run_test(size=SIZE) as pilot:
        tree = app.query_one(RegistryTree)
        tree.focus()
        await pilot.pause()

        started = time.perf_counter()
        tree.set_state(state)
        set_call = time.perf_counter() - started
        await pilot.pause()
        first_frame = time.perf_counter() - started
        print(f"set_state call                      {ms(set_call)}")
        print(f"set_state to first full frame       {ms(first_frame)}")
        print(f"rows                                {tree.row_count:>8,}")

        # Put the cursor (and view) in the middle, so changes land above and below it.
        middle = kvs[len(kvs) // 2].key
        tree.select_key(middle)
        await pilot.pause()

        apply_times: list[float] = []
        with_render: list[float] = []
        added: list[bytes] = []
        for i in range(singles):
            revision += 1
            change: Change | None
            if i % 2 == 0 or not added:
                kv = make_kv(rng.randrange(services), instances + i, revision, 0)
                change = state.apply_put(kv)
                added.append(kv.key)
            else:
                change = state.apply_delete(added.pop(rng.randrange(len(added))), revision)
            assert change is not None
            started = time.perf_counter()
            tree.apply_changes([change])
            middle_time = time.perf_counter()
            render_visible(tree)
            ended = time.perf_counter()
            apply_times.append(middle_time - started)
            with_render.append(ended - started)
        assert tree.highlighted_instance == middle, "cursor left its key"
        print(
            f"single change apply ({singles} batches)   median {ms(statistics.median(apply_times))}"
            f"   p99 {ms(percentile(apply_times, 0.99))}   max {ms(max(apply_times))}"
        )
        print(
            f"single change + visible repaint       median {ms(statistics.median(with_render))}"
            f"   p99 {ms(percentile(with_render, 0.99))}"
        )

        started = time.perf_counter()
        tree._line_cache.clear()
        render_visible(tree)
        cold = time.perf_counter() - started
        ticks: list[float] = []
        for _ in range(50):
            leases.now += 1.0
            started = time.perf_counter()
            tree.tick()
            render_visible(tree)
            ticks.append(time.perf_counter() - started)
        print(f"visible render, cold cache          {ms(cold)}")
        print(
            f"visible tick (tick + render {SIZE[1]} lines) median {ms(statistics.median(ticks))}"
            f"   max {ms(max(ticks))}"
        )

        victims = rng.sample(sorted(state.instances), min(burst, len(state.instances) - 1))
        changes = []
        for key in victims:
            revision += 1
            change = state.apply_delete(key, revision)
            if change is not None:
                changes.append(change)
        cursor_key = tree.highlighted_instance
        started = time.perf_counter()
        tree.apply_changes(changes)
        burst_apply = time.perf_counter() - started
        await pilot.pause()
        burst_frame = time.perf_counter() - started
        gone = cursor_key in set(victims)
        print(f"burst of {len(changes):,} deletes: apply       {ms(burst_apply)}")
        print(f"burst of {len(changes):,} deletes: to frame    {ms(burst_frame)}")
        print(
            f"rows after burst                    {tree.row_count:>8,}"
            f"   cursor {'moved to nearest row' if gone else 'kept on its key'}"
        )
        assert tree.row_count == len(state) + len(state.groups)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        instances, services = part.lower().split("x")
        sizes.append((int(instances), int(services)))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small and fast run")
    parser.add_argument("--sizes", help="comma-separated INSTANCESxSERVICES")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = parse_sizes(args.sizes)
    elif args.quick:
        sizes = [(2_000, 20)]
    else:
        sizes = [(10_000, 100), (100_000, 1_000)]
    singles, burst = (50, 500) if args.quick else (200, 5_000)
    print(f"RegistryTree benchmark, python {sys.version.split()[0]}, terminal {SIZE}")
    for instances, services in sizes:
        asyncio.run(bench_size(instances, services, singles, burst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
