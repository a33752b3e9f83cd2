"""How fast the elections view takes in many candidates (issue item 20).

A private etcd; the dashboard (RegistryApp, headless) runs in a child process; this
process then writes N candidates into one election, each on its own lease (grant, then
put ``/elections/bench/<lease %x>``, 64 at a time), as fast as etcd takes them. Printed:
how long the writes took, when the child's elections state and its view showed every
candidate (seconds after the first write), and the child's CPU time meanwhile.

Usage: ``python bench/elections_bench.py [--candidates 5000]`` (``ELECTIONS_BENCH_PROFILE=FILE``:
the child's cProfile statistics go to FILE).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402

NAME = "/elections/bench"
TTL = 600


async def child(endpoint: str, count: int, timeout: float) -> None:
    from etcd_registry_tui.app import RegistryApp
    from etcd_registry_tui.registry.events import ConnState

    app = RegistryApp(ConnectionConfig(endpoints=(endpoint,)))
    async with app.run_test(size=(120, 40)) as pilot:
        while (
            app.session.status.state is not ConnState.LIVE
            or not app.elections.watcher.live.is_set()
        ):
            await pilot.pause(0.05)
        await pilot.press("e")
        print("READY", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = float(line.split()[1])
        cpu0 = time.process_time()
        state_at = view_at = None
        last_report = 0.0
        while time.time() - started < timeout:
            await pilot.pause(0.05)
            election = app.elections.state.elections.get(NAME)
            in_state = len(election.candidates) if election else 0
            view = app.elections_view
            in_view = max(0, len(view.rows) - 1)
            now = time.time() - started
            if state_at is None and in_state >= count:
                state_at = now
            if view_at is None and in_view >= count:
                view_at = now
                break
            if now - last_report >= 5:
                last_report = now
                print(f"PROGRESS {now:.1f}s state {in_state} view {in_view}", flush=True)
        cpu = time.process_time() - cpu0
        print(f"RESULT state {state_at} view {view_at} cpu {cpu:.1f}", flush=True)
        await app.session.shutdown()


async def write(endpoint: str, count: int) -> float:
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        semaphore = asyncio.Semaphore(64)

        async def one(n: int) -> None:
            async with semaphore:
                lease, _ = await conn.grant(TTL)
                await conn.put(f"{NAME}/{lease:x}".encode(), f"candidate-{n}".encode(), lease)

        start = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(count)))
        return time.monotonic() - start


async def parent(count: int, timeout: float) -> int:
    with EmbeddedEtcd(fast_election=True) as etcd:
        etcd.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), "--child", etcd.endpoint, "--candidates", str(count),
            "--timeout", str(timeout),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdin is not None
        while (line := (await proc.stdout.readline()).decode()) and not line.startswith("READY"):
            pass
        proc.stdin.write(f"GO {time.time()}\n".encode())
        await proc.stdin.drain()
        took = await write(etcd.endpoint, count)
        print(f"wrote {count:,} candidates (each on its own lease) in {took:.1f} s")
        result = ""
        while line := (await proc.stdout.readline()).decode():
            print("  app:", line.strip())
            if line.startswith("RESULT"):
                result = line
        await proc.wait()
        if not result:
            return 1
        _, _, state_at, _, view_at, _, cpu = result.split()
        print(f"state showed all after {state_at} s, the view after {view_at} s, app CPU {cpu} s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--child", metavar="ENDPOINT")
    args = parser.parse_args()
    if args.child:
        profile = os.environ.get("ELECTIONS_BENCH_PROFILE")  # a file for cProfile's stats
        if profile:
            import cProfile

            cProfile.runctx(
                "asyncio.run(child(args.child, args.candidates, args.timeout))",
                globals(),
                {"args": args, "child": child, "asyncio": asyncio},
                profile,
            )
        else:
            asyncio.run(child(args.child, args.candidates, args.timeout))
        return 0
    return asyncio.run(parent(args.candidates, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
