"""History benchmark: what reading back the past costs the dashboard.

Figures (issue 11):

* first frame at 10,000 instances with 10,000 revisions of history read back, against
  the same without history (``--history 0``): at most 300 ms more;
* stepping one revision back in the history view (``h``, ←) until redrawn: at most 50 ms;
* the dashboard's memory after 100,000 events against after 10,000: within 20 MB.

``--quick`` runs 2,000 instances and 2,000 revisions (and 20,000 events for the memory
figure) in well under a minute. Each first-frame run is its own process.

Usage: ``python bench/history_bench.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app_bench import figure, instance_value, load_fleet, rss_mb  # noqa: E402

from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402
from etcd_registry_tui.registry.events import ChangeBatch  # noqa: E402
from etcd_registry_tui.registry.model import KeyValue  # noqa: E402

SIZE = (160, 50)


async def make_revisions(endpoint: str, count: int) -> None:
    """``count`` single puts (one revision each): instances changing their value."""
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        kvs, _ = await conn.get_prefix(b"/services/")
        rng = random.Random(3)
        semaphore = asyncio.Semaphore(32)

        async def one(n: int) -> None:
            kv = rng.choice(kvs)
            service = kv.key.decode().split("/")[2]
            async with semaphore:
                await conn.put(kv.key, instance_value(service, f"v{n}", n), kv.lease)

        await asyncio.gather(*(one(n) for n in range(count)))


async def first_frame(endpoint: str, history: int, instances: int) -> dict[str, float]:
    """In a fresh process: seconds from start to the fleet on screen, and to history."""
    from etcd_registry_tui.app import RegistryApp
    from etcd_registry_tui.widgets.registry_tree import RegistryTree

    # The first frame: when the tree first draws its lines with the fleet in them.
    drawn: list[float] = []
    render_lines = RegistryTree.render_lines

    def timed_render_lines(self: RegistryTree, crop: Any) -> Any:
        lines = render_lines(self, crop)
        if not drawn and self.row_count:
            drawn.append(time.perf_counter())
        return lines

    RegistryTree.render_lines = timed_render_lines  # type: ignore[method-assign]
    started = time.perf_counter()
    app = RegistryApp(ConnectionConfig(endpoints=(endpoint,)), history_revisions=history)
    async with app.run_test(size=SIZE) as pilot:
        while not drawn or len(app.session.state) < instances:
            await asyncio.sleep(0.005)
        frame = drawn[0] - started
        while history and not app.session.history.loaded:
            await asyncio.sleep(0.005)
        await pilot.pause()
        loaded = time.perf_counter() - started
        held = len(app.session.history)
        step = await stepping(app, pilot) if history else []
        await app.shutdown_session()
    return {"frame": frame, "history": loaded, "held": held, "steps": step}  # type: ignore[dict-item]


async def stepping(app: Any, pilot: Any, steps: int = 20) -> list[float]:
    from etcd_registry_tui.screens.history import HistoryScreen

    app.action_history()
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, HistoryScreen)
    from textual.geometry import Region

    times = []
    tree, changes = screen.registry_tree, screen.query_one("#history-changes")
    for _ in range(steps):
        await pilot.pause()
        started = time.perf_counter()
        screen.action_step(-1)
        # What the next frame draws of it: the tree's and the change list's visible lines.
        tree.render_lines(Region(0, 0, tree.size.width, tree.size.height))
        changes.render_lines(Region(0, 0, changes.size.width, changes.size.height))
        times.append(time.perf_counter() - started)
    return times


async def memory(events: int) -> tuple[float, float]:
    """RSS (MB) of a dashboard after 10,000 events and after ``events``."""
    from etcd_registry_tui.app import RegistryApp
    from etcd_registry_tui.registry.session import RegistrySession

    config = ConnectionConfig(endpoints=("127.0.0.1:1",))
    session = RegistrySession(config)
    app = RegistryApp(config, session=session, start_session=False)
    keys = [f"/services/Svc{n % 50:02d}/inst-{n:05d}".encode() for n in range(2_000)]
    after_10k = 0.0
    async with app.run_test(size=SIZE) as pilot:
        state = session.state
        revision = 1
        for start in range(0, events, 100):
            changes = []
            for n in range(start, start + 100):
                key = keys[n % len(keys)]
                revision += 1
                if n % 7 == 6 and key in state:
                    change = state.apply_delete(key, revision)
                else:
                    value = instance_value("Svc", key.decode()[-10:], n)
                    change = state.apply_put(KeyValue(key, value, revision, revision, 1, 0))
                if change is not None:
                    changes.append(change)
            session._batch(ChangeBatch(changes, revision))
            if start % 2_000 == 0:
                await pilot.pause()
            if start + 100 == 10_000:
                await pilot.pause()
                gc.collect()
                after_10k = rss_mb()
        await pilot.pause()
        gc.collect()
        return after_10k, rss_mb()


def child(opts: dict[str, Any]) -> dict[str, Any]:
    if opts["what"] == "memory":
        low, high = asyncio.run(memory(opts["events"]))
        return {"low": low, "high": high}
    return asyncio.run(first_frame(opts["endpoint"], opts["history"], opts["instances"]))


def run_child(opts: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(opts)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])  # type: ignore[no-any-return]
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 instances and revisions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    instances = revisions = 2_000 if args.quick else 10_000
    events = 20_000 if args.quick else 100_000
    runs = 1 if args.quick else 3
    etcd = EmbeddedEtcd(name="history-bench", log_level="warn")
    etcd.start()
    try:
        asyncio.run(load_fleet(etcd.endpoint, instances, max(1, instances // 100)))
        asyncio.run(make_revisions(etcd.endpoint, revisions))
        without, with_history, steps = [], [], []
        loaded: list[float] = []
        held = 0
        for _ in range(runs):
            base = {"what": "frame", "endpoint": etcd.endpoint, "instances": instances}
            without.append(run_child({**base, "history": 0})["frame"])
            result = run_child({**base, "history": revisions})
            with_history.append(result["frame"])
            loaded.append(result["history"])
            steps.extend(result["steps"])
            held = int(result["held"])
    finally:
        etcd.stop()
    tag = f"[{instances:,}, {revisions:,} revisions]"
    figure(f"first frame without history {tag}", statistics.median(without) * 1000, "ms", None)
    figure(f"first frame with history {tag}", statistics.median(with_history) * 1000, "ms", None)
    added = (statistics.median(with_history) - statistics.median(without)) * 1000
    figure("history adds to the first frame", max(0.0, added), "ms", 300)
    figure(f"history in the log ({held:,} events)", statistics.median(loaded) * 1000, "ms", None)
    figure("step one revision back, median", statistics.median(steps) * 1000, "ms", None)
    ordered = sorted(steps)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    figure("step one revision back, p95", p95 * 1000, "ms", 50)
    figure("step one revision back, max", max(steps) * 1000, "ms", None, "GC or live work")
    mem = run_child({"what": "memory", "events": events})
    figure("RSS after 10,000 events", mem["low"], "MB", None)
    figure(f"RSS after {events:,} events", mem["high"], "MB", None)
    figure("memory growth 10,000 → all events", mem["high"] - mem["low"], "MB", 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
